#pragma once
// LAVIS's caption cleaning for training (lavis/processors/blip_processors.py, BlipCaptionProcessor),
// rule for rule:
//   caption.lower(); re.sub(r"([.!\"()*#:;~])", " ", ...); re.sub(r"\s{2,}", " ", ...);
//   .rstrip("\n"); .strip(" "); keep the first max_words of .split(" ");
// and the processed caption is prompt + pre_caption(caption). Quirks kept on purpose: a single
// whitespace character (a lone tab or newline) is not replaced, only runs of two or more; commas,
// apostrophes and "?" stay; the split is on single spaces, so "a\tb" counts as one word.
//
// Text is UTF-8. `\s` is Python's Unicode whitespace. lower() covers ASCII, Latin-1, Latin
// Extended-A (U+0130 becomes "i" + U+0307, as in Python) and Cyrillic; capitals of other scripts
// (Greek, whose final sigma depends on context, Armenian, ...) are kept. Bytes that are not valid
// UTF-8 pass through unchanged.
#include <cstddef>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "../tokenizers/unicode.hpp"

namespace blip2::data {

namespace detail {

// Python's str.lower() for one code point, within the ranges the header comment names.
inline void append_lower(std::string& out, char32_t c) {
  if (c >= 'A' && c <= 'Z') {
    c += 0x20;
  } else if (c >= 0xC0 && c <= 0xDE && c != 0xD7) {
    c += 0x20;
  } else if (c == 0x130) {
    out += 'i';
    c = 0x307;  // Python lowers İ to i + combining dot above
  } else if (c == 0x178) {
    c = 0xFF;
  } else if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) {
    c |= 1;  // capitals at even code points
  } else if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) {
    c += c & 1;  // capitals at odd code points
  } else if (c >= 0x410 && c <= 0x42F) {
    c += 0x20;
  } else if (c >= 0x400 && c <= 0x40F) {
    c += 0x50;
  }
  tokenizers::unicode::append_utf8(out, c);
}

inline bool is_caption_punctuation(char32_t c) {
  switch (c) {
    case '.': case '!': case '"': case '(': case ')': case '*': case '#': case ':': case ';': case '~': return true;
    default: return false;
  }
}

}  // namespace detail

// LAVIS's BlipCaptionProcessor.pre_caption.
inline std::string pre_caption(std::string_view caption, int max_words = 50) {
  BLIP2_CHECK(max_words > 0, ValueError, "pre_caption: max_words must be positive, got ", max_words);
  // lower(), then the punctuation class becomes spaces.
  std::string lowered;
  lowered.reserve(caption.size());
  for (std::size_t i = 0; i < caption.size();) {
    const auto d = tokenizers::unicode::decode_utf8(caption, i);
    if (!d.valid) {
      lowered.append(caption, i, d.len);  // invalid bytes pass through untouched
    } else if (detail::is_caption_punctuation(d.cp)) {
      lowered += ' ';
    } else {
      detail::append_lower(lowered, d.cp);
    }
    i += d.len;
  }
  // \s{2,} -> " " (a run of one is left as it is).
  std::string collapsed;
  collapsed.reserve(lowered.size());
  auto space_at = [&](std::size_t i) {
    const auto d = tokenizers::unicode::decode_utf8(lowered, i);
    return std::pair{d.valid && tokenizers::unicode::is_python_space(d.cp), std::size_t(d.len)};
  };
  for (std::size_t i = 0; i < lowered.size();) {
    const auto [space, n] = space_at(i);
    std::size_t run_end = i + n, run = 1;
    while (space && run_end < lowered.size()) {
      const auto [more, m] = space_at(run_end);
      if (!more) break;
      run_end += m;
      ++run;
    }
    if (space && run >= 2) {
      collapsed += ' ';
      i = run_end;
    } else {
      collapsed.append(lowered, i, n);
      i += n;
    }
  }
  // rstrip("\n"), then strip(" ").
  std::size_t end = collapsed.size();
  while (end > 0 && collapsed[end - 1] == '\n') --end;
  while (end > 0 && collapsed[end - 1] == ' ') --end;
  std::size_t begin = 0;
  while (begin < end && collapsed[begin] == ' ') ++begin;
  std::string_view text(collapsed.data() + begin, end - begin);
  // Keep the first max_words pieces of split(" ").
  std::size_t cut = 0;
  for (int words = 0; cut != std::string_view::npos; ++words) {
    if (words == max_words) return std::string(text.substr(0, cut - 1));
    cut = text.find(' ', cut);
    if (cut != std::string_view::npos) ++cut;
  }
  return std::string(text);
}

// LAVIS's BlipCaptionProcessor: the optional prompt, then the cleaned caption.
struct CaptionProcessor {
  std::string prompt;  // prepended as is, e.g. "a photo of "
  int max_words = 50;

  std::string operator()(std::string_view caption) const { return prompt + pre_caption(caption, max_words); }
};

}  // namespace blip2::data
