#pragma once
// SentencePiece unigram models as T5 / Flan-T5 use them (spiece.model), matching the sentencepiece
// library (spm_encode / spm_decode):
//   normalise: the model's precompiled_charsmap (a Darts double-array trie over UTF-8 bytes plus a
//              blob of replacement strings: nmt_nfkc for real T5 models), leading/trailing/repeated
//              spaces removed (remove_extra_whitespaces), a "▁" prepended (add_dummy_prefix), spaces
//              written as "▁"; user-defined pieces pass through untouched; a malformed UTF-8 byte
//              becomes U+FFFD;
//   segment:   Viterbi over the pieces' log-probability scores (sentencepiece's optimised search,
//              float arithmetic and tie-breaking included); a character no piece covers is <unk>
//              (consecutive ones merged) or, with byte_fallback, its UTF-8 bytes <0xXX>;
//   process:   </s> appended (T5).
// Decoding joins pieces, "▁" -> " " (the leading one dropped), byte pieces regrouped into UTF-8
// (malformed bytes -> U+FFFD), control pieces invisible, <unk> as " ⁇ ".
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protobuf.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace blip2::tokenizers {

namespace spm {

enum class PieceType : std::uint8_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct Piece {
  std::string text;
  float score = 0;
  PieceType type = PieceType::normal;
};

// The fields of sentencepiece's ModelProto that encoding and decoding need.
struct ModelProto {
  std::vector<Piece> pieces;
  int model_type = 1;  // 1 unigram, 2 BPE, 3 word, 4 char
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";
  // normalizer_spec
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  bool has_denormalizer = false;
};

inline ModelProto parse_model_proto(std::string_view data, const std::string& path) {
  using protobuf::WireType;
  ModelProto m;
  protobuf::Reader r(data, path);
  while (!r.done()) {
    const auto f = r.next();
    if (f.number == 1) {  // SentencePiece
      r.expect(f, WireType::bytes, "pieces");
      Piece p;
      bool has_piece = false;
      protobuf::Reader pr(f.bytes, path);
      while (!pr.done()) {
        const auto g = pr.next();
        if (g.number == 1) {
          pr.expect(g, WireType::bytes, "piece");
          p.text = std::string(g.bytes);
          has_piece = true;
        } else if (g.number == 2) {
          pr.expect(g, WireType::fixed32, "score");
          p.score = g.as_float();
        } else if (g.number == 3) {
          pr.expect(g, WireType::varint, "type");
          BLIP2_CHECK(g.varint >= 1 && g.varint <= 6, IoError, path, ": piece ", m.pieces.size(), " has unknown type ",
                      g.varint);
          p.type = static_cast<PieceType>(g.varint);
        }
      }
      BLIP2_CHECK(has_piece && !p.text.empty(), IoError, path, ": piece ", m.pieces.size(), " is empty");
      m.pieces.push_back(std::move(p));
    } else if (f.number == 2) {  // TrainerSpec
      r.expect(f, WireType::bytes, "trainer_spec");
      protobuf::Reader tr(f.bytes, path);
      while (!tr.done()) {
        const auto g = tr.next();
        switch (g.number) {
          case 3: m.model_type = g.as_int32(); break;
          case 24: m.treat_whitespace_as_suffix = g.as_bool(); break;
          case 35: m.byte_fallback = g.as_bool(); break;
          case 40: m.unk_id = g.as_int32(); break;
          case 41: m.bos_id = g.as_int32(); break;
          case 42: m.eos_id = g.as_int32(); break;
          case 43: m.pad_id = g.as_int32(); break;
          case 44:
            tr.expect(g, WireType::bytes, "unk_surface");
            m.unk_surface = std::string(g.bytes);
            break;
          default: break;
        }
      }
    } else if (f.number == 3 || f.number == 5) {  // NormalizerSpec, denormalizer_spec
      r.expect(f, WireType::bytes, "normalizer_spec");
      protobuf::Reader nr(f.bytes, path);
      while (!nr.done()) {
        const auto g = nr.next();
        if (f.number == 5) {
          if (g.number == 2 && !g.bytes.empty()) m.has_denormalizer = true;
          continue;
        }
        switch (g.number) {
          case 1: m.normalizer_name = std::string(g.bytes); break;
          case 2:
            nr.expect(g, WireType::bytes, "precompiled_charsmap");
            m.precompiled_charsmap = std::string(g.bytes);
            break;
          case 3: m.add_dummy_prefix = g.as_bool(); break;
          case 4: m.remove_extra_whitespaces = g.as_bool(); break;
          case 5: m.escape_whitespaces = g.as_bool(); break;
          default: break;
        }
      }
    }
  }
  BLIP2_CHECK(!m.pieces.empty(), IoError, path, ": no pieces (not a sentencepiece model?)");
  return m;
}

// Read access to a darts-clone double array (the trie format of precompiled_charsmap).
class DoubleArray {
 public:
  DoubleArray() = default;
  DoubleArray(std::string_view units, std::string what) : what_(std::move(what)) {
    BLIP2_CHECK(units.size() % 4 == 0 && !units.empty(), IoError, what_, ": double-array trie of ", units.size(),
                " bytes is not a whole number of 4-byte units");
    units_.resize(units.size() / 4);
    for (std::size_t i = 0; i < units_.size(); ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(units.data()) + 4 * i;
      units_[i] = std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
    }
  }
  bool empty() const { return units_.empty(); }

  // Longest key that is a prefix of `key`: its length and value (length 0: none).
  std::pair<std::size_t, std::uint32_t> longest_prefix(std::string_view key) const {
    std::pair<std::size_t, std::uint32_t> best{0, 0};
    if (units_.empty()) return best;
    std::size_t node = offset(units_[0]);
    for (std::size_t i = 0; i < key.size(); ++i) {
      const auto c = static_cast<unsigned char>(key[i]);
      node ^= c;
      if (node >= units_.size()) return best;
      const std::uint32_t unit = units_[node];
      if ((unit & ((1u << 31) | 0xFFu)) != c) return best;  // label mismatch
      node ^= offset(unit);
      if ((unit >> 8) & 1u) {  // has a leaf: the value sits in the unit at `node`
        if (node >= units_.size()) return best;
        best = {i + 1, units_[node] & ((1u << 31) - 1)};
      }
    }
    return best;
  }

 private:
  static std::size_t offset(std::uint32_t unit) { return std::size_t(unit >> 10) << ((unit & (1u << 9)) >> 6); }
  std::vector<std::uint32_t> units_;
  std::string what_;
};

// sentencepiece's string_util::DecodeUTF8 validity: length of the valid character at `pos`, or 0
// when it is malformed (then one byte is consumed).
inline std::size_t valid_char_len(std::string_view s, std::size_t pos) {
  const auto d = unicode::decode_utf8(s, pos);
  return d.valid ? d.len : 0;
}

// sentencepiece's OneCharLen: a character's length from its lead byte alone.
inline std::size_t one_char_len(unsigned char lead) {
  static constexpr unsigned char kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace spm

struct SentencePieceOptions {
  bool add_bos = false;  // prepend the model's <s> (when it has one)
  bool add_eos = true;   // append the model's </s> (T5 does)
  int extra_ids = 0;     // T5's <extra_id_0..N-1> sentinels, ids vocab+N-1 down to vocab
  bool split_control_tokens = false;  // recognise "</s>", "<pad>", "<unk>" written in the text
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  using Options = SentencePieceOptions;

  // Loads a sentencepiece model file (spiece.model); IoError naming it when missing or corrupt.
  static SentencePieceTokenizer from_file(const std::string& path, const Options& opt = {}) {
    return from_bytes(read_file(path, "sentencepiece model"), path, opt);
  }
  static SentencePieceTokenizer from_bytes(std::string_view bytes, const std::string& path, const Options& opt = {}) {
    SentencePieceTokenizer t;
    t.name_ = "SentencePiece (" + path + ")";
    t.options_ = opt;
    t.model_ = spm::parse_model_proto(bytes, path);
    t.init(path);
    return t;
  }

  // T5 / Flan-T5: spiece.model, </s> appended, 100 <extra_id_*> sentinels, special tokens in text
  // recognised (as transformers' T5Tokenizer does).
  static SentencePieceTokenizer t5(const std::string& spiece_model) {
    Options o;
    o.add_eos = true;
    o.extra_ids = 100;
    o.split_control_tokens = true;
    return from_file(spiece_model, o);
  }

  // The normalised text the model segments ("▁" for spaces).
  std::string normalize(std::string_view text) const {
    std::string out;
    normalize(text, out);
    return out;
  }

  // Pieces and ids of `text` as spm_encode gives them (no </s>).
  std::vector<std::pair<std::string, Id>> encode_pieces(std::string_view text) const {
    std::vector<std::pair<std::string, Id>> out;
    for (const Segment& seg : added_.split(text)) {
      if (seg.id != kNoId)
        out.emplace_back(id_to_token(seg.id), seg.id);
      else
        encode_plain(seg.text, out);
    }
    return out;
  }

  std::vector<std::string> tokenize(std::string_view text) const override {
    std::vector<std::string> out;
    for (auto& p : encode_pieces(text)) out.push_back(std::move(p.first));
    return out;
  }

  std::vector<Id> encode(std::string_view text, bool add_special_tokens = true) const override {
    std::vector<Id> ids;
    if (add_special_tokens && options_.add_bos && special_.bos != kNoId) ids.push_back(special_.bos);
    for (const auto& p : encode_pieces(text)) ids.push_back(p.second);
    if (add_special_tokens && options_.add_eos && special_.eos != kNoId) ids.push_back(special_.eos);
    return ids;
  }

  std::string decode(const std::vector<Id>& ids, bool skip_special_tokens = false) const override {
    std::string text, bytes;
    auto flush_bytes = [&] {
      // Byte pieces regrouped into characters; each malformed byte becomes U+FFFD.
      for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t n = spm::valid_char_len(bytes, i);
        if (n == 0) {
          text += "\xEF\xBF\xBD";
          ++i;
        } else {
          text.append(bytes, i, n);
          i += n;
        }
      }
      bytes.clear();
    };
    for (Id id : ids) {
      BLIP2_CHECK(id >= 0 && std::size_t(id) < vocab_size(), ValueError, name_, ": decode: id ", id,
                  " is not in the vocabulary (size ", vocab_size(), ")");
      if (std::size_t(id) >= model_.pieces.size()) {  // an added sentinel
        if (skip_special_tokens) continue;
        flush_bytes();
        text += id_to_token(id);
        continue;
      }
      const spm::Piece& p = model_.pieces[std::size_t(id)];
      if (p.type == spm::PieceType::byte) {
        bytes += char(byte_value_[std::size_t(id)]);
        continue;
      }
      flush_bytes();
      if (p.type == spm::PieceType::control) continue;
      if (p.type == spm::PieceType::unknown) {
        if (!skip_special_tokens) text += model_.unk_surface;
        continue;
      }
      std::string_view piece = p.text;
      const std::string_view space = "\xE2\x96\x81";
      if (text.empty() && (model_.add_dummy_prefix || model_.remove_extra_whitespaces) &&
          piece.substr(0, space.size()) == space)
        piece.remove_prefix(space.size());
      for (std::size_t i = 0; i < piece.size();) {
        if (piece.compare(i, space.size(), space) == 0) {
          text += ' ';
          i += space.size();
        } else {
          text += piece[i++];
        }
      }
    }
    flush_bytes();
    return text;
  }

  bool has_id(Id id) const override { return id >= 0 && std::size_t(id) < vocab_size(); }
  std::string id_to_token(Id id) const override {
    BLIP2_CHECK(id >= 0 && std::size_t(id) < vocab_size(), ValueError, name_, ": id ", id,
                " is not in the vocabulary (size ", vocab_size(), ")");
    if (std::size_t(id) < model_.pieces.size()) return model_.pieces[std::size_t(id)].text;
    return "<extra_id_" + std::to_string(Id(vocab_size()) - 1 - id) + ">";
  }
  Id find_token(std::string_view token) const override {
    auto it = piece_ids_.find(std::string(token));
    if (it != piece_ids_.end()) return it->second;
    for (const auto& a : added_.tokens())
      if (a.content == token) return a.id;
    return kNoId;
  }
  std::size_t vocab_size() const override { return model_.pieces.size() + std::size_t(options_.extra_ids); }
  bool is_special(Id id) const override {
    if (id < 0 || std::size_t(id) >= vocab_size()) return false;
    if (std::size_t(id) >= model_.pieces.size()) return true;
    const auto t = model_.pieces[std::size_t(id)].type;
    return t == spm::PieceType::control || t == spm::PieceType::unknown;
  }
  const spm::ModelProto& model() const { return model_; }
  bool byte_fallback() const { return model_.byte_fallback; }

 private:
  SentencePieceTokenizer() = default;

  void init(const std::string& path) {
    BLIP2_CHECK(model_.model_type == 1, IoError, path, ": sentencepiece model type ", model_.model_type,
                " is not supported (only unigram, type 1)");
    BLIP2_CHECK(!model_.has_denormalizer, IoError, path, ": denormalizer rules are not supported");
    BLIP2_CHECK(model_.escape_whitespaces, IoError, path, ": escape_whitespaces=false is not supported");
    min_score_ = FLT_MAX;
    max_score_ = FLT_MIN;  // as sentencepiece: FLT_MIN, the smallest positive float
    int unk = -1;
    byte_value_.assign(model_.pieces.size(), -1);
    for (std::size_t i = 0; i < model_.pieces.size(); ++i) {
      const auto& p = model_.pieces[i];
      BLIP2_CHECK(piece_ids_.emplace(p.text, Id(i)).second, IoError, path, ": piece ", quote(p.text),
                  " appears twice");
      switch (p.type) {
        case spm::PieceType::normal:
          min_score_ = std::min(min_score_, p.score);
          max_score_ = std::max(max_score_, p.score);
          [[fallthrough]];
        case spm::PieceType::user_defined:
        case spm::PieceType::unused:
          matchable_.emplace(p.text, std::int32_t(i));
          max_piece_bytes_ = std::max(max_piece_bytes_, p.text.size());
          if (p.type == spm::PieceType::user_defined) {
            user_defined_.emplace(p.text, std::int32_t(i));
            max_user_bytes_ = std::max(max_user_bytes_, p.text.size());
          }
          break;
        case spm::PieceType::unknown:
          BLIP2_CHECK(unk < 0, IoError, path, ": more than one unknown piece");
          unk = int(i);
          break;
        case spm::PieceType::byte: {
          BLIP2_CHECK(model_.byte_fallback, IoError, path, ": byte piece ", quote(p.text),
                      " in a model without byte_fallback");
          const int b = parse_byte_piece(p.text);
          BLIP2_CHECK(b >= 0, IoError, path, ": malformed byte piece ", quote(p.text));
          byte_value_[i] = std::int16_t(b);
          break;
        }
        case spm::PieceType::control: break;
      }
    }
    BLIP2_CHECK(unk >= 0, IoError, path, ": no unknown piece (<unk>)");
    unk_id_ = unk;
    if (model_.byte_fallback) {
      for (int b = 0; b < 256; ++b) {
        const auto it = piece_ids_.find(byte_piece(b));
        BLIP2_CHECK(it != piece_ids_.end() && model_.pieces[std::size_t(it->second)].type == spm::PieceType::byte,
                    IoError, path, ": byte_fallback model lacks the byte piece ", byte_piece(b));
        byte_ids_[std::size_t(b)] = std::int32_t(it->second);
      }
    }
    if (!model_.precompiled_charsmap.empty()) {
      const std::string& blob = model_.precompiled_charsmap;
      BLIP2_CHECK(blob.size() > 4, IoError, path, ": precompiled_charsmap is truncated");
      const std::uint32_t trie_size = std::uint32_t(static_cast<unsigned char>(blob[0])) |
                                      std::uint32_t(static_cast<unsigned char>(blob[1])) << 8 |
                                      std::uint32_t(static_cast<unsigned char>(blob[2])) << 16 |
                                      std::uint32_t(static_cast<unsigned char>(blob[3])) << 24;
      BLIP2_CHECK(trie_size < blob.size() - 4 + 1 && trie_size > 0, IoError, path, ": precompiled_charsmap trie size ",
                  trie_size, " exceeds the blob (", blob.size(), " bytes)");
      charsmap_trie_ = spm::DoubleArray(std::string_view(blob).substr(4, trie_size), path + " (precompiled_charsmap)");
      charsmap_strings_at_ = 4 + std::size_t(trie_size);
    }
    auto id_or_none = [&](std::int32_t id, spm::PieceType want) -> Id {
      if (id < 0 || std::size_t(id) >= model_.pieces.size()) return kNoId;
      return model_.pieces[std::size_t(id)].type == want ? Id(id) : kNoId;
    };
    special_.unk = unk_id_;
    special_.bos = id_or_none(model_.bos_id, spm::PieceType::control);
    special_.eos = id_or_none(model_.eos_id, spm::PieceType::control);
    special_.pad = id_or_none(model_.pad_id, spm::PieceType::control);
    if (options_.split_control_tokens) {
      for (std::size_t i = 0; i < model_.pieces.size(); ++i) {
        const auto t = model_.pieces[i].type;
        if (t == spm::PieceType::control || t == spm::PieceType::unknown) {
          AddedToken a;
          a.content = model_.pieces[i].text;
          a.id = Id(i);
          added_.add(a);
        }
      }
    }
    BLIP2_CHECK(options_.extra_ids >= 0 && options_.extra_ids <= 100000, ValueError, name_, ": extra_ids ",
                options_.extra_ids, " out of range");
    for (int k = 0; k < options_.extra_ids; ++k) {
      AddedToken a;
      a.content = "<extra_id_" + std::to_string(k) + ">";
      a.id = Id(vocab_size()) - 1 - k;
      added_.add(a);
    }
  }

  static std::string byte_piece(int b) {
    static const char* hex = "0123456789ABCDEF";
    return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
  }
  static int parse_byte_piece(const std::string& s) {
    if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return -1;
    auto h = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    const int a = h(s[3]), b = h(s[4]);
    return a < 0 || b < 0 ? -1 : a * 16 + b;
  }

  // sentencepiece's Normalizer::NormalizePrefix: the normalised form of the longest prefix rule
  // (or a user-defined piece, or one character) and the input bytes it consumes.
  std::pair<std::string_view, std::size_t> normalize_prefix(std::string_view input) const {
    if (max_user_bytes_) {
      std::size_t best = 0;
      for (std::size_t n = 1; n <= std::min(max_user_bytes_, input.size()); ++n)
        if (user_defined_.count(std::string(input.substr(0, n)))) best = n;
      if (best) return {input.substr(0, best), best};
    }
    if (!charsmap_trie_.empty()) {
      const std::string_view charsmap_strings = std::string_view(model_.precompiled_charsmap).substr(charsmap_strings_at_);
      const auto [len, value] = charsmap_trie_.longest_prefix(input);
      if (len > 0) {
        BLIP2_CHECK(value < charsmap_strings.size(), IoError, name_, ": precompiled_charsmap value ", value,
                    " outside its string blob");
        const std::size_t end = charsmap_strings.find('\0', value);
        const std::string_view rep =
            charsmap_strings.substr(value, end == std::string_view::npos ? std::string_view::npos : end - value);
        return {rep, len};
      }
    }
    const std::size_t n = spm::valid_char_len(input, 0);
    if (n == 0) return {std::string_view("\xEF\xBF\xBD", 3), 1};
    return {input.substr(0, n), n};
  }

  void normalize(std::string_view input, std::string& out) const {
    out.clear();
    const std::string_view space = "\xE2\x96\x81";
    if (model_.remove_extra_whitespaces) {
      while (!input.empty()) {
        const auto p = normalize_prefix(input);
        if (p.first != " ") break;
        input.remove_prefix(p.second);
      }
    }
    if (input.empty()) return;
    const bool suffix = model_.treat_whitespace_as_suffix;
    if (!suffix && model_.add_dummy_prefix) out += space;
    bool prev_space = model_.remove_extra_whitespaces;
    while (!input.empty()) {
      const auto p = normalize_prefix(input);
      std::string_view sp = p.first;
      while (prev_space && !sp.empty() && sp.front() == ' ') sp.remove_prefix(1);
      if (!sp.empty()) {
        for (char c : sp) {
          if (c == ' ')
            out += space;
          else
            out += c;
        }
        prev_space = sp.back() == ' ';
      }
      input.remove_prefix(p.second);
      if (!model_.remove_extra_whitespaces) prev_space = false;
    }
    if (model_.remove_extra_whitespaces)
      while (out.size() >= space.size() && out.compare(out.size() - space.size(), space.size(), space) == 0)
        out.resize(out.size() - space.size());
    if (suffix && model_.add_dummy_prefix) out += space;
  }

  // Normalise and segment one stretch of text; appends (piece, id) pairs.
  void encode_plain(std::string_view text, std::vector<std::pair<std::string, Id>>& out) const {
    std::string norm;
    normalize(text, norm);
    if (norm.empty()) return;
    const std::size_t size = norm.size();
    struct Best {
      std::int32_t id = -1;
      float score = 0;
      std::int64_t starts_at = -1;
    };
    std::vector<Best> best(size + 1);
    const float unk_score = min_score_ - 10.0f;
    std::string key;
    for (std::size_t start = 0; start < size;) {
      const float till_here = best[start].score;
      const std::size_t mblen = std::min(spm::one_char_len(static_cast<unsigned char>(norm[start])), size - start);
      bool has_single = false;
      const std::size_t max_len = std::min(max_piece_bytes_, size - start);
      for (std::size_t len = 1; len <= max_len; ++len) {
        key.assign(norm, start, len);
        const auto it = matchable_.find(key);
        if (it == matchable_.end()) continue;
        const std::int32_t id = it->second;
        const auto type = model_.pieces[std::size_t(id)].type;
        if (type == spm::PieceType::unused) continue;
        Best& target = best[start + len];
        double candidate;
        if (type == spm::PieceType::user_defined)
          candidate = (double(float(len) * max_score_) - 0.1) + double(till_here);
        else
          candidate = double(model_.pieces[std::size_t(id)].score + till_here);
        if (target.starts_at == -1 || candidate > double(target.score)) {
          target.score = float(candidate);
          target.starts_at = std::int64_t(start);
          target.id = id;
        }
        if (len == mblen) has_single = true;
      }
      if (!has_single) {
        Best& target = best[start + mblen];
        const float candidate = unk_score + till_here;
        if (target.starts_at == -1 || candidate > target.score) {
          target.score = candidate;
          target.starts_at = std::int64_t(start);
          target.id = unk_id_;
        }
      }
      start += mblen;
    }
    std::vector<std::pair<std::size_t, std::int32_t>> path;  // (start, id), reversed
    for (std::size_t end = size; end > 0;) {
      const Best& b = best[end];
      path.emplace_back(std::size_t(b.starts_at), b.id);
      end = std::size_t(b.starts_at);
    }
    bool prev_unk = false;
    for (std::size_t k = path.size(); k-- > 0;) {
      const std::size_t begin = path[k].first;
      const std::size_t end = k > 0 ? path[k - 1].first : size;
      const std::string_view piece = std::string_view(norm).substr(begin, end - begin);
      const std::int32_t id = path[k].second;
      const bool is_unk = id == unk_id_;
      if (is_unk && model_.byte_fallback) {
        for (unsigned char b : piece) out.emplace_back(byte_piece(b), byte_ids_[b]);
      } else if (is_unk && prev_unk) {
        out.back().first += piece;  // runs of unknown characters are one <unk>
      } else {
        out.emplace_back(std::string(piece), id);
      }
      prev_unk = is_unk;
    }
  }

  Options options_;
  spm::ModelProto model_;
  std::unordered_map<std::string, Id> piece_ids_;            // every piece
  std::unordered_map<std::string, std::int32_t> matchable_;  // normal, user-defined, unused
  std::unordered_map<std::string, std::int32_t> user_defined_;
  std::size_t max_piece_bytes_ = 0, max_user_bytes_ = 0;
  std::vector<std::int16_t> byte_value_;
  std::int32_t byte_ids_[256] = {};
  std::int32_t unk_id_ = 0;
  float min_score_ = 0, max_score_ = 0;
  spm::DoubleArray charsmap_trie_;
  std::size_t charsmap_strings_at_ = 0;  // where the replacement strings start in precompiled_charsmap
  AddedTokens added_;
};

}  // namespace blip2::tokenizers
