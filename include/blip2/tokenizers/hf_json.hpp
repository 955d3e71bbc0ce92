#pragma once
// Parts of Hugging Face's tokenizer.json that every model type shares: the added tokens and the
// post-processor (TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence).
#include <nlohmann/json.hpp>
#include <functional>
#include <string>

#include "tokenizer.hpp"

namespace blip2::tokenizers::hf_json {

// Parses `path` as JSON; IoError naming the file when it is missing or not JSON.
inline nlohmann::json load(const std::string& path) {
  const std::string text = read_file(path, "tokenizer JSON file");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": not valid JSON (" + e.what() + ")");
  }
}

// Runs `f` (which reads a parsed JSON document), turning nlohmann's type errors into IoError naming `path`.
template <class F>
auto guard(const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": malformed tokenizer JSON (" + e.what() + ")");
  }
}

// Whether `v` is a usable token id (a non-negative integer below 2^26).
inline bool is_id(const nlohmann::json& v) {
  return v.is_number_integer() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() < (std::int64_t(1) << 26);
}

// The "added_tokens" array: [{id, content, special, lstrip, rstrip, single_word, normalized}, ...].
inline std::vector<AddedToken> added_tokens(const nlohmann::json& j, const std::string& path) {
  std::vector<AddedToken> out;
  if (!j.contains("added_tokens") || j["added_tokens"].is_null()) return out;
  BLIP2_CHECK(j["added_tokens"].is_array(), IoError, path, ": 'added_tokens' is not an array");
  for (const auto& t : j["added_tokens"]) {
    BLIP2_CHECK(t.is_object() && t.contains("id") && is_id(t["id"]) && t.contains("content") &&
                    t["content"].is_string(),
                IoError, path, ": an added token needs an 'id' (a non-negative integer) and a string 'content'");
    AddedToken a;
    a.id = t["id"].get<Id>();
    a.content = t["content"].get<std::string>();
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.single_word = t.value("single_word", false);
    out.push_back(std::move(a));
  }
  return out;
}

namespace detail {
inline void add_processor(const nlohmann::json& p, const std::string& path, PostProcessor& out,
                          const std::function<Id(const std::string&)>& id_of) {
  if (p.is_null()) return;
  BLIP2_CHECK(p.is_object() && p.contains("type") && p["type"].is_string(), IoError, path,
              ": post_processor needs a 'type'");
  const std::string type = p["type"].get<std::string>();
  auto pair_id = [&](const char* key) -> Id {
    BLIP2_CHECK(p.contains(key) && p[key].is_array() && p[key].size() == 2 && is_id(p[key][1]), IoError,
                path, ": post_processor ", type, " needs '", key, "': [token, id]");
    return p[key][1].get<Id>();
  };
  if (type == "TemplateProcessing") {
    BLIP2_CHECK(p.contains("single") && p["single"].is_array(), IoError, path,
                ": TemplateProcessing needs a 'single' template");
    const auto& specials = p.contains("special_tokens") ? p["special_tokens"] : nlohmann::json::object();
    bool seen_sequence = false;
    for (const auto& item : p["single"]) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      BLIP2_CHECK(item.contains("SpecialToken") && item["SpecialToken"].contains("id"), IoError, path,
                  ": TemplateProcessing item is neither Sequence nor SpecialToken");
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      std::vector<Id> ids;
      if (specials.contains(name) && specials[name].contains("ids")) {
        for (const auto& v : specials[name]["ids"]) {
          BLIP2_CHECK(is_id(v), IoError, path, ": TemplateProcessing special token ", quote(name), " has a bad id");
          ids.push_back(v.get<Id>());
        }
      } else {
        const Id id = id_of(name);
        BLIP2_CHECK(id != kNoId, IoError, path, ": TemplateProcessing special token ", quote(name), " has no id");
        ids.push_back(id);
      }
      auto& dst = seen_sequence ? out.suffix : out.prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    out.prefix.push_back(pair_id("cls"));
    out.suffix.insert(out.suffix.begin(), pair_id("sep"));
  } else if (type == "Sequence") {
    BLIP2_CHECK(p.contains("processors") && p["processors"].is_array(), IoError, path,
                ": Sequence post_processor needs 'processors'");
    for (const auto& q : p["processors"]) add_processor(q, path, out, id_of);
  } else if (type == "ByteLevel") {
    // offsets only; no ids
  } else {
    throw IoError(path + ": unsupported post_processor type '" + type + "'");
  }
}
}  // namespace detail

// The ids the "post_processor" puts around a single sequence; each must be one the vocabulary
// holds (`known`), or encode would emit ids the tokenizer itself cannot decode.
inline PostProcessor post_processor(const nlohmann::json& j, const std::string& path,
                                    const std::function<Id(const std::string&)>& id_of,
                                    const std::function<bool(Id)>& known) {
  PostProcessor out;
  if (j.contains("post_processor")) detail::add_processor(j["post_processor"], path, out, id_of);
  for (const auto* ids : {&out.prefix, &out.suffix})
    for (Id id : *ids)
      BLIP2_CHECK(known(id), IoError, path, ": the post_processor adds id ", id, ", which is not in the vocabulary");
  return out;
}

}  // namespace blip2::tokenizers::hf_json
