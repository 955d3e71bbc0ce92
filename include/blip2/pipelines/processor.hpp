#pragma once
// Blip2Processor: what transformers' processor does before the model runs, read from a Hugging Face
// model directory.
//   images -> pixel_values: BlipImageProcessor (preprocessor_config.json: size, image_mean,
//             image_std; without it the config's vision image_size and the CLIP statistics)
//   texts  -> input_ids / attention_mask: the directory's tokenizer (BPE for OPT, SentencePiece for
//             Flan-T5, WordPiece for the retrieval model), with num_query_tokens image placeholders
//             (image_token_index) in front of each text when the config names that token, rows
//             left-padded for generation.
//   ids    -> text: decode with special tokens (and ids the tokenizer does not know, as the
//             `tokenizers` library does) skipped, whitespace trimmed.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../image/normalize.hpp"
#include "../io/json.hpp"
#include "../models/config.hpp"
#include "../tokenizers/load.hpp"

namespace blip2 {

// The image side of preprocessor_config.json (BlipImageProcessor).
struct ImageProcessorConfig {
  int width = 224, height = 224;
  std::array<float, 3> mean = image::kClipMean, std = image::kClipStd;

  // `dir`/preprocessor_config.json when present, else `fallback_size` square with the CLIP statistics.
  static ImageProcessorConfig load(const std::string& dir, int fallback_size) {
    ImageProcessorConfig c;
    c.width = c.height = fallback_size;
    const auto path = (std::filesystem::path(dir) / "preprocessor_config.json").string();
    if (!std::filesystem::exists(path)) return c;
    const auto j = io::read_json_file(path);
    try {
      if (j.contains("size")) {
        const auto& s = j["size"];
        if (s.is_number()) {
          c.width = c.height = detail::json_or(j, "size", 0);
        } else if (s.contains("height") && s.contains("width")) {
          c.height = detail::json_or(s, "height", 0);
          c.width = detail::json_or(s, "width", 0);
        } else if (s.contains("shortest_edge")) {
          c.width = c.height = detail::json_or(s, "shortest_edge", 0);
        }
      }
      auto stats = [&](const char* key, std::array<float, 3>& out) {
        if (!j.contains(key) || j[key].is_null()) return;
        const auto v = j[key].get<std::vector<float>>();
        BLIP2_CHECK(v.size() == 3, IoError, path, ": ", key, " must hold 3 values, got ", v.size());
        std::copy(v.begin(), v.end(), out.begin());
      };
      stats("image_mean", c.mean);
      stats("image_std", c.std);
    } catch (const nlohmann::json::exception& e) {
      throw IoError(path + ": " + e.what());
    } catch (const IoError& e) {  // a key's value, named without the file
      throw IoError(path + ": " + e.what());
    }
    // The pixel tensor is [3, height, width] floats per image: 4096 (16 times ViT-g's 224) is plenty.
    BLIP2_CHECK(c.width > 0 && c.height > 0 && c.width <= 4096 && c.height <= 4096, IoError, path, ": image size ",
                c.width, "x", c.height, " is outside 1 to 4096");
    return c;
  }
};

// Token ids of a batch of prompts, as the model takes them.
struct PromptBatch {
  Tensor<std::int64_t> input_ids;       // [B, L]
  Tensor<std::int64_t> attention_mask;  // [B, L], 0 on the padding
};

class Blip2Processor {
 public:
  // Reads the tokenizer and preprocessor_config.json of the model directory `dir` whose config.json
  // gave `config`. A directory without tokenizer files still serves images and ids; the first use
  // of text is then an IoError naming the file expected and where.
  Blip2Processor(const std::string& dir, const Blip2Config& config)
      : config_(config), image_(ImageProcessorConfig::load(dir, config.vision.image_size)) {
    tokenizer_ = load_directory_tokenizer(dir, config, missing_tokenizer_);
  }

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const tokenizers::Tokenizer& tokenizer() const {
    if (!tokenizer_) throw IoError(missing_tokenizer_);
    return *tokenizer_;
  }
  const ImageProcessorConfig& image_config() const { return image_; }

  // pixel_values [N, 3, H, W] of image files (decoded, converted to RGB, resized bicubic, normalised).
  Tensor<float> pixel_values(const std::vector<std::string>& paths) const {
    BLIP2_CHECK(!paths.empty(), ValueError, "processor: no images given");
    std::vector<image::Image> resized;
    for (const auto& p : paths) resized.push_back(image::resize_bicubic(image::load_image(p), image_.width, image_.height));
    return image::to_pixel_values(resized, image_.mean, image_.std);
  }

  // The ids of one text with the tokenizer's special tokens (OPT: "</s>" first; T5: "</s>" last;
  // BERT: [CLS] ... [SEP]) and, for a generative model whose config names image_token_index, the
  // num_query_tokens placeholders in front.
  std::vector<std::int64_t> encode(const std::string& text) const {
    std::vector<std::int64_t> ids;
    if (config_.image_token_index && !config_.is_retrieval())
      ids.assign(std::size_t(config_.num_query_tokens), *config_.image_token_index);
    const auto t = tokenizer().encode(text);
    ids.insert(ids.end(), t.begin(), t.end());
    return ids;
  }

  // A batch of texts padded with `pad_id` to the longest: on the left for generation (new tokens
  // are appended on the right), on the right for the Q-Former's absolute positions.
  enum class Padding { Left, Right };
  PromptBatch encode(const std::vector<std::string>& texts, std::int64_t pad_id, Padding side = Padding::Left) const {
    BLIP2_CHECK(!texts.empty(), ValueError, "processor: no texts given");
    std::vector<std::vector<std::int64_t>> rows;
    std::size_t longest = 0;
    for (const auto& t : texts) {
      rows.push_back(encode(t));
      longest = std::max(longest, rows.back().size());
    }
    BLIP2_CHECK(longest > 0, ValueError, "processor: the texts give no tokens");
    std::vector<std::int64_t> ids, mask;
    for (const auto& r : rows) {
      std::vector<std::int64_t> row_ids(longest - r.size(), pad_id), row_mask(longest - r.size(), 0);
      const bool left = side == Padding::Left;
      row_ids.insert(left ? row_ids.end() : row_ids.begin(), r.begin(), r.end());
      row_mask.insert(left ? row_mask.end() : row_mask.begin(), r.size(), 1);
      ids.insert(ids.end(), row_ids.begin(), row_ids.end());
      mask.insert(mask.end(), row_mask.begin(), row_mask.end());
    }
    const Shape shape{index_t(rows.size()), index_t(longest)};
    return {Tensor<std::int64_t>::from_vector(shape, ids), Tensor<std::int64_t>::from_vector(shape, mask)};
  }

  // Text of generated ids: special tokens, the image placeholder and ids outside the tokenizer's
  // vocabulary skipped (a model's vocabulary is often padded past the tokenizer's), whitespace trimmed.
  std::string decode(const std::vector<std::int64_t>& ids) const {
    std::vector<std::int64_t> kept;
    const auto& tok = tokenizer();
    for (const auto id : ids)
      if (tok.has_id(id) && !tok.is_special(id) && id != config_.image_token_index.value_or(-1)) kept.push_back(id);
    return trim(tok.decode(kept, true));
  }

 private:
  static std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\n\r");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\n\r") - b + 1);
  }

  // The directory's tokenizer, or null with `missing` saying what was expected where.
  static std::unique_ptr<tokenizers::Tokenizer> load_directory_tokenizer(const std::string& dir, const Blip2Config& c,
                                                                         std::string& missing) {
    if (!tokenizers::has_tokenizer_files(dir)) {
      const std::string expected = c.is_retrieval() ? "vocab.txt (BERT WordPiece) or tokenizer.json"
                                   : c.text_model_type == "t5" ? "spiece.model (SentencePiece) or tokenizer.json"
                                                               : "tokenizer.json, or vocab.json and merges.txt (GPT-2 BPE)";
      missing = dir + ": no tokenizer: expected " + expected + " in " + dir +
                " (a Hugging Face model directory holds it beside config.json)";
      return nullptr;
    }
    return tokenizers::load_tokenizer(dir);
  }

  Blip2Config config_;
  ImageProcessorConfig image_;
  std::unique_ptr<tokenizers::Tokenizer> tokenizer_;
  std::string missing_tokenizer_;
};

}  // namespace blip2
