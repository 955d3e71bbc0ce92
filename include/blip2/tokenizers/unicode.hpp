#pragma once
// UTF-8 decoding and encoding, and the character properties the tokenizers need: the GPT-2
// pre-tokenizer's \p{L}, \p{N} and \s, BERT's punctuation, control characters, CJK ideographs,
// lower-casing and accent stripping (NFD, then drop non-spacing marks). The data is generated from
// Python's unicodedata into unicode_tables.hpp by scripts/gen_unicode_tables.py.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "unicode_tables.hpp"

namespace blip2::tokenizers::unicode {

inline constexpr char32_t kReplacement = 0xFFFD;

// One step of UTF-8 decoding. `valid` is false for a malformed sequence; then `cp` is U+FFFD and
// `len` is the length of its maximal subpart (Unicode's recommended practice, which Python's
// errors="replace" and Rust's from_utf8_lossy follow): at least 1 byte.
struct Decoded {
  char32_t cp;
  std::uint8_t len;
  bool valid;
};

inline Decoded decode_utf8(std::string_view s, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const std::size_t n = s.size() - pos;
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1, true};
  int need = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return {kReplacement, 1, false};
  }
  for (int k = 1; k <= need; ++k) {
    if (std::size_t(k) >= n) return {kReplacement, std::uint8_t(k), false};
    const unsigned char b = byte(pos + k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return {kReplacement, std::uint8_t(k), false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, std::uint8_t(need + 1), true};
}

// Python's str.isspace(), which is what `\s` matches in a str pattern.
inline bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Code points of `s`; each malformed subpart becomes U+FFFD.
inline std::u32string to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const Decoded d = decode_utf8(s, i);
    out += d.cp;
    i += d.len;
  }
  return out;
}

inline std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const Decoded d = decode_utf8(s, i);
    if (!d.valid) return false;
    i += d.len;
  }
  return true;
}

// `s` with every malformed subpart replaced by U+FFFD, as Hugging Face's decode (Rust
// String::from_utf8_lossy) and Python's bytes.decode("utf-8", "replace") produce it.
inline std::string utf8_lossy(std::string_view s) { return to_utf8(to_u32(s)); }

// Number of code points (malformed subparts count as one each).
inline std::size_t count_chars(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++n) i += decode_utf8(s, i).len;
  return n;
}

// ---- character classes --------------------------------------------------------------------------

enum class CharClass : std::uint8_t { other = 0, letter, number, punctuation, mark_nonspacing, control, space };

inline CharClass char_class(char32_t cp) {
  if (cp < 0x80) {  // fast path, same answers as the table
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::letter;
    if (cp >= '0' && cp <= '9') return CharClass::number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::space;
  }
  if (cp > 0x10FFFF) return CharClass::control;
  const auto& runs = unicode_tables::kClassRuns;
  const std::uint32_t key = (std::uint32_t(cp) << 3) | 7u;
  const auto* it = std::upper_bound(std::begin(runs), std::end(runs), key);
  return static_cast<CharClass>(*(it - 1) & 7u);
}

// \p{L}: Lu, Ll, Lt, Lm, Lo.
inline bool is_letter(char32_t cp) { return char_class(cp) == CharClass::letter; }
// \p{N}: Nd, Nl, No.
inline bool is_number(char32_t cp) { return char_class(cp) == CharClass::number; }
// The White_Space property (what Oniguruma's \s and Rust's char::is_whitespace test).
inline bool is_whitespace(char32_t cp) { return char_class(cp) == CharClass::space; }
// Mn.
inline bool is_mark_nonspacing(char32_t cp) { return char_class(cp) == CharClass::mark_nonspacing; }
// BERT's punctuation: ASCII punctuation (including symbols such as $ + < = > ^ ` | ~) or any P*.
inline bool is_bert_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  return char_class(cp) == CharClass::punctuation;
}
// BERT's control characters: every C* category (Cc, Cf, Cs, Co, Cn) except \t \n \r, which count
// as white space. Control characters that are also White_Space (\v, \f, U+0085) are controls.
inline bool is_bert_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp == 0x0B || cp == 0x0C || cp == 0x85) return true;
  return char_class(cp) == CharClass::control;
}
// BERT's white space: \t \n \r or White_Space.
inline bool is_bert_whitespace(char32_t cp) { return is_whitespace(cp); }

// BERT's "Chinese character": the CJK Unified Ideographs blocks (not Hangul, Hiragana, Katakana).
inline bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// ---- case and accents ----------------------------------------------------------------------------

// Appends the full lower case of cp (one code point, except U+0130 -> "i" U+0307).
inline void append_lower(std::u32string& out, char32_t cp) {
  if (cp < 0x80) {
    out += (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return;
  }
  if (cp == 0x130) {
    out += U'i';
    out += char32_t(0x307);
    return;
  }
  const auto& runs = unicode_tables::kLowerRuns;
  const auto* it = std::upper_bound(std::begin(runs), std::end(runs), std::uint32_t(cp),
                                    [](std::uint32_t c, const unicode_tables::LowerRun& r) { return c < r.first; });
  if (it != std::begin(runs)) {
    const auto& r = *(it - 1);
    if (cp <= r.last && (cp - r.first) % r.stride == 0) {
      out += char32_t(std::int64_t(cp) + r.delta);
      return;
    }
  }
  out += cp;
}

inline std::u32string to_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) append_lower(out, c);
  return out;
}

namespace detail {
inline int non_mn_combining_class(char32_t cp) {
  for (std::uint32_t e : unicode_tables::kNonMnCombining)
    if ((e >> 8) == cp) return int(e & 0xFF);
  return 0;
}
}  // namespace detail

// Appends NFD(cp) without its non-spacing marks (BERT's strip_accents, one character).
inline void append_stripped(std::u32string& out, char32_t cp) {
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable: L V (T), all letters
    const char32_t s = cp - 0xAC00;
    out += char32_t(0x1100 + s / 588);
    out += char32_t(0x1161 + (s % 588) / 28);
    if (s % 28) out += char32_t(0x11A7 + s % 28);
    return;
  }
  if (cp < 0xC0) {
    out += cp;
    return;
  }
  if (is_mark_nonspacing(cp)) return;
  const auto& single = unicode_tables::kStripMap;
  const std::uint64_t key = std::uint64_t(cp) << 21;
  const auto* it = std::lower_bound(std::begin(single), std::end(single), key);
  if (it != std::end(single) && (*it >> 21) == cp) {
    out += char32_t(*it & 0x1FFFFF);
    return;
  }
  for (const auto& m : unicode_tables::kStripMulti) {
    if (m.cp == cp) {
      out += char32_t(m.c1);
      out += char32_t(m.c2);
      if (m.c3) out += char32_t(m.c3);
      return;
    }
  }
  out += cp;
}

// NFD of s with every Mn dropped, canonical order kept for the remaining combining characters.
inline std::u32string strip_accents(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  bool reorder = false;
  for (char32_t c : s) {
    append_stripped(out, c);
    if (!reorder && c >= 0x1700) reorder = true;  // all non-Mn combining characters are >= U+1715
  }
  if (reorder) {
    // Canonical ordering: stable sort of each run of characters with a non-zero combining class.
    for (std::size_t i = 0; i < out.size();) {
      if (!detail::non_mn_combining_class(out[i])) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < out.size() && detail::non_mn_combining_class(out[j])) ++j;
      std::stable_sort(out.begin() + std::ptrdiff_t(i), out.begin() + std::ptrdiff_t(j), [](char32_t a, char32_t b) {
        return detail::non_mn_combining_class(a) < detail::non_mn_combining_class(b);
      });
      i = j;
    }
  }
  return out;
}

}  // namespace blip2::tokenizers::unicode
