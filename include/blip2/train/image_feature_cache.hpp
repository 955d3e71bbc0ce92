#pragma once
// Frozen image features computed once and kept on disk (blip2 train --cache-image-features), which
// makes Q-Former training on a CPU practical: the frozen image encoder's output for every image
// of the training data (VisionModel::encode, before ln_vision, which trains), with LAVIS's
// evaluation transform (bicubic resize, no crop, no flip: a cached feature cannot be augmented),
// in safetensors shards of about 1 GiB that training memory-maps and reads row by row.
//
// The manifest, cache.json, is written last and atomically: a cache is complete or absent. It
// holds the identity the features depend on (the encoder's config and a checksum of its weights,
// the image size), the shards and the image of every row. Opening a cache made for another
// identity is refused, naming the field that differs.
#include <filesystem>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "../data/loader.hpp"
#include "../io/json.hpp"
#include "../io/safetensors.hpp"
#include "../ops/view.hpp"
#include "checkpoint_dir.hpp"

namespace blip2 {

class ImageFeatureCache {
 public:
  // pixel_values [B, 3, S, S] -> features [B, N, C]
  using Encoder = std::function<Tensor<float>(const Tensor<float>& pixel_values)>;

  struct BuildOptions {
    int image_size = 224;
    std::size_t batch_size = 16;               // images per encoder call
    std::size_t shard_bytes = std::size_t(1) << 30;
    data::OnBadImage bad_image = data::OnBadImage::skip;  // skip: left out of the cache (and of training)
    std::function<void(const std::string&)> warn;        // skipped images and progress
  };

  // What the features of `vision` depend on: its config, a checksum of its weights (post_layernorm,
  // LAVIS's ln_vision, is applied after the cache and left out), their storage type, the image size.
  template <class VisionModelT>
  static nlohmann::json identity_of(const VisionModelT& vision, int image_size) {
    std::uint64_t sum = 0;
    auto add = [&](const std::string& name, const auto& t) {
      if (name.rfind("post_layernorm.", 0) == 0) return;
      const auto host = t.template to<cpu>().contiguous();
      const auto* bytes = reinterpret_cast<const char*>(host.data());
      sum = data::detail::mix_seed({sum, data::detail::fnv1a(name),
                                    data::detail::fnv1a({bytes, std::size_t(host.numel()) * sizeof(*host.data())})});
    };
    std::string storage = "float32";
    for (const auto& [name, p] : vision.named_parameters()) add(name, p);
    for (const auto& [name, w] : vision.named_half_weights())
      std::visit([&, n = name](const auto& t) {
        add(n, t);
        storage = std::string(dtype_traits<typename std::decay_t<decltype(t)>::value_type>::name);
      }, w);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum));
    return {{"vision_config", vision.config.to_json()}, {"weights", hex}, {"weights_dtype", storage},
            {"image_size", image_size}, {"features", "VisionModel::encode (before ln_vision)"}};
  }

  static bool exists(const std::string& dir) { return std::filesystem::exists(std::filesystem::path(dir) / "cache.json"); }

  // Opens the cache in `dir`; refused when its identity differs from `identity` in any field.
  static ImageFeatureCache open(const std::string& dir, const nlohmann::json& identity) {
    const auto root = std::filesystem::path(dir);
    const auto where = (root / "cache.json").string();
    const nlohmann::json m = io::read_json_file(where);
    ImageFeatureCache c;
    try {
      const nlohmann::json& saved = m.at("identity");
      for (auto it = identity.begin(); it != identity.end(); ++it)
        BLIP2_CHECK(saved.contains(it.key()) && saved[it.key()] == it.value(), ValueError, where,
                    ": the image features were cached for another ", it.key(), " (", saved.value(it.key(), nlohmann::json()).dump(),
                    " there, ", it.value().dump(), " here); delete the folder or give another --cache-image-features");
      const auto& images = m.at("images");
      std::size_t row = 0;
      for (const auto& shard : m.at("shards")) {
        const auto file = io::SafeTensorsFile::open((root / shard.at("file").get<std::string>()).string());
        c.shards_.push_back(file.load<float>("features"));
        const index_t rows = c.shards_.back().size(0);
        BLIP2_CHECK(rows == shard.at("rows").get<index_t>() && c.shards_.back().dim() == 3, IoError, file.path(),
                    ": ", to_string(c.shards_.back().shape()), " features where cache.json says ", shard.at("rows").dump(),
                    " rows");
        for (index_t r = 0; r < rows; ++r, ++row) {
          BLIP2_CHECK(row < images.size(), IoError, where, ": fewer image names than feature rows");
          c.rows_[images[row].get<std::string>()] = {c.shards_.size() - 1, r};
        }
      }
      BLIP2_CHECK(row == images.size(), IoError, where, ": ", images.size(), " image names for ", row, " feature rows");
    } catch (const nlohmann::json::exception& e) {
      throw IoError(where + ": not an image feature cache manifest (" + e.what() + ")");
    }
    return c;
  }

  // Encodes every image the datasets name, once each, and writes the cache into `dir` (created if
  // needed; an older cache there is replaced); returns it opened.
  static ImageFeatureCache build(const std::string& dir, const std::vector<std::shared_ptr<const data::Dataset>>& datasets,
                                 const nlohmann::json& identity, const Encoder& encode, const BuildOptions& o) {
    namespace fs = std::filesystem;
    const fs::path root(dir);
    fs::create_directories(root);
    fs::remove(root / "cache.json");
    nlohmann::json manifest = {{"identity", identity}, {"shards", nlohmann::json::array()}, {"images", nlohmann::json::array()}};
    std::unordered_set<std::string> seen;
    std::vector<std::string> names, pending_names;  // this shard's rows; the batch waiting for the encoder
    std::vector<image::Image> pending;
    std::vector<Tensor<float>> parts;
    std::size_t part_rows = 0, row_bytes = 0, skipped = 0;
    auto write_shard = [&] {
      if (parts.empty()) return;
      const std::string file = "features-" + std::to_string(manifest["shards"].size()) + ".safetensors";
      const auto features = concat(parts, 0);
      io::save_safetensors((root / file).string(), {io::TensorRecord::from("features", features)});
      sync_path(root / file);
      manifest["shards"].push_back({{"file", file}, {"rows", features.size(0)}});
      for (auto& n : names) manifest["images"].push_back(std::move(n));
      names.clear();
      parts.clear();
      part_rows = 0;
    };
    auto flush = [&] {
      if (pending.empty()) return;
      NoGrad no_grad;
      const auto features = encode(image::to_pixel_values(pending)).contiguous();
      BLIP2_CHECK(features.dim() == 3 && features.size(0) == index_t(pending.size()), ShapeError,
                  "ImageFeatureCache: the encoder returned ", to_string(features.shape()), " for ", pending.size(), " images");
      row_bytes = std::size_t(features.size(1) * features.size(2)) * sizeof(float);
      parts.push_back(features);
      part_rows += pending.size();
      names.insert(names.end(), pending_names.begin(), pending_names.end());
      pending.clear();
      pending_names.clear();
      if (part_rows * row_bytes >= o.shard_bytes) write_shard();
    };
    for (const auto& dataset : datasets) {
      const auto stream = dataset->open(data::Pass{0, false});
      for (data::Sample s; stream->next(s);) {
        if (!seen.insert(s.name).second) continue;
        try {
          const auto img = s.bytes.empty() ? image::load_image(s.name) : image::decode_image(s.bytes, s.name);
          pending.push_back(image::resize_bicubic(img, o.image_size, o.image_size));
        } catch (const IoError& e) {
          if (o.bad_image == data::OnBadImage::raise) throw;
          ++skipped;
          if (o.warn) o.warn(std::string("skipped an image: ") + e.what());
          continue;
        }
        pending_names.push_back(s.name);
        if (pending.size() == o.batch_size) flush();
      }
    }
    flush();
    write_shard();
    BLIP2_CHECK(!manifest["images"].empty(), ValueError, dir, ": no image could be read to cache (", skipped, " skipped)");
    write_file_atomically(root / "cache.json", manifest.dump());
    return open(dir, identity);
  }

  std::size_t size() const { return rows_.size(); }
  bool contains(const std::string& image) const { return rows_.count(image) != 0; }

  // The features of `images` [B, N, C], in their order; an image not in the cache is a ValueError.
  Tensor<float> features(const std::vector<std::string>& images) const {
    std::vector<Tensor<float>> rows;
    for (const auto& name : images) {
      const auto it = rows_.find(name);
      BLIP2_CHECK(it != rows_.end(), ValueError, "image feature cache: no features of ", name);
      rows.push_back(shards_[it->second.first].slice(0, it->second.second, it->second.second + 1));
    }
    return concat(rows, 0);
  }

 private:
  std::vector<Tensor<float>> shards_;  // [rows, N, C] each, views of the memory-mapped files
  std::unordered_map<std::string, std::pair<std::size_t, index_t>> rows_;
};

}  // namespace blip2
