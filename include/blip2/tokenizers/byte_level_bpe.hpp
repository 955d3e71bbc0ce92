#pragma once
// Byte-level BPE as GPT-2 and OPT use it. Text is cut by GPT-2's pre-tokenizer regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (a hand-written matcher), each piece's bytes are mapped to printable characters (GPT-2's
// bytes_to_unicode), and the merges are applied lowest rank first. Loads vocab.json + merges.txt or
// Hugging Face's tokenizer.json (BPE model, ByteLevel pre-tokenizer, added tokens, post-processor).
//
// Any byte string encodes: malformed UTF-8 is classified like U+FFFD (neither letter, number nor
// space) but keeps its own bytes, so decode(encode(bytes)) == bytes for every input. decode()
// returns the raw bytes the tokens stand for; unicode::utf8_lossy() of it is what Hugging Face's
// decode returns.
#include <array>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hf_json.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace blip2::tokenizers {

namespace byte_level {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
inline const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[std::size_t(b)] = printable ? char32_t(b) : next++;
    }
    return t;
  }();
  return table;
}

// The byte a mapped character stands for, or -1.
inline int char_to_byte(char32_t c) {
  static const std::array<std::int16_t, 324> table = [] {
    std::array<std::int16_t, 324> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_to_char()[std::size_t(b)]] = std::int16_t(b);
    return t;
  }();
  return c < table.size() ? table[c] : -1;
}

// The UTF-8 string of mapped characters for `bytes`.
inline std::string map_bytes(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) unicode::append_utf8(out, byte_to_char()[b]);
  return out;
}

// GPT-2's pre-tokenizer: the regex above, matched left to right, every piece kept.
inline std::vector<std::string_view> split(std::string_view text) {
  enum : std::uint8_t { kOther, kLetter, kNumber, kSpace };
  struct Ch {
    std::uint32_t pos;
    std::uint8_t cls;
    bool ascii_space;
  };
  std::vector<Ch> chars;
  chars.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto d = unicode::decode_utf8(text, i);
    std::uint8_t cls = kOther;
    if (d.valid) {
      switch (unicode::char_class(d.cp)) {
        case unicode::CharClass::letter: cls = kLetter; break;
        case unicode::CharClass::number: cls = kNumber; break;
        case unicode::CharClass::space: cls = kSpace; break;
        default: break;
      }
    }
    chars.push_back({std::uint32_t(i), cls, d.cp == ' '});
    i += d.len;
  }
  const std::size_t n = chars.size();
  auto pos = [&](std::size_t k) { return k < n ? std::size_t(chars[k].pos) : text.size(); };
  auto run = [&](std::size_t k, std::uint8_t cls) {  // end of the run of `cls` starting at k
    while (k < n && chars[k].cls == cls) ++k;
    return k;
  };
  auto run_other = [&](std::size_t k) {
    while (k < n && chars[k].cls == kOther) ++k;
    return k;
  };
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < n) {
    std::size_t end = i;
    const std::size_t p = chars[i].pos;
    // 's 't 're 've 'm 'll 'd
    if (text[p] == '\'' && i + 1 < n) {
      const char a = text[pos(i + 1)];
      const char b = i + 2 < n ? text[pos(i + 2)] : '\0';
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        end = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        end = i + 3;
    }
    if (end == i) {
      const std::size_t j = (chars[i].ascii_space && i + 1 < n && chars[i + 1].cls != kSpace) ? i + 1 : i;
      const std::uint8_t c = chars[j].cls;
      if (c == kLetter || c == kNumber)
        end = run(j, c);  // ' ?\p{L}+' or ' ?\p{N}+'
      else if (c == kOther)
        end = run_other(j);  // ' ?[^\s\p{L}\p{N}]+'
      else {
        // \s+(?!\S) then \s+: a run of white space, leaving its last character to a following
        // non-space when the run has more than one character.
        const std::size_t k = run(i, kSpace);
        end = (k < n && k - i >= 2) ? k - 1 : k;
      }
    }
    out.push_back(text.substr(p, pos(end) - p));
    i = end;
  }
  return out;
}

}  // namespace byte_level

struct ByteLevelBPEOptions {
  bool add_prefix_space = false;  // prepend ' ' to text that does not start with one
  bool use_regex = true;          // split with GPT-2's regex (else the whole text is one word)
  bool ignore_merges = false;     // a word found whole in the vocabulary is one token
  std::string unk_token;          // empty: none (characters missing from the vocabulary are dropped)
  std::string bos_token, eos_token, pad_token;
  bool add_bos = false, add_eos = false;  // post-processing: BOS before, EOS after
};

class ByteLevelBPE : public Tokenizer {
 public:
  using Options = ByteLevelBPEOptions;

  // vocab.json ({"token": id}) and merges.txt ("a b" per line, optional "#version" first line).
  static ByteLevelBPE from_files(const std::string& vocab_json, const std::string& merges_txt, const Options& opt = {}) {
    ByteLevelBPE t;
    t.name_ = "byte-level BPE (" + vocab_json + ")";
    t.options_ = opt;
    nlohmann::json vocab = hf_json::load(vocab_json);
    BLIP2_CHECK(vocab.is_object(), IoError, vocab_json, ": vocabulary is not a JSON object {token: id}");
    t.load_vocab(vocab, vocab_json);
    const std::string merges = read_file(merges_txt, "merges file");
    std::size_t line_no = 0, begin = 0;
    int rank = 0;
    while (begin < merges.size()) {
      std::size_t end = merges.find('\n', begin);
      if (end == std::string::npos) end = merges.size();
      std::string_view line(merges.data() + begin, end - begin);
      begin = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
      const std::size_t sp = line.find(' ');
      BLIP2_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                      line.find(' ', sp + 1) == std::string_view::npos,
                  IoError, merges_txt, ": line ", line_no, ": a merge is two tokens separated by one space, got ",
                  quote(line));
      t.add_merge(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)), rank++, merges_txt, line_no);
    }
    t.finish_specials();
    return t;
  }

  // OPT (facebook/opt-*, BLIP-2 OPT checkpoints): GPT-2's merges with OPT's vocab.json, where
  // <s> = 0, <pad> = 1, </s> = 2, <unk> = 3; "</s>" is BOS and EOS and is prepended to every text.
  static ByteLevelBPE opt(const std::string& vocab_json, const std::string& merges_txt) {
    Options o;
    o.bos_token = o.eos_token = "</s>";
    o.pad_token = "<pad>";
    o.unk_token = "<unk>";
    o.add_bos = true;
    return from_files(vocab_json, merges_txt, o);
  }

  // GPT-2: "<|endoftext|>" is BOS, EOS and UNK; nothing is added around the text.
  static ByteLevelBPE gpt2(const std::string& vocab_json, const std::string& merges_txt) {
    Options o;
    o.bos_token = o.eos_token = o.unk_token = "<|endoftext|>";
    return from_files(vocab_json, merges_txt, o);
  }

  // Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer.
  static ByteLevelBPE from_tokenizer_json(const std::string& path) {
    return from_tokenizer_json(hf_json::load(path), path);
  }
  static ByteLevelBPE from_tokenizer_json(const nlohmann::json& j, const std::string& path) {
    return hf_json::guard(path, [&] { return parse_tokenizer_json(j, path); });
  }

 private:
  static ByteLevelBPE parse_tokenizer_json(const nlohmann::json& j, const std::string& path) {
    ByteLevelBPE t;
    t.name_ = "byte-level BPE (" + path + ")";
    BLIP2_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), IoError, path, ": no 'model' object");
    const auto& m = j["model"];
    BLIP2_CHECK(m.value("type", std::string("BPE")) == "BPE", IoError, path, ": model type '",
                m.value("type", std::string()), "' is not BPE");
    BLIP2_CHECK(m.contains("vocab") && m["vocab"].is_object(), IoError, path, ": model has no 'vocab' object");
    BLIP2_CHECK(m.contains("merges") && m["merges"].is_array(), IoError, path, ": model has no 'merges' array");
    auto str_or_empty = [](const nlohmann::json& v, const char* key) {
      return v.contains(key) && v[key].is_string() ? v[key].get<std::string>() : std::string();
    };
    BLIP2_CHECK(str_or_empty(m, "continuing_subword_prefix").empty() && str_or_empty(m, "end_of_word_suffix").empty(),
                IoError, path, ": BPE with a continuing_subword_prefix or end_of_word_suffix is not supported");
    BLIP2_CHECK(!(m.contains("byte_fallback") && m["byte_fallback"].is_boolean() && m["byte_fallback"].get<bool>()),
                IoError, path, ": BPE byte_fallback is not supported");
    t.options_.unk_token = str_or_empty(m, "unk_token");
    t.options_.ignore_merges = m.contains("ignore_merges") && m["ignore_merges"].is_boolean() &&
                               m["ignore_merges"].get<bool>();
    if (j.contains("normalizer") && !j["normalizer"].is_null())
      throw IoError(path + ": a normalizer before byte-level BPE is not supported");
    // Pre-tokenizer: ByteLevel, alone or as the only step of a Sequence.
    bool byte_level = false;
    auto take_pre = [&](const nlohmann::json& p) {
      BLIP2_CHECK(p.is_object() && p.value("type", std::string()) == "ByteLevel", IoError, path,
                  ": unsupported pre_tokenizer (only ByteLevel): ", p.dump().substr(0, 200));
      byte_level = true;
      t.options_.add_prefix_space = p.value("add_prefix_space", false);
      t.options_.use_regex = p.value("use_regex", true);
    };
    if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
      const auto& p = j["pre_tokenizer"];
      if (p.value("type", std::string()) == "Sequence" && p.contains("pretokenizers"))
        for (const auto& q : p["pretokenizers"]) take_pre(q);
      else
        take_pre(p);
    }
    BLIP2_CHECK(byte_level, IoError, path, ": no ByteLevel pre_tokenizer");
    t.load_vocab(m["vocab"], path);
    int rank = 0;
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const std::size_t sp = s.find(' ');
        BLIP2_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                    IoError, path, ": merge ", rank, " is not two tokens separated by one space: ", quote(s));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        BLIP2_CHECK(mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string(), IoError, path,
                    ": merge ", rank, " is neither \"a b\" nor [a, b]");
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      }
      t.add_merge(a, b, rank, path, std::size_t(rank) + 1);
      ++rank;
    }
    for (auto& a : hf_json::added_tokens(j, path)) {
      t.vocab_.add(a.content, a.id, true);
      t.added_.add(a);
    }
    t.post_ = hf_json::post_processor(
        j, path, [&](const std::string& s) { return t.vocab_.find(s); }, [&](Id id) { return t.vocab_.contains(id); });
    // tokenizer.json does not name BOS/EOS/PAD (tokenizer_config.json does): the post-processor's
    // first id is BOS (OPT's template puts "</s>" there), its last id EOS, else the usual names.
    auto find_any = [&](std::initializer_list<const char*> names) {
      for (const char* s : names)
        if (t.vocab_.find(s) != kNoId) return t.vocab_.find(s);
      return kNoId;
    };
    t.special_.unk = t.options_.unk_token.empty() ? kNoId : t.vocab_.find(t.options_.unk_token);
    t.special_.bos = !t.post_.prefix.empty() ? t.post_.prefix.front() : find_any({"<s>", "<|endoftext|>"});
    t.special_.eos = !t.post_.suffix.empty() ? t.post_.suffix.back() : find_any({"</s>", "<|endoftext|>"});
    t.special_.pad = find_any({"<pad>"});
    return t;
  }

 public:

  // Registers `token` as an added token (split out of the text, never merged). Keeps its vocabulary
  // id, or gives it the next free id. Returns the id.
  Id add_token(AddedToken token) {
    Id id = vocab_.find(token.content);
    if (id == kNoId) {
      id = token.id != kNoId ? token.id : Id(vocab_.size());
      vocab_.add(token.content, id);
    }
    token.id = id;
    added_.add(std::move(token));
    return id;
  }

  // Sets BOS, EOS and PAD by token string (empty: leave as is; added when not in the vocabulary)
  // and whether BOS / EOS are put around every text (tokenizer_config.json's add_bos_token /
  // add_eos_token). The post-processor's ids are replaced only for the flags that are set.
  void set_special_tokens(const std::string& bos, const std::string& eos, const std::string& pad, bool add_bos,
                          bool add_eos) {
    auto special = [&](const std::string& tok, Id& slot) {
      if (tok.empty()) return;
      AddedToken a;
      a.content = tok;
      slot = add_token(a);
    };
    special(bos, special_.bos);
    special(eos, special_.eos);
    special(pad, special_.pad);
    if (add_bos && special_.bos != kNoId) post_.prefix = {special_.bos};
    if (add_eos && special_.eos != kNoId) post_.suffix = {special_.eos};
  }

  // The pre-tokenizer's pieces of `text` (raw bytes, before the byte mapping).
  std::vector<std::string_view> pre_tokenize(std::string_view text) const {
    if (!options_.use_regex) return text.empty() ? std::vector<std::string_view>{} : std::vector<std::string_view>{text};
    return byte_level::split(text);
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
      std::string prefixed;
      std::string_view s = seg.text;
      if (options_.add_prefix_space && (s.empty() || s.front() != ' ')) {
        prefixed = " " + std::string(s);
        s = prefixed;
      }
      for (std::string_view word : pre_tokenize(s)) bpe(byte_level::map_bytes(word), ids);
    }
    if (add_special_tokens) post_.apply(ids);
    return ids;
  }

  std::string decode(const std::vector<Id>& ids, bool skip_special_tokens = false) const override {
    std::string out;
    for (Id id : ids) {
      BLIP2_CHECK(vocab_.contains(id), ValueError, name_, ": decode: id ", id, " is not in the vocabulary (size ",
                  vocab_.size(), ")");
      if (skip_special_tokens && is_special(id)) continue;
      const std::string& tok = vocab_.token(id);
      std::string bytes;
      bool mapped = true;
      for (std::size_t i = 0; i < tok.size();) {
        const auto d = unicode::decode_utf8(tok, i);
        const int b = d.valid ? byte_level::char_to_byte(d.cp) : -1;
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes += char(b);
        i += d.len;
      }
      out += mapped ? bytes : tok;
    }
    return out;
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
  std::size_t num_merges() const { return merges_.size(); }
  const Options& options() const { return options_; }
  const PostProcessor& post_processor() const { return post_; }

 private:
  ByteLevelBPE() = default;

  void load_vocab(const nlohmann::json& vocab, const std::string& path) {
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      BLIP2_CHECK(it->is_number_integer() && it->get<std::int64_t>() >= 0 && it->get<std::int64_t>() < (Id(1) << 26),
                  IoError, path, ": token ", quote(it.key()), " has no valid id");
      vocab_.add(it.key(), it->get<Id>());
    }
    BLIP2_CHECK(vocab_.count() > 0, IoError, path, ": empty vocabulary");
  }

  void add_merge(const std::string& a, const std::string& b, int rank, const std::string& path, std::size_t line) {
    const Id ia = vocab_.find(a), ib = vocab_.find(b), ic = vocab_.find(a + b);
    BLIP2_CHECK(ia != kNoId && ib != kNoId, IoError, path, ": merge ", line, " (", quote(a), " ", quote(b),
                "): token ", quote(ia == kNoId ? a : b), " is not in the vocabulary");
    BLIP2_CHECK(ic != kNoId, IoError, path, ": merge ", line, ": merged token ", quote(a + b),
                " is not in the vocabulary");
    merges_.emplace(key(ia, ib), Merge{rank, std::int32_t(ic)});  // first (lowest) rank wins
  }

  void finish_specials() {
    auto special = [&](const std::string& tok) -> Id {
      if (tok.empty()) return kNoId;
      AddedToken a;
      a.content = tok;
      return add_token(a);
    };
    special_.bos = special(options_.bos_token);
    special_.eos = special(options_.eos_token);
    special_.pad = special(options_.pad_token);
    special_.unk = options_.unk_token.empty() ? kNoId : special(options_.unk_token);
    if (options_.add_bos && special_.bos != kNoId) post_.prefix = {special_.bos};
    if (options_.add_eos && special_.eos != kNoId) post_.suffix = {special_.eos};
    if (special_.eos == kNoId && !post_.suffix.empty()) special_.eos = post_.suffix.back();
  }

  static std::uint64_t key(Id a, Id b) { return (std::uint64_t(a) << 32) | std::uint64_t(b); }

  // BPE on one word of mapped characters; appends its ids.
  void bpe(const std::string& word, std::vector<Id>& out) const {
    if (word.empty()) return;
    if (options_.ignore_merges) {
      const Id whole = vocab_.find(word);
      if (whole != kNoId) {
        out.push_back(whole);
        return;
      }
    }
    struct Sym {
      std::int32_t id, prev, next;
    };
    std::vector<Sym> syms;
    for (std::size_t i = 0; i < word.size();) {
      const auto d = unicode::decode_utf8(word, i);
      const Id id = vocab_.find(std::string_view(word).substr(i, d.len));
      i += d.len;
      if (id == kNoId) {
        if (special_.unk == kNoId) continue;  // as Hugging Face: dropped without an unk token
        syms.push_back({std::int32_t(special_.unk), 0, 0});
      } else {
        syms.push_back({std::int32_t(id), 0, 0});
      }
    }
    const int n = int(syms.size());
    for (int i = 0; i < n; ++i) {
      syms[std::size_t(i)].prev = i - 1;
      syms[std::size_t(i)].next = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      int rank, pos;
      std::int32_t a, b, merged;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int pos) {
      if (pos < 0) return;
      const int nx = syms[std::size_t(pos)].next;
      if (nx < 0) return;
      const auto it = merges_.find(key(syms[std::size_t(pos)].id, syms[std::size_t(nx)].id));
      if (it != merges_.end())
        heap.push({it->second.rank, pos, syms[std::size_t(pos)].id, syms[std::size_t(nx)].id, it->second.merged});
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    std::vector<bool> dead(std::size_t(n), false);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& s = syms[std::size_t(c.pos)];
      if (dead[std::size_t(c.pos)] || s.id != c.a || s.next < 0 || syms[std::size_t(s.next)].id != c.b) continue;
      const int right = s.next;
      s.id = c.merged;
      dead[std::size_t(right)] = true;
      s.next = syms[std::size_t(right)].next;
      if (s.next >= 0) syms[std::size_t(s.next)].prev = c.pos;
      push(s.prev);
      push(c.pos);
    }
    for (int i = n > 0 ? 0 : -1; i >= 0; i = syms[std::size_t(i)].next) out.push_back(syms[std::size_t(i)].id);
  }

  struct Merge {
    int rank;
    std::int32_t merged;
  };
  Options options_;
  Vocab vocab_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  AddedTokens added_;
  PostProcessor post_;
};

}  // namespace blip2::tokenizers
