#pragma once
// Tokenizer files for a closed vocabulary (a synthetic data set's words) in which every word is
// exactly one token, readable by load_tokenizer() and by Hugging Face:
//   WordLevelKind::opt   byte-level BPE as OPT ships it: vocab.json, merges.txt and
//                        tokenizer_config.json ("</s>" is BOS, EOS and UNK and is prepended to
//                        every text; pad "<pad>"). Ids: <s> 0, <pad> 1, </s> 2, <unk> 3, the 256
//                        byte characters in byte order (4-259), then the merged tokens. Merges are
//                        learnt on each word alone ("circle", text start) and after a space
//                        ("Ġcircle") until both are one token; "\n" is the byte token "Ċ" (LAVIS
//                        ends OPT captions with it), and any other text still encodes, byte by byte.
//   WordLevelKind::bert  WordPiece vocab.txt: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, the
//                        words in the given order, then "[DEC]" (BLIP-2's decoder BOS, as LAVIS
//                        adds it after bert-base-uncased's vocabulary); tokenizer_config.json
//                        with do_lower_case and bos_token "[DEC]".
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "byte_level_bpe.hpp"
#include "tokenizer.hpp"

namespace blip2::tokenizers {

enum class WordLevelKind { opt, bert };

// What a model needs to know of the written vocabulary.
struct WordLevelVocab {
  std::size_t size = 0;  // embedding rows: one more than the largest id
  // opt:  bos = eos = unk = </s> (2), pad = <pad> (1).
  // bert: pad 0, unk 1, cls 2, sep 3 (also eos), mask 4, bos = [DEC] (the last id).
  SpecialIds special;
};

namespace word_level {

// `symbols` merged as ByteLevelBPE encodes: the lowest-ranked adjacent pair first, the leftmost
// of equal ranks.
inline void apply_merges(std::vector<std::string>& symbols,
                         const std::map<std::pair<std::string, std::string>, int>& ranks) {
  for (;;) {
    int best = -1;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best)) {
        best = it->second;
        at = i;
      }
    }
    if (best < 0) return;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + std::ptrdiff_t(at) + 1);
  }
}

// BPE merges after which each of `words` (mapped byte characters) is one token: each round adds
// the most frequent adjacent pair (the smallest on ties) of the words as the encoder segments them
// with the merges so far. Carrying a segmentation over to the next round and applying the merges
// again gives what encoding from the characters would: the encoder reaches a newer merge only once
// no older one applies, which is that segmentation.
inline std::vector<std::pair<std::string, std::string>> learn_merges(const std::vector<std::string>& words) {
  std::vector<std::vector<std::string>> segments;
  for (const std::string& w : words) {
    std::vector<std::string> chars;
    for (std::size_t i = 0; i < w.size();) {
      const auto d = unicode::decode_utf8(w, i);
      chars.push_back(w.substr(i, d.len));
      i += d.len;
    }
    segments.push_back(std::move(chars));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::pair<std::string, std::string>, int> ranks;
  for (;;) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (auto& s : segments) {
      apply_merges(s, ranks);
      for (std::size_t i = 0; i + 1 < s.size(); ++i) ++counts[{s[i], s[i + 1]}];
    }
    if (counts.empty()) return merges;
    const auto best = std::max_element(counts.begin(), counts.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    ranks[best->first] = int(merges.size());
    merges.push_back(best->first);
  }
}

inline WordLevelVocab write_opt(const std::vector<std::string>& words, const std::filesystem::path& dir) {
  std::vector<std::string> forms;  // each word at the start of a text and after a space
  for (const std::string& w : words) {
    const std::string spaced = " " + w;
    const auto alone = byte_level::split(w), after_space = byte_level::split(spaced);
    BLIP2_CHECK(alone.size() == 1 && after_space.size() == 1 && after_space[0] == spaced, ValueError,
                "write_word_level_tokenizer_files: word ", quote(w),
                " is not one piece for GPT-2's pre-tokenizer (letters, digits or punctuation, not mixed, no spaces)");
    forms.push_back(byte_level::map_bytes(w));
    forms.push_back(byte_level::map_bytes(spaced));
  }
  nlohmann::ordered_json vocab;
  auto add = [&](const std::string& token) {
    const std::size_t id = vocab.size();
    if (!vocab.contains(token)) vocab[token] = id;
  };
  for (const char* s : {"<s>", "<pad>", "</s>", "<unk>"}) add(s);
  for (int b = 0; b < 256; ++b) add(byte_level::map_bytes(std::string(1, char(b))));
  std::string merges_txt = "#version: 0.2\n";
  for (const auto& [a, b] : learn_merges(forms)) {
    add(a + b);
    merges_txt += a + " " + b + "\n";
  }
  io::write_file((dir / "vocab.json").string(), vocab.dump() + "\n");
  io::write_file((dir / "merges.txt").string(), merges_txt);
  const nlohmann::ordered_json config = {{"add_bos_token", true}, {"bos_token", "</s>"},
                                         {"eos_token", "</s>"},   {"pad_token", "<pad>"},
                                         {"unk_token", "</s>"},   {"tokenizer_class", "GPT2Tokenizer"}};
  io::write_file((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
  WordLevelVocab v;
  v.size = vocab.size();
  v.special.bos = v.special.eos = v.special.unk = 2;
  v.special.pad = 1;
  return v;
}

inline WordLevelVocab write_bert(const std::vector<std::string>& words, const std::filesystem::path& dir) {
  const std::vector<std::string> specials{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  std::string vocab_txt;
  for (const std::string& s : specials) vocab_txt += s + "\n";
  for (const std::string& w : words) {
    auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    const bool punctuation = w.size() == 1 && unicode::is_bert_punctuation(char32_t(static_cast<unsigned char>(w[0])));
    BLIP2_CHECK(punctuation || std::all_of(w.begin(), w.end(), lower_alnum), ValueError,
                "write_word_level_tokenizer_files: word ", quote(w),
                " is not one WordPiece token (lower-case ASCII letters and digits, or one punctuation character)");
    vocab_txt += w + "\n";
  }
  vocab_txt += "[DEC]\n";
  io::write_file((dir / "vocab.txt").string(), vocab_txt);
  const nlohmann::ordered_json config = {
      {"do_lower_case", true}, {"unk_token", "[UNK]"},   {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
      {"cls_token", "[CLS]"},  {"mask_token", "[MASK]"}, {"bos_token", "[DEC]"}, {"tokenizer_class", "BertTokenizer"}};
  io::write_file((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
  WordLevelVocab v;
  v.size = specials.size() + words.size() + 1;
  v.special.pad = 0;
  v.special.unk = 1;
  v.special.cls = 2;
  v.special.sep = v.special.eos = 3;
  v.special.mask = 4;
  v.special.bos = Id(v.size) - 1;
  return v;
}

}  // namespace word_level

// Writes the tokenizer files of `kind` into `dir` (created if needed) so that each of `words`
// (distinct, none empty) encodes to exactly one token, and returns the vocabulary size and
// special ids.
inline WordLevelVocab write_word_level_tokenizer_files(const std::vector<std::string>& words, const std::string& dir,
                                                       WordLevelKind kind) {
  BLIP2_CHECK(!words.empty(), ValueError, "write_word_level_tokenizer_files: no words for ", dir);
  std::vector<std::string> sorted = words;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  BLIP2_CHECK(dup == sorted.end(), ValueError, "write_word_level_tokenizer_files: word ", quote(*dup), " twice");
  BLIP2_CHECK(!sorted.front().empty(), ValueError, "write_word_level_tokenizer_files: an empty word");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  BLIP2_CHECK(!ec, IoError, dir, ": cannot create the directory (", ec.message(), ")");
  return kind == WordLevelKind::opt ? word_level::write_opt(words, dir) : word_level::write_bert(words, dir);
}

}  // namespace blip2::tokenizers
