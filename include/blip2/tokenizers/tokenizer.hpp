#pragma once
// The interface every tokenizer implements (text -> ids -> text), plus the pieces they share:
// a vocabulary (token <-> id), added/special tokens that are split out of the text before the model
// runs (as Hugging Face's AddedVocabulary does), and the ids a post-processor puts around a sequence.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "../io/json.hpp"
#include "unicode.hpp"

namespace blip2::tokenizers {

using Id = std::int64_t;
inline constexpr Id kNoId = -1;

using io::read_file;

// A printable form of a token or text for error messages (control bytes escaped, long ones cut).
inline std::string quote(std::string_view s) {
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < 80; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}

// token <-> id, ids need not be contiguous. Stored by entry, not by id: a file may declare any id
// below 2^26, and one such id must not cost an array of 2^26 strings (2 GB).
class Vocab {
 public:
  // Adds or replaces `token` with `id`; a token already present keeps its first id unless `replace`.
  void add(std::string token, Id id, bool replace = false) {
    BLIP2_CHECK(id >= 0 && id < (Id(1) << 26), ValueError, "tokenizer vocabulary: id ", id, " for token ", quote(token),
                " out of range");
    end_ = std::max(end_, id + 1);
    auto it = ids_.find(token);
    if (it == ids_.end() || replace) ids_[token] = id;
    tokens_[id] = std::move(token);
  }
  Id find(std::string_view token) const {
    auto it = ids_.find(std::string(token));
    return it == ids_.end() ? kNoId : it->second;
  }
  bool contains(Id id) const { return tokens_.count(id) != 0; }
  // The token of `id`; empty for an id the vocabulary does not hold.
  const std::string& token(Id id) const {
    static const std::string none;
    const auto it = tokens_.find(id);
    return it == tokens_.end() ? none : it->second;
  }
  // One more than the largest id.
  std::size_t size() const { return std::size_t(end_); }
  std::size_t count() const { return ids_.size(); }

 private:
  std::unordered_map<std::string, Id> ids_;
  std::unordered_map<Id, std::string> tokens_;
  Id end_ = 0;
};

// A token matched in the raw text before the model sees it ("</s>", "[MASK]", "<extra_id_0>", ...).
struct AddedToken {
  std::string content;
  Id id = kNoId;
  bool special = true;       // skipped by decode(..., skip_special_tokens=true)
  bool lstrip = false;       // swallows white space on its left
  bool rstrip = false;       // swallows white space on its right
  bool single_word = false;  // only matches when not inside a word
};

// A piece of input text: either plain text for the model, or an added token's id.
struct Segment {
  std::string_view text;
  Id id = kNoId;
};

class AddedTokens {
 public:
  void add(AddedToken t) {
    if (t.content.empty()) return;
    for (auto& e : tokens_)
      if (e.content == t.content) {
        e = std::move(t);
        return;
      }
    tokens_.push_back(std::move(t));
    std::stable_sort(tokens_.begin(), tokens_.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(Id id) const {
    for (const auto& t : tokens_)
      if (t.id == id) return &t;
    return nullptr;
  }
  bool empty() const { return tokens_.empty(); }

  // Splits `text` at the leftmost-longest occurrences of the added tokens.
  std::vector<Segment> split(std::string_view text) const {
    std::vector<Segment> out;
    if (tokens_.empty()) {
      if (!text.empty()) out.push_back({text, kNoId});
      return out;
    }
    std::size_t plain = 0;  // start of the pending plain text
    std::size_t i = 0;
    while (i < text.size()) {
      const AddedToken* hit = nullptr;
      for (const auto& t : tokens_) {  // longest first
        if (text.compare(i, t.content.size(), t.content) != 0) continue;
        if (t.single_word && !is_word_boundary(text, i, i + t.content.size())) continue;
        hit = &t;
        break;
      }
      if (!hit) {
        ++i;
        continue;
      }
      std::size_t begin = i, end = i + hit->content.size();
      if (hit->lstrip)
        while (begin > plain && is_space_byte(text[begin - 1])) --begin;
      if (hit->rstrip)
        while (end < text.size() && is_space_byte(text[end])) ++end;
      if (begin > plain) out.push_back({text.substr(plain, begin - plain), kNoId});
      out.push_back({text.substr(begin, end - begin), hit->id});
      plain = i = end;
    }
    if (plain < text.size()) out.push_back({text.substr(plain), kNoId});
    return out;
  }

 private:
  static bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool is_word_char_before(std::string_view s, std::size_t pos) {
    if (pos == 0) return false;
    std::size_t b = pos - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    const auto d = unicode::decode_utf8(s, b);
    return d.cp == '_' || unicode::is_letter(d.cp) || unicode::is_number(d.cp);
  }
  static bool is_word_char_at(std::string_view s, std::size_t pos) {
    if (pos >= s.size()) return false;
    const auto d = unicode::decode_utf8(s, pos);
    return d.cp == '_' || unicode::is_letter(d.cp) || unicode::is_number(d.cp);
  }
  static bool is_word_boundary(std::string_view s, std::size_t begin, std::size_t end) {
    return !is_word_char_before(s, begin) && !is_word_char_at(s, end);
  }
  std::vector<AddedToken> tokens_;
};

// Ids a post-processor puts before and after one sequence ("[CLS] $A [SEP]", "</s> $A", "$A </s>").
struct PostProcessor {
  std::vector<Id> prefix, suffix;
  void apply(std::vector<Id>& ids) const {
    ids.insert(ids.begin(), prefix.begin(), prefix.end());
    ids.insert(ids.end(), suffix.begin(), suffix.end());
  }
};

// The ids of a model's special tokens; kNoId where it has none.
struct SpecialIds {
  Id bos = kNoId, eos = kNoId, unk = kNoId, pad = kNoId, cls = kNoId, sep = kNoId, mask = kNoId;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token strings of `text` as the model segments it (added tokens included, no post-processing).
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;
  // Ids of `text`; with add_special_tokens the post-processor's ids (BOS, [CLS]/[SEP], </s>) too.
  virtual std::vector<Id> encode(std::string_view text, bool add_special_tokens = true) const = 0;
  // Text of `ids`. Throws ValueError naming the first id that is not in the vocabulary.
  virtual std::string decode(const std::vector<Id>& ids, bool skip_special_tokens = false) const = 0;

  // The token string of `id`; ValueError when absent.
  virtual std::string id_to_token(Id id) const = 0;
  // Whether `id` names a token (a model's embedding table may have more rows than the tokenizer).
  virtual bool has_id(Id id) const = 0;
  // The id of the token string `token`; ValueError naming it when absent.
  Id token_to_id(std::string_view token) const {
    const Id id = find_token(token);
    BLIP2_CHECK(id != kNoId, ValueError, name(), ": unknown token ", quote(token));
    return id;
  }
  // The id of `token`, or kNoId.
  virtual Id find_token(std::string_view token) const = 0;
  // One more than the largest id (the embedding rows a model needs).
  virtual std::size_t vocab_size() const = 0;
  virtual bool is_special(Id id) const = 0;

  const SpecialIds& special_ids() const { return special_; }
  Id bos_id() const { return special_.bos; }
  Id eos_id() const { return special_.eos; }
  Id unk_id() const { return special_.unk; }
  Id pad_id() const { return special_.pad; }
  const std::string& name() const { return name_; }

 protected:
  SpecialIds special_;
  std::string name_ = "tokenizer";
};

}  // namespace blip2::tokenizers
