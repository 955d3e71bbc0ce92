#pragma once
// Loads the tokenizer a model directory ships, the way transformers' AutoTokenizer picks it:
//   tokenizer.json with a BPE model        -> ByteLevelBPE (BLIP-2 OPT checkpoints)
//   tokenizer.json with a WordPiece model  -> WordPieceTokenizer
//   spiece.model                           -> SentencePieceTokenizer::t5 (Flan-T5)
//   vocab.json + merges.txt                -> ByteLevelBPE
//   vocab.txt                              -> WordPieceTokenizer (bert-base-uncased)
// tokenizer_config.json, when present, supplies bos/eos/pad tokens, add_bos_token / add_eos_token
// (OPT: "</s>" prepended) and do_lower_case. `path` may also name one of those files directly.
#include <fstream>
#include <memory>
#include <string>

#include "byte_level_bpe.hpp"
#include "hf_json.hpp"
#include "sentencepiece.hpp"
#include "wordpiece.hpp"

namespace blip2::tokenizers {

namespace detail {
inline bool file_exists(const std::string& p) { return std::ifstream(p).good(); }
// Whether the last component of `path` is `name`.
inline bool names_file(const std::string& path, const std::string& name) {
  return path.size() >= name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0 &&
         (path.size() == name.size() || path[path.size() - name.size() - 1] == '/');
}
// A token in tokenizer_config.json: "text" or {"content": "text", ...}; empty when absent.
inline std::string config_token(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}
inline void configure_bpe(ByteLevelBPE& t, const nlohmann::json& cfg) {
  if (!cfg.is_object()) return;
  auto flag = [&](const char* key) { return cfg.contains(key) && cfg[key].is_boolean() && cfg[key].get<bool>(); };
  t.set_special_tokens(config_token(cfg, "bos_token"), config_token(cfg, "eos_token"), config_token(cfg, "pad_token"),
                       flag("add_bos_token"), flag("add_eos_token"));
}
}  // namespace detail

// Whether the directory `dir` holds the files of any tokenizer load_tokenizer reads.
inline bool has_tokenizer_files(const std::string& dir) {
  const std::string d = dir.empty() || dir.back() == '/' ? dir : dir + '/';
  for (const char* name : {"tokenizer.json", "spiece.model", "vocab.txt"})
    if (detail::file_exists(d + name)) return true;
  return detail::file_exists(d + "vocab.json") && detail::file_exists(d + "merges.txt");
}

inline std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::string dir = path;
  std::string file;
  for (const char* name : {"tokenizer.json", "spiece.model", "vocab.json", "merges.txt", "vocab.txt"})
    if (detail::names_file(path, name) && detail::file_exists(path)) {
      dir = path.substr(0, path.size() - std::string(name).size());
      file = name;
    }
  if (!dir.empty() && dir.back() != '/') dir += '/';
  auto has = [&](const char* name) { return (file.empty() || file == name) && detail::file_exists(dir + name); };
  nlohmann::json cfg;
  if (detail::file_exists(dir + "tokenizer_config.json")) cfg = hf_json::load(dir + "tokenizer_config.json");

  if (has("tokenizer.json")) {
    const nlohmann::json j = hf_json::load(dir + "tokenizer.json");
    const std::string type = hf_json::guard(dir + "tokenizer.json", [&] {
      return j.contains("model") && j["model"].is_object() ? j["model"].value("type", std::string("BPE")) : std::string();
    });
    if (type == "BPE") {
      auto t = std::make_unique<ByteLevelBPE>(ByteLevelBPE::from_tokenizer_json(j, dir + "tokenizer.json"));
      if (!cfg.is_null() && t->post_processor().prefix.empty()) detail::configure_bpe(*t, cfg);
      return t;
    }
    if (type == "WordPiece")
      return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(j, dir + "tokenizer.json"));
    BLIP2_CHECK(file.empty() && detail::file_exists(dir + "spiece.model"), IoError, dir,
                "tokenizer.json: model type '", type, "' is not supported (and no spiece.model beside it)");
  }
  if (has("spiece.model")) return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::t5(dir + "spiece.model"));
  if ((file.empty() || file == "vocab.json" || file == "merges.txt") && detail::file_exists(dir + "vocab.json") &&
      detail::file_exists(dir + "merges.txt")) {
    auto t = std::make_unique<ByteLevelBPE>(ByteLevelBPE::from_files(dir + "vocab.json", dir + "merges.txt"));
    detail::configure_bpe(*t, cfg);
    return t;
  }
  if (has("vocab.txt")) {
    WordPieceOptions o;
    if (cfg.is_object() && cfg.contains("do_lower_case") && cfg["do_lower_case"].is_boolean())
      o.lowercase = cfg["do_lower_case"].get<bool>();
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file(dir + "vocab.txt", o));
  }
  throw IoError(path + ": no tokenizer found (tokenizer.json, spiece.model, vocab.json + merges.txt or vocab.txt)");
}

}  // namespace blip2::tokenizers
