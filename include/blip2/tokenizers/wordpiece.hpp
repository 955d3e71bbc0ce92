#pragma once
// BERT's WordPiece tokenizer (bert-base-uncased: the BLIP-2 Q-Former's tokenizer), as Hugging Face's
// BertNormalizer + BertPreTokenizer + WordPiece + BertProcessing compute it:
//   normalise: drop NUL, U+FFFD and control characters, white space -> ' ', spaces around CJK
//              ideographs, strip accents (NFD, drop Mn), lower-case;
//   split:     on white space (dropped) and punctuation (kept, one token each);
//   WordPiece: greedy longest match first, continuations prefixed "##"; a word with no
//              segmentation, or longer than 100 characters, is [UNK];
//   process:   [CLS] ... [SEP].
// Malformed UTF-8 decodes to U+FFFD, which the normaliser drops.
#include <string>
#include <string_view>
#include <vector>

#include "hf_json.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace blip2::tokenizers {

struct WordPieceOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool lowercase = true;
  int strip_accents = -1;  // -1: same as lowercase (Hugging Face's default), 0 no, 1 yes
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]",
              mask_token = "[MASK]";
  std::string continuing_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
  bool cleanup = true;  // decode: remove spaces before punctuation and in contractions
};

class WordPieceTokenizer : public Tokenizer {
 public:
  using Options = WordPieceOptions;

  // vocab.txt: one token per line, id = line number (from 0).
  static WordPieceTokenizer from_vocab_file(const std::string& vocab_txt, const Options& opt = {}) {
    WordPieceTokenizer t;
    t.name_ = "WordPiece (" + vocab_txt + ")";
    t.options_ = opt;
    const std::string text = read_file(vocab_txt, "vocabulary file");
    BLIP2_CHECK(!text.empty(), IoError, vocab_txt, ": empty vocabulary file");
    Id id = 0;
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(begin, end - begin);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      BLIP2_CHECK(unicode::is_valid_utf8(line), IoError, vocab_txt, ": line ", id + 1, " is not valid UTF-8");
      t.vocab_.add(std::move(line), id++);
      begin = end + 1;
    }
    t.finish();
    return t;
  }

  // bert-base-uncased with BLIP-2's "[DEC]" token (id 30522 there) added as BOS for the Q-Former's
  // text decoder.
  static WordPieceTokenizer qformer(const std::string& vocab_txt) {
    WordPieceTokenizer t = from_vocab_file(vocab_txt);
    t.add_special_token("[DEC]", /*as_bos=*/true);
    return t;
  }

  // Hugging Face tokenizer.json with a WordPiece model (BertNormalizer, BertPreTokenizer).
  static WordPieceTokenizer from_tokenizer_json(const std::string& path) {
    return from_tokenizer_json(hf_json::load(path), path);
  }
  static WordPieceTokenizer from_tokenizer_json(const nlohmann::json& j, const std::string& path) {
    return hf_json::guard(path, [&] { return parse_tokenizer_json(j, path); });
  }

 private:
  static WordPieceTokenizer parse_tokenizer_json(const nlohmann::json& j, const std::string& path) {
    WordPieceTokenizer t;
    t.name_ = "WordPiece (" + path + ")";
    BLIP2_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), IoError, path, ": no 'model' object");
    const auto& m = j["model"];
    BLIP2_CHECK(m.value("type", std::string()) == "WordPiece", IoError, path, ": model type is not WordPiece");
    BLIP2_CHECK(m.contains("vocab") && m["vocab"].is_object(), IoError, path, ": model has no 'vocab' object");
    Options& o = t.options_;
    o.unk_token = m.value("unk_token", o.unk_token);
    o.continuing_prefix = m.value("continuing_subword_prefix", o.continuing_prefix);
    o.max_input_chars_per_word = m.value("max_input_chars_per_word", o.max_input_chars_per_word);
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      const auto& n = j["normalizer"];
      BLIP2_CHECK(n.value("type", std::string()) == "BertNormalizer", IoError, path,
                  ": unsupported normalizer for WordPiece (only BertNormalizer)");
      o.clean_text = n.value("clean_text", true);
      o.handle_chinese_chars = n.value("handle_chinese_chars", true);
      o.lowercase = n.value("lowercase", true);
      o.strip_accents = n.contains("strip_accents") && n["strip_accents"].is_boolean() ? int(n["strip_accents"].get<bool>()) : -1;
    } else {
      o.clean_text = o.handle_chinese_chars = o.lowercase = false;
      o.strip_accents = 0;
    }
    if (j.contains("decoder") && j["decoder"].is_object()) o.cleanup = j["decoder"].value("cleanup", true);
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
      BLIP2_CHECK(hf_json::is_id(*it), IoError, path, ": token ", quote(it.key()), " has no valid id");
      t.vocab_.add(it.key(), it->get<Id>());
    }
    BLIP2_CHECK(t.vocab_.count() > 0, IoError, path, ": empty vocabulary");
    for (auto& a : hf_json::added_tokens(j, path)) {
      t.vocab_.add(a.content, a.id, true);
      t.added_.add(a);
    }
    t.finish();
    t.post_ = hf_json::post_processor(
        j, path, [&](const std::string& s) { return t.vocab_.find(s); }, [&](Id id) { return t.vocab_.contains(id); });
    return t;
  }

 public:

  // Adds `token` as a special token (new id = current vocabulary size unless it exists); with
  // as_bos it becomes BOS. Returns its id.
  Id add_special_token(const std::string& token, bool as_bos = false) {
    Id id = vocab_.find(token);
    if (id == kNoId) {
      id = Id(vocab_.size());
      vocab_.add(token, id);
    }
    AddedToken a;
    a.content = token;
    a.id = id;
    added_.add(a);
    if (as_bos) special_.bos = id;
    return id;
  }

  // The normalised text (clean, CJK spacing, accents, lower case).
  std::string normalize(std::string_view text) const { return unicode::to_utf8(normalize32(unicode::to_u32(text))); }

  // Words of normalised text: split on white space and around punctuation.
  std::vector<std::u32string> pre_tokenize(const std::u32string& s) const {
    std::vector<std::u32string> words;
    std::u32string cur;
    for (char32_t c : s) {
      if (unicode::is_whitespace(c)) {
        if (!cur.empty()) words.push_back(std::move(cur));
        cur.clear();
      } else if (unicode::is_bert_punctuation(c)) {
        if (!cur.empty()) words.push_back(std::move(cur));
        cur.clear();
        words.emplace_back(1, c);
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) words.push_back(std::move(cur));
    return words;
  }

  std::vector<std::string> tokenize(std::string_view text) const override {
    std::vector<std::string> out;
    for (Id id : encode(text, false)) out.push_back(vocab_.token(id));
    return out;
  }

  std::vector<Id> encode(std::string_view text, bool add_special_tokens = true) const override {
    std::vector<Id> ids;
    for (const Segment& seg : added_.split(text)) {
      if (seg.id != kNoId) {
        ids.push_back(seg.id);
        continue;
      }
      for (const auto& word : pre_tokenize(normalize32(unicode::to_u32(seg.text)))) wordpiece(word, ids);
    }
    if (add_special_tokens) post_.apply(ids);
    return ids;
  }

  std::string decode(const std::vector<Id>& ids, bool skip_special_tokens = false) const override {
    std::string out;
    bool first = true;
    const std::string& prefix = options_.continuing_prefix;
    for (Id id : ids) {
      BLIP2_CHECK(vocab_.contains(id), ValueError, name_, ": decode: id ", id, " is not in the vocabulary (size ",
                  vocab_.size(), ")");
      if (skip_special_tokens && is_special(id)) continue;
      std::string tok = vocab_.token(id);
      if (!first) {
        if (!prefix.empty() && tok.compare(0, prefix.size(), prefix) == 0)
          tok.erase(0, prefix.size());
        else
          tok.insert(0, " ");
      }
      first = false;
      out += options_.cleanup ? cleanup(tok) : tok;
    }
    return options_.cleanup ? cleanup(out) : out;
  }

  bool has_id(Id id) const override { return vocab_.contains(id); }
  std::string id_to_token(Id id) const override {
    BLIP2_CHECK(vocab_.contains(id), ValueError, name_, ": id ", id, " is not in the vocabulary (size ", vocab_.size(),
                ")");
    return vocab_.token(id);
  }
  Id find_token(std::string_view token) const override { return vocab_.find(token); }
  std::size_t vocab_size() const override { return vocab_.size(); }
  bool is_special(Id id) const override {
    const AddedToken* a = added_.find(id);
    return a && a->special;
  }
  Id cls_id() const { return special_.cls; }
  Id sep_id() const { return special_.sep; }
  Id mask_id() const { return special_.mask; }
  const Options& options() const { return options_; }

 private:
  WordPieceTokenizer() = default;

  void finish() {
    auto special = [&](const std::string& tok) -> Id {
      const Id id = vocab_.find(tok);
      if (id == kNoId) return kNoId;
      if (!added_.find(id)) {
        AddedToken a;
        a.content = tok;
        a.id = id;
        added_.add(a);
      }
      return id;
    };
    special_.unk = special(options_.unk_token);
    BLIP2_CHECK(special_.unk != kNoId, IoError, name_, ": unknown token ", quote(options_.unk_token),
                " is not in the vocabulary");
    special_.cls = special(options_.cls_token);
    special_.sep = special(options_.sep_token);
    special_.pad = special(options_.pad_token);
    special_.mask = special(options_.mask_token);
    post_ = {};
    if (special_.cls != kNoId) post_.prefix.push_back(special_.cls);
    if (special_.sep != kNoId) {
      post_.suffix.push_back(special_.sep);
      special_.eos = special_.sep;
    }
  }

  std::u32string normalize32(std::u32string s) const {
    const Options& o = options_;
    if (o.clean_text) {
      std::u32string t;
      t.reserve(s.size());
      for (char32_t c : s) {
        if (c == 0 || c == unicode::kReplacement || unicode::is_bert_control(c)) continue;
        t += unicode::is_bert_whitespace(c) ? U' ' : c;
      }
      s.swap(t);
    }
    if (o.handle_chinese_chars) {
      std::u32string t;
      t.reserve(s.size());
      for (char32_t c : s) {
        if (unicode::is_cjk_ideograph(c)) {
          t += U' ';
          t += c;
          t += U' ';
        } else {
          t += c;
        }
      }
      s.swap(t);
    }
    if (o.strip_accents == 1 || (o.strip_accents < 0 && o.lowercase)) s = unicode::strip_accents(s);
    if (o.lowercase) s = unicode::to_lower(s);
    return s;
  }

  void wordpiece(const std::u32string& word, std::vector<Id>& out) const {
    if (word.size() > options_.max_input_chars_per_word) {
      out.push_back(special_.unk);
      return;
    }
    const std::size_t before = out.size();
    std::size_t start = 0;
    std::string piece;
    while (start < word.size()) {
      std::size_t end = word.size();
      Id found = kNoId;
      while (start < end) {
        piece = start > 0 ? options_.continuing_prefix : std::string();
        for (std::size_t k = start; k < end; ++k) unicode::append_utf8(piece, word[k]);
        found = vocab_.find(piece);
        if (found != kNoId) break;
        --end;
      }
      if (found == kNoId) {
        out.resize(before);
        out.push_back(special_.unk);
        return;
      }
      out.push_back(found);
      start = end;
    }
  }

  static void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
      s.replace(p, from.size(), to);
  }
  static std::string cleanup(std::string s) {
    static const std::pair<const char*, const char*> rules[] = {
        {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},    {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : rules) replace_all(s, from, to);
    return s;
  }

  Options options_;
  Vocab vocab_;
  AddedTokens added_;
  PostProcessor post_;
};

}  // namespace blip2::tokenizers
