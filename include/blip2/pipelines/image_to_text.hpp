#pragma once
// Captioning, visual question answering and multi-turn chat with a BLIP-2 generative checkpoint
// (OPT or Flan-T5, whichever config.json names), from a Hugging Face model directory.
//
//   blip2::ImageToText<> pipe("blip2-opt-2.7b");          // config, weights, tokenizer
//   auto caps = pipe.caption({"cat.jpg"});                  // LAVIS captioning settings
//   std::string a = pipe.answer("cat.jpg", "what is the cat doing?");
//   auto chat = pipe.chat("cat.jpg");                       // the image is encoded once
//   chat.ask("what is in the picture?"); chat.ask("what colour is it?");
//
// W is the storage type of the frozen image encoder and language model weights (float, bf16, f16);
// computation is float32. D is the device the model runs on.
#include <chrono>
#include <memory>
#include <variant>

#include "../generate/generate.hpp"
#include "model_dir.hpp"
#include "presets.hpp"
#include "processor.hpp"

namespace blip2 {

// Where the time of one call went, in seconds.
struct PipelineTiming {
  double preprocess = 0, vision = 0, qformer = 0, prefill = 0, decode = 0;
  index_t decode_steps = 0;

  // Takes the language model's share from what generate measured.
  PipelineTiming& set_generation(const GenerateOutput& g) {
    prefill = g.prefill_seconds;
    decode = g.decode_seconds;
    decode_steps = g.decode_steps;
    return *this;
  }
};

// Images after the image encoder, Q-Former and projection: the language model's soft prompt.
template <class D = cpu>
struct EncodedImages {
  Tensor<float, D> language_model_inputs;  // [B, Q, LM width]
  PipelineTiming timing;                   // preprocess (if from files), vision, qformer
};

// Generated text: texts[i * num_return_sequences + j] is the j-th sequence of input i.
struct TextGeneration {
  std::vector<std::string> texts;
  GenerateOutput output;  // the ids, as transformers returns them
  PipelineTiming timing;
};

template <class D = cpu, class W = float>
class ImageToText {
 public:
  using OPTModel = Blip2OPT<float, D, W>;
  using T5Model = Blip2T5<float, D, W>;

  // Loads config.json, the safetensors weights, the tokenizer, preprocessor_config.json and
  // generation_config.json (if present) of `dir`.
  explicit ImageToText(const std::string& dir) : config_(load_config(dir)), processor_(dir, config_) {
    BLIP2_CHECK(!config_.is_retrieval(), ValueError, dir,
                ": this is an image-text retrieval model (no language model); use ImageTextRetrieval");
    if (config_.text_model_type == "t5") model_ = load_model<T5Model>(dir, config_);
    else model_ = load_model<OPTModel>(dir, config_);
    const auto gen_path = std::filesystem::path(dir) / "generation_config.json";
    if (std::filesystem::exists(gen_path)) defaults_ = GenerationOptions::load(gen_path.string());
    defaults_ = with_model_defaults(defaults_, config_);
  }

  const Blip2Config& config() const { return config_; }
  const Blip2Processor& processor() const { return processor_; }
  // generation_config.json over transformers' defaults, special tokens from the config.
  const GenerationOptions& default_options() const { return defaults_; }
  bool is_t5() const { return std::holds_alternative<std::unique_ptr<T5Model>>(model_); }

  // The image encoder, Q-Former and projection over pixel_values [B, 3, H, W].
  EncodedImages<D> encode(const Tensor<float>& pixel_values) const {
    NoGrad no_grad;
    EncodedImages<D> e;
    std::visit(
        [&](const auto& m) {
          auto t0 = std::chrono::steady_clock::now();
          const auto features = (*m->vision_model)(pixel_values.to<D>()).last_hidden_state;
          auto t1 = std::chrono::steady_clock::now();
          e.language_model_inputs = m->project(m->query_features(features));
          auto t2 = std::chrono::steady_clock::now();
          e.timing.vision = seconds(t0, t1);
          e.timing.qformer = seconds(t1, t2);
        },
        model_);
    return e;
  }
  EncodedImages<D> encode(const std::vector<std::string>& image_paths) const {
    const auto t0 = std::chrono::steady_clock::now();
    const auto pixels = processor_.pixel_values(image_paths);
    const double pre = seconds(t0, std::chrono::steady_clock::now());
    auto e = encode(pixels);
    e.timing.preprocess = pre;
    return e;
  }

  // Generates from encoded images and one prompt per image ("" for none: the model's start
  // tokens alone, as transformers' generate without input_ids).
  TextGeneration generate(const EncodedImages<D>& images, const std::vector<std::string>& prompts,
                          const GenerationOptions& options) const {
    const index_t B = images.language_model_inputs.size(0);
    BLIP2_CHECK(index_t(prompts.size()) == B, ShapeError, "generate: ", prompts.size(), " prompts for ", B, " images");
    Tensor<std::int64_t, D> ids, mask;
    const bool any_prompt = std::any_of(prompts.begin(), prompts.end(), [](const auto& p) { return !p.empty(); });
    if (any_prompt) {
      const auto batch = processor_.encode(prompts, is_t5() ? config_.t5.pad_token_id : config_.opt.pad_token_id);
      ids = batch.input_ids.template to<D>();
      mask = batch.attention_mask.template to<D>();
    }
    TextGeneration g;
    g.output = std::visit([&](const auto& m) { return generate_from_image(*m, images.language_model_inputs, ids, mask, options); },
                          model_);
    g.timing = images.timing;
    g.timing.set_generation(g.output);
    for (const auto& row : g.output.rows())
      g.texts.push_back(processor_.decode({row.begin() + g.output.prompt_length, row.end()}));
    return g;
  }

  // Captions of image files, the same optional prompt for each (LAVIS's captioning settings over
  // `options`; default: the model's generation defaults).
  TextGeneration caption(const std::vector<std::string>& image_paths, const std::string& prompt = "") const {
    return caption(image_paths, prompt, presets::caption(defaults_));
  }
  TextGeneration caption(const std::vector<std::string>& image_paths, const std::string& prompt,
                         const GenerationOptions& options) const {
    return generate(encode(image_paths), std::vector<std::string>(image_paths.size(), prompt), options);
  }

  // The answer to a question about an image ("Question: {} Answer:", LAVIS's VQA settings).
  std::string answer(const std::string& image_path, const std::string& question) const {
    return answer(image_path, question, presets::vqa(defaults_)).texts.at(0);
  }
  TextGeneration answer(const std::string& image_path, const std::string& question, const GenerationOptions& options) const {
    check_text(question, "question");
    return generate(encode(std::vector<std::string>{image_path}), {presets::vqa_prompt(question)}, options);
  }

  // A conversation about one image: each ask() puts the earlier turns in the prompt.
  class Chat {
   public:
    Chat(const ImageToText& pipe, EncodedImages<D> image) : pipe_(pipe), image_(std::move(image)) {}
    TextGeneration ask(const std::string& question, const GenerationOptions& options) {
      check_text(question, "question");
      auto g = pipe_.generate(image_, {presets::chat_prompt(history_, question)}, options);
      image_.timing = {};  // the image's cost is reported once, with the first turn
      history_.emplace_back(question, g.texts.at(0));
      return g;
    }
    std::string ask(const std::string& question) { return ask(question, presets::vqa(pipe_.default_options())).texts.at(0); }
    const std::vector<std::pair<std::string, std::string>>& history() const { return history_; }

   private:
    const ImageToText& pipe_;
    EncodedImages<D> image_;
    std::vector<std::pair<std::string, std::string>> history_;
  };
  Chat chat(const std::string& image_path) const { return Chat(*this, encode(std::vector<std::string>{image_path})); }

  // transformers' generate on prepared inputs: pixel_values [B, 3, H, W], input_ids [B, L] (with
  // or without image placeholders; undefined: the model's start tokens) and attention_mask.
  GenerateOutput generate_ids(const Tensor<float>& pixel_values, const Tensor<std::int64_t>& input_ids,
                              const Tensor<std::int64_t>& attention_mask, const GenerationOptions& options) const {
    const Tensor<std::int64_t, D> ids = input_ids.defined() ? input_ids.to<D>() : Tensor<std::int64_t, D>();
    const Tensor<std::int64_t, D> mask = attention_mask.defined() ? attention_mask.to<D>() : Tensor<std::int64_t, D>();
    return std::visit([&](const auto& m) { return blip2::generate(*m, pixel_values.to<D>(), ids, mask, options); }, model_);
  }

 private:
  static double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  static void check_text(const std::string& text, const char* what) {
    BLIP2_CHECK(text.find_first_not_of(" \t\n\r") != std::string::npos, ValueError, "the ", what, " is empty");
  }

  Blip2Config config_;
  Blip2Processor processor_;
  std::variant<std::unique_ptr<OPTModel>, std::unique_ptr<T5Model>> model_;
  GenerationOptions defaults_;
};

}  // namespace blip2
