#pragma once
// Caption metrics as the COCO caption evaluation (pycocoevalcap 1.2, which LAVIS reports) computes
// them: BLEU-1..4 (bleu/bleu_scorer.py) and CIDEr-D (cider/cider_scorer.py) on tokenized captions,
// whose tokens are separated by whitespace, and coco_tokenize, which approximates the tokenization
// pycocoevalcap applies before scoring.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../core/error.hpp"
#include "../tokenizers/unicode.hpp"

namespace blip2::eval {

// Tokens of a tokenized caption, split where Python's str.split() splits: runs of ASCII
// whitespace, \x1c-\x1f and the Unicode spaces (in UTF-8).
inline std::vector<std::string> split_tokens(std::string_view text);

// Corpus and per-image BLEU-1..4, as pycocoevalcap's Bleu(4).compute_score returns them.
struct BleuScores {
  std::array<double, 4> corpus{};                // BLEU-1..4 over the whole set
  std::vector<std::array<double, 4>> per_image;  // the same formula on each image alone
};

// Corpus CIDEr-D (the mean over images) and each image's, as pycocoevalcap's Cider returns them.
struct CiderScores {
  double corpus = 0;
  std::vector<double> per_image;
};

struct CaptionScores {
  std::array<double, 4> bleu{};  // BLEU-1..4, corpus level
  double cider = 0;              // CIDEr-D, the mean of per_image_cider
  std::vector<double> per_image_cider;
};

// candidates[i]: the caption generated for image i; references[i]: its ground-truth captions
// (at least one). All tokenized already (see coco_tokenize). Throws ValueError on mismatched sizes
// or an empty set.
inline BleuScores bleu(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references);
inline CiderScores cider_d(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references,
                           double sigma = 6.0);
inline CaptionScores score_captions(const std::vector<std::string>& candidates,
                                    const std::vector<std::vector<std::string>>& references);

// An approximation of pycocoevalcap's PTBTokenizer (Stanford CoreNLP 3.4.1's Java PTBTokenizer run
// with -preserveLines -lowerCase, then the tokens '' ' `` ` . ? ! , : - -- ... ; dropped), for
// use without Java. It lower-cases (ASCII and Latin-1 letters), splits off punctuation, clitics
// ('s 'm 'd 're 've 'll n't) and the symbols $ % # & + = *, keeps commas, colons and periods inside
// numbers and abbreviations (1,000 10:30 3.5 u.s.), hyphens inside words (t-shirt), and writes
// brackets as PTB does: -lrb- -rrb- -lsb- -rsb- -lcb- -rcb- (kept, since pycocoevalcap's list holds
// the upper-case forms only), and keeps runs such as ?! and !!! as that list does. It misses rarer PTB rules (abbreviations it does not list, URLs,
// emoticons, most non-Latin-1 text). Returns the tokens joined by single spaces.
inline std::string coco_tokenize(std::string_view caption);

namespace detail {

inline constexpr int kMaxNgram = 4;

// Byte length of the whitespace character at text[i] (Python's str.isspace), 0 if none.
inline std::size_t space_length(std::string_view text, std::size_t i) {
  const auto d = tokenizers::unicode::decode_utf8(text, i);
  return d.valid && tokenizers::unicode::is_python_space(d.cp) ? d.len : 0;
}

// counts[n - 1]: how often each n-gram of n tokens occurs; an n-gram is its tokens joined by single
// spaces, which is unambiguous since tokens hold no whitespace.
using NgramCounts = std::array<std::unordered_map<std::string, int>, kMaxNgram>;

struct CookedCaption {
  int length = 0;  // tokens
  NgramCounts counts;
};

inline CookedCaption cook(std::string_view caption) {
  const std::vector<std::string> words = split_tokens(caption);
  CookedCaption out;
  out.length = static_cast<int>(words.size());
  for (std::size_t start = 0; start < words.size(); ++start) {
    std::string ngram;
    for (std::size_t n = 1; n <= kMaxNgram && start + n <= words.size(); ++n) {
      if (n > 1) ngram += ' ';
      ngram += words[start + n - 1];
      ++out.counts[n - 1][ngram];
    }
  }
  return out;
}

struct CookedImage {
  CookedCaption candidate;
  std::vector<CookedCaption> references;
};

inline std::vector<CookedImage> cook_all(const char* what, const std::vector<std::string>& candidates,
                                         const std::vector<std::vector<std::string>>& references) {
  BLIP2_CHECK(candidates.size() == references.size(), ValueError, what, ": ", candidates.size(), " candidates but ",
              references.size(), " reference lists");
  BLIP2_CHECK(!candidates.empty(), ValueError, what, ": no captions to score");
  std::vector<CookedImage> images(candidates.size());
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    BLIP2_CHECK(!references[i].empty(), ValueError, what, ": image ", i, " has no reference captions");
    images[i].candidate = cook(candidates[i]);
    for (const auto& ref : references[i]) images[i].references.push_back(cook(ref));
  }
  return images;
}

// Matches made and n-grams guessed by one candidate, and its "closest" reference length.
struct BleuCounts {
  int test_length = 0, ref_length = 0;
  std::array<int, kMaxNgram> correct{}, guess{};
};

inline BleuCounts bleu_counts(const CookedImage& image) {
  BleuCounts out;
  const CookedCaption& test = image.candidate;
  out.test_length = test.length;
  // The reference length closest to the candidate's; a tie goes to the shorter reference.
  out.ref_length = image.references.front().length;
  for (const auto& ref : image.references) {
    const int d = std::abs(ref.length - test.length), best = std::abs(out.ref_length - test.length);
    if (d < best || (d == best && ref.length < out.ref_length)) out.ref_length = ref.length;
  }
  for (int n = 0; n < kMaxNgram; ++n) {
    out.guess[n] = std::max(0, test.length - n);
    for (const auto& [ngram, count] : test.counts[n]) {
      int clip = 0;  // the most times any single reference holds this n-gram
      for (const auto& ref : image.references) {
        const auto it = ref.counts[n].find(ngram);
        if (it != ref.counts[n].end()) clip = std::max(clip, it->second);
      }
      out.correct[n] += std::min(count, clip);
    }
  }
  return out;
}

// BLEU-1..4 from summed counts, with pycocoevalcap's constants: 1e-15 added to the matches keeps a
// zero precision finite in the log-free product, 1e-9 added to the guesses avoids 0/0.
inline std::array<double, 4> bleu_from_counts(double test_length, double ref_length, const std::array<double, kMaxNgram>& correct,
                                              const std::array<double, kMaxNgram>& guess) {
  constexpr double kTiny = 1e-15, kSmall = 1e-9;
  std::array<double, 4> out{};
  double product = 1.0;
  for (int n = 0; n < kMaxNgram; ++n) {
    product *= (correct[n] + kTiny) / (guess[n] + kSmall);
    out[n] = std::pow(product, 1.0 / (n + 1));
  }
  const double ratio = (test_length + kTiny) / (ref_length + kSmall);
  if (ratio < 1)
    for (double& b : out) b *= std::exp(1 - 1 / ratio);  // brevity penalty
  return out;
}

inline BleuScores bleu(const std::vector<CookedImage>& images) {
  BleuScores out;
  double test_length = 0, ref_length = 0;
  std::array<double, kMaxNgram> correct{}, guess{};
  for (const auto& image : images) {
    const BleuCounts c = bleu_counts(image);
    std::array<double, kMaxNgram> image_correct{}, image_guess{};
    for (int n = 0; n < kMaxNgram; ++n) {
      image_correct[n] = c.correct[n];
      image_guess[n] = c.guess[n];
      correct[n] += c.correct[n];
      guess[n] += c.guess[n];
    }
    test_length += c.test_length;
    ref_length += c.ref_length;
    out.per_image.push_back(bleu_from_counts(c.test_length, c.ref_length, image_correct, image_guess));
  }
  out.corpus = bleu_from_counts(test_length, ref_length, correct, guess);
  return out;
}

// A caption as CIDEr sees it: tf-idf weights per n-gram order, their norms, and the length the
// Gaussian penalty compares.
struct TfIdf {
  std::array<std::unordered_map<std::string, double>, kMaxNgram> weights;
  std::array<double, kMaxNgram> norm{};
  double length = 0;
};

inline CiderScores cider_d(const std::vector<CookedImage>& images, double sigma) {
  BLIP2_CHECK(sigma > 0, ValueError, "cider_d: sigma must be > 0, got ", sigma);
  // Document frequency: in how many images' reference sets each n-gram occurs.
  std::array<std::unordered_map<std::string, double>, kMaxNgram> df;
  for (const auto& image : images)
    for (int n = 0; n < kMaxNgram; ++n) {
      std::unordered_set<std::string> seen;
      for (const auto& ref : image.references)
        for (const auto& entry : ref.counts[n]) seen.insert(entry.first);
      for (const auto& ngram : seen) df[n][ngram] += 1;
    }
  const double log_images = std::log(double(images.size()));

  const auto tfidf = [&](const CookedCaption& caption) {
    TfIdf out;
    for (int n = 0; n < kMaxNgram; ++n) {
      for (const auto& [ngram, tf] : caption.counts[n]) {
        const auto it = df[n].find(ngram);
        const double idf = log_images - std::log(std::max(1.0, it == df[n].end() ? 0.0 : it->second));
        const double w = tf * idf;
        out.weights[n].emplace(ngram, w);
        out.norm[n] += w * w;
      }
      out.norm[n] = std::sqrt(out.norm[n]);
    }
    // cider_scorer.py adds term frequencies where its 0-based order index is 1, i.e. it counts
    // bigrams: tokens - 1, and 0 for an empty caption (which scores 0 whatever the penalty).
    for (const auto& entry : caption.counts[1]) out.length += entry.second;
    return out;
  };

  CiderScores out;
  for (const auto& image : images) {
    const TfIdf test = tfidf(image.candidate);
    std::array<double, kMaxNgram> sum{};
    for (const auto& ref_caption : image.references) {
      const TfIdf ref = tfidf(ref_caption);
      const double delta = test.length - ref.length;
      const double penalty = std::exp(-(delta * delta) / (2 * sigma * sigma));
      for (int n = 0; n < kMaxNgram; ++n) {
        double val = 0;
        for (const auto& [ngram, w] : test.weights[n]) {
          const auto it = ref.weights[n].find(ngram);
          if (it != ref.weights[n].end()) val += std::min(w, it->second) * it->second;  // candidate clipped by reference
        }
        if (test.norm[n] != 0 && ref.norm[n] != 0) val /= test.norm[n] * ref.norm[n];
        sum[n] += val * penalty;
      }
    }
    const double mean_over_orders = (sum[0] + sum[1] + sum[2] + sum[3]) / kMaxNgram;
    out.per_image.push_back(mean_over_orders / double(image.references.size()) * 10.0);
  }
  for (double s : out.per_image) out.corpus += s;
  out.corpus /= double(out.per_image.size());
  return out;
}

inline bool is_ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

// Lower-cases ASCII and Latin-1 capitals (U+00C0-U+00DE but U+00D7) and maps the typographic
// quotes, dashes and ellipsis to the ASCII forms PTB gives them.
inline std::string normalise_characters(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u; };
    if (c >= 'A' && c <= 'Z') {
      out += char(c + 32);
    } else if (c == 0xc3 && next(1) >= 0x80 && next(1) <= 0x9e && next(1) != 0x97) {
      out += char(c);
      out += char(next(1) + 0x20);
      ++i;
    } else if (c == 0xe2 && next(1) == 0x80 && (next(2) == 0x98 || next(2) == 0x99)) {  // ' '
      out += '\'';
      i += 2;
    } else if (c == 0xe2 && next(1) == 0x80 && (next(2) == 0x9c || next(2) == 0x9d)) {  // " "
      out += '"';
      i += 2;
    } else if (c == 0xe2 && next(1) == 0x80 && (next(2) == 0x93 || next(2) == 0x94)) {  // en and em dash
      out += " -- ";
      i += 2;
    } else if (c == 0xe2 && next(1) == 0x80 && next(2) == 0xa6) {  // ellipsis
      out += " ... ";
      i += 2;
    } else {
      out += char(c);
    }
  }
  return out;
}

// PTB's tokens for one whitespace-free chunk (already lower-cased); last: the caption's final chunk.
inline void ptb_chunk(std::string_view chunk, bool last, std::vector<std::string>& tokens) {
  static const std::unordered_set<std::string> kAbbreviations = {"mr", "mrs", "ms", "dr", "st", "jr",
                                                                 "sr", "etc", "vs", "ft", "mt"};
  static const std::unordered_map<std::string, std::string> kClitics = {  // PTB's split forms
      {"cannot", "can not"}, {"gonna", "gon na"}, {"gotta", "got ta"}, {"wanna", "wan na"},
      {"lemme", "lem me"},   {"gimme", "gim me"}};
  std::string word;
  const auto flush = [&] {
    if (word.empty()) return;
    const auto it = kClitics.find(word);
    if (it == kClitics.end()) {
      tokens.push_back(word);
    } else {
      const std::string& split = it->second;
      const std::size_t space = split.find(' ');
      tokens.push_back(split.substr(0, space));
      tokens.push_back(split.substr(space + 1));
    }
    word.clear();
  };
  const auto emit = [&](std::string token) {
    flush();
    tokens.push_back(std::move(token));
  };
  const std::size_t size = chunk.size();
  const auto at = [&](std::size_t i) { return i < size ? chunk[i] : '\0'; };
  const auto clitic_at = [&](std::size_t i) -> std::size_t {  // length of 's 'm 'd 're 've 'll at i, 0 if none
    for (std::string_view c : {"'s", "'m", "'d", "'re", "'ve", "'ll"})
      if (chunk.substr(i, c.size()) == c && !is_ascii_alnum(at(i + c.size()))) return c.size();
    return 0;
  };
  for (std::size_t i = 0; i < size; ++i) {
    const char c = chunk[i];
    switch (c) {
      case '(': emit("-lrb-"); break;
      case ')': emit("-rrb-"); break;
      case '[': emit("-lsb-"); break;
      case ']': emit("-rsb-"); break;
      case '{': emit("-lcb-"); break;
      case '}': emit("-rcb-"); break;
      case '"': emit(word.empty() ? "``" : "''"); break;
      case '`': emit("`"); break;
      case ';': emit(";"); break;
      case '$': case '%': case '#': case '&': case '+': case '=': case '*': emit(std::string(1, c)); break;
      case '?':
      case '!': {  // a run of ? and ! is one token
        std::size_t end = i;
        while (at(end) == '?' || at(end) == '!') ++end;
        emit(std::string(chunk.substr(i, end - i)));
        i = end - 1;
        break;
      }
      case ',':
      case ':':  // inside numbers: 1,000 10:30
        if (is_ascii_digit(at(i + 1)) && !word.empty() && is_ascii_digit(word.back())) word += c;
        else emit(std::string(1, c));
        break;
      case '-': {  // one hyphen inside a word: t-shirt; otherwise a token of its own (toy--a)
        std::size_t end = i;
        while (at(end) == '-') ++end;
        if (end - i == 1 && !word.empty() && is_ascii_alnum(word.back()) && is_ascii_alnum(at(end))) word += c;
        else emit(std::string(chunk.substr(i, end - i)));
        i = end - 1;
        break;
      }
      case '.': {
        std::size_t end = i;
        while (at(end) == '.') ++end;
        if (end - i > 1) {
          emit(std::string(chunk.substr(i, end - i)));
        } else if (is_ascii_alnum(at(i + 1))) {
          word += c;  // 3.5, u.s
        } else {
          // A period ending a word stays on abbreviations (u.s. a.m. b. mr.), except after the
          // caption's last word, where only dotted abbreviations keep it.
          const bool dotted = word.find('.') != std::string::npos &&
                              std::all_of(word.begin(), word.end(), [](char w) { return w == '.' || (w >= 'a' && w <= 'z'); });
          const bool short_form = word.size() == 1 || kAbbreviations.count(word) > 0;
          if (!word.empty() && (dotted || (!last && short_form))) word += c;
          else emit(".");
        }
        i = end - 1;
        break;
      }
      case '\'': {
        if (const std::size_t n = clitic_at(i); n > 0) {
          emit(std::string(chunk.substr(i, n)));
          i += n - 1;
        } else if (at(i + 1) == 't' && !is_ascii_alnum(at(i + 2)) && word.size() > 1 && word.back() == 'n') {
          word.pop_back();  // n't
          emit("n't");
          ++i;
        } else if (!word.empty() && is_ascii_alnum(word.back()) && is_ascii_alnum(at(i + 1))) {
          word += c;  // o'clock
        } else {
          emit(word.empty() ? "`" : "'");
        }
        break;
      }
      default: word += c;
    }
  }
  flush();
}

}  // namespace detail

inline std::vector<std::string> split_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  std::size_t i = 0, start = 0;
  while (i < text.size()) {
    if (const std::size_t n = detail::space_length(text, i)) {
      if (i > start) tokens.emplace_back(text.substr(start, i - start));
      i += n;
      start = i;
    } else {
      ++i;
    }
  }
  if (i > start) tokens.emplace_back(text.substr(start, i - start));
  return tokens;
}

inline BleuScores bleu(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references) {
  return detail::bleu(detail::cook_all("bleu", candidates, references));
}

inline CiderScores cider_d(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references,
                           double sigma) {
  return detail::cider_d(detail::cook_all("cider_d", candidates, references), sigma);
}

inline CaptionScores score_captions(const std::vector<std::string>& candidates,
                                    const std::vector<std::vector<std::string>>& references) {
  const auto images = detail::cook_all("score_captions", candidates, references);
  CiderScores cider = detail::cider_d(images, 6.0);
  return {detail::bleu(images).corpus, cider.corpus, std::move(cider.per_image)};
}

inline std::string coco_tokenize(std::string_view caption) {
  static const std::unordered_set<std::string> kDropped = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"};
  const std::vector<std::string> chunks = split_tokens(detail::normalise_characters(caption));
  std::vector<std::string> tokens;
  for (std::size_t i = 0; i < chunks.size(); ++i) detail::ptb_chunk(chunks[i], i + 1 == chunks.size(), tokens);
  std::string out;
  for (const auto& token : tokens) {
    if (kDropped.count(token)) continue;
    if (!out.empty()) out += ' ';
    out += token;
  }
  return out;
}

}  // namespace blip2::eval
