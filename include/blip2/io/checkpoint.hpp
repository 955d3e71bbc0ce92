#pragma once
// A Hugging Face checkpoint: one safetensors file, or a directory with `model.safetensors` or a
// sharded `model.safetensors.index.json` (weight_map: tensor name -> shard file). Parameters are
// loaded into modules by their dotted names, without copies where types and alignment allow.
#include <filesystem>
#include <map>
#include <set>

#include "../nn/module.hpp"
#include "json.hpp"
#include "safetensors.hpp"

namespace blip2::io {

class Checkpoint {
 public:
  static Checkpoint open(const std::string& path) {
    namespace fs = std::filesystem;
    Checkpoint c;
    c.where_ = path;
    if (!fs::is_directory(path)) {
      c.add_shard(path);
      return c;
    }
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors")) {
      c.add_shard((dir / "model.safetensors").string());
      return c;
    }
    const fs::path index = dir / "model.safetensors.index.json";
    BLIP2_CHECK(fs::exists(index), IoError, path, ": no model.safetensors or model.safetensors.index.json");
    const nlohmann::json j = read_json_file(index.string());
    BLIP2_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), IoError, index.string(), ": no weight_map");
    std::map<std::string, std::size_t> shard_of_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      BLIP2_CHECK(it->is_string(), IoError, index.string(), ": weight_map entry '", it.key(), "' is not a file name");
      const std::string file = it->get<std::string>();
      // A shard is a file name in the directory: a downloaded index must not reach outside it.
      const fs::path name(file);
      BLIP2_CHECK(!file.empty() && name.filename() == name && file != "." && file != "..", IoError, index.string(),
                  ": weight_map entry '", it.key(), "' names '", file, "', not a file in ", path);
      auto [slot, fresh] = shard_of_file.try_emplace(file, c.shards_.size());
      if (fresh) c.shards_.push_back(SafeTensorsFile::open((dir / file).string()));
      const auto& shard = c.shards_[slot->second];
      BLIP2_CHECK(shard.contains(it.key()), IoError, shard.path(), ": tensor '", it.key(),
                  "' listed in the index is not in this shard");
      c.where_of_[it.key()] = slot->second;
    }
    return c;
  }

  const std::string& path() const { return where_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [name, shard] : where_of_) out.push_back(name);
    return out;
  }
  bool contains(const std::string& name) const { return where_of_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const { return shard_of(name).entry(name); }
  template <class T, class D = cpu>
  Tensor<T, D> load(const std::string& name) const {
    return shard_of(name).template load<T, D>(name);
  }

 private:
  void add_shard(const std::string& file) {
    shards_.push_back(SafeTensorsFile::open(file));
    for (const auto& e : shards_.back().entries()) where_of_[e.name] = shards_.size() - 1;
  }
  const SafeTensorsFile& shard_of(const std::string& name) const {
    auto it = where_of_.find(name);
    BLIP2_CHECK(it != where_of_.end(), IoError, where_, ": no tensor named '", name, "'");
    return shards_[it->second];
  }
  std::string where_;
  std::vector<SafeTensorsFile> shards_;
  std::map<std::string, std::size_t> where_of_;
};

// Points `param` at `value`'s data (same shape), keeping the parameter's identity and autograd flags.
template <class T, class D>
void assign_parameter(const Tensor<T, D>& param, const Tensor<T, D>& value) {
  static_assert(std::is_same_v<typename Tensor<T, D>::value_type, T>);
  auto& impl = param.impl();
  impl.storage = value.storage();
  impl.shape = value.shape();
  impl.strides = value.strides();
  impl.offset = value.offset();
  impl.grad.reset();
}

// Loads every parameter of `module` from the checkpoint tensor `prefix + name`. Missing tensors
// (but those named in `optional`, which keep their values) and shape mismatches are an IoError
// listing them all; returns the checkpoint names under `prefix` that no parameter used
// (transformers reports these as unexpected, and so may callers).
template <class T, class D>
std::vector<std::string> load_parameters(const nn::Module<T, D>& module, const Checkpoint& ckpt,
                                         const std::string& prefix = "", const std::set<std::string>& optional = {}) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  auto load_one = [&](const std::string& name, const auto& param) {
    using P = typename std::decay_t<decltype(param)>::value_type;
    const std::string key = prefix + name;
    if (!ckpt.contains(key)) {
      if (optional.count(name)) return;
      problems.push_back("missing tensor '" + key + "' (shape " + to_string(param.shape()) + ")");
      return;
    }
    used.insert(key);
    const auto& e = ckpt.entry(key);
    if (e.shape != param.shape()) {
      problems.push_back("tensor '" + key + "' has shape " + to_string(e.shape) + ", the model expects " +
                         to_string(param.shape()));
      return;
    }
    assign_parameter(param, ckpt.template load<P, D>(key));
  };
  for (const auto& [name, param] : module.named_parameters()) load_one(name, param);
  for (const auto& [name, weight] : module.named_half_weights())
    std::visit([&, &name = name](const auto& w) { load_one(name, w); }, weight);
  if (!problems.empty()) {
    std::string msg = ckpt.path() + ": cannot load the model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw IoError(msg);
  }
  std::vector<std::string> unexpected;
  for (const auto& n : ckpt.names())
    if (n.rfind(prefix, 0) == 0 && !used.count(n)) unexpected.push_back(n);
  return unexpected;
}

// Writes every parameter and half-precision weight of `module` to one safetensors file under its
// checkpoint name, in its storage type (what load_parameters reads back).
template <class T, class D>
void save_parameters(const nn::Module<T, D>& module, const std::string& path) {
  std::vector<TensorRecord> records;
  for (const auto& [name, p] : module.named_parameters()) records.push_back(TensorRecord::from(name, p));
  for (const auto& [name, w] : module.named_half_weights())
    std::visit([&, &name = name](const auto& t) { records.push_back(TensorRecord::from(name, t)); }, w);
  save_safetensors(path, records);
}

}  // namespace blip2::io
