#pragma once
// The logits processors of transformers' generate, on float32 score rows [rows, vocab] as
// transformers computes them (it casts the last position's logits to float32), in the order its
// _get_logits_processor adds them: repetition_penalty, no_repeat_ngram_size, min_length /
// min_new_tokens (EOS masked), then, with sampling only, temperature, top_k, top_p.
// `ids` are each row's whole sequence so far: for a decoder-only model the prompt ids (for BLIP-2
// OPT with the image placeholder ids) and the generated ones; for an encoder-decoder model the
// decoder ids from decoder_start_token_id.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "options.hpp"

namespace blip2 {

namespace generation {

using Ids = std::vector<std::vector<std::int64_t>>;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// RepetitionPenaltyLogitsProcessor: every id present in the row's sequence has its score divided by
// the penalty (positive scores) or multiplied by it (negative ones).
inline void repetition_penalty(const std::vector<std::int64_t>& ids, float* scores, index_t vocab, double penalty) {
  const float p = float(penalty);
  std::vector<char> seen(static_cast<std::size_t>(vocab), 0);
  for (std::int64_t id : ids) {
    BLIP2_CHECK(id >= 0 && id < vocab, ValueError, "generate: repetition_penalty: id ", id,
                " is outside the vocabulary of ", vocab);
    if (seen[std::size_t(id)]) continue;
    seen[std::size_t(id)] = 1;
    float& s = scores[id];
    s = s < 0 ? s * p : s / p;
  }
}

// NoRepeatNGramLogitsProcessor: bans every token that would complete an n-gram already present in
// the row's sequence (prompt included).
inline void no_repeat_ngram(const std::vector<std::int64_t>& ids, float* scores, index_t vocab, int n) {
  const std::size_t len = ids.size(), m = std::size_t(n);
  if (n <= 0 || len < m) return;
  const std::int64_t* prefix = ids.data() + (len + 1 - m);  // the last n - 1 tokens
  for (std::size_t start = 0; start + m <= len; ++start) {
    if (!std::equal(prefix, prefix + (m - 1), ids.data() + start)) continue;
    const std::int64_t banned = ids[start + m - 1];
    if (banned >= 0 && banned < vocab) scores[banned] = kNegInf;
  }
}

// MinLength / MinNewTokensLength: EOS ids get -inf while the sequence is shorter than `min_length`.
inline void mask_eos(float* scores, index_t vocab, const std::vector<std::int64_t>& eos) {
  for (std::int64_t e : eos)
    if (e >= 0 && e < vocab) scores[e] = kNegInf;
}

inline void temperature(float* scores, index_t vocab, double t) {
  const float tf = float(t);
  for (index_t v = 0; v < vocab; ++v) scores[v] = scores[v] / tf;
}

// TopKLogitsWarper: scores below the k-th largest become -inf.
inline void top_k(float* scores, index_t vocab, int k, int min_tokens_to_keep = 1) {
  const index_t keep = std::min<index_t>(std::max(k, min_tokens_to_keep), vocab);
  if (keep <= 0 || keep >= vocab) return;
  std::vector<float> sorted(scores, scores + vocab);
  std::nth_element(sorted.begin(), sorted.begin() + (keep - 1), sorted.end(), std::greater<float>());
  const float threshold = sorted[std::size_t(keep - 1)];
  for (index_t v = 0; v < vocab; ++v)
    if (scores[v] < threshold) scores[v] = kNegInf;
}

// TopPLogitsWarper: sorted ascending, the tokens whose cumulative probability is <= 1 - top_p are
// removed, keeping at least min_tokens_to_keep of the most likely.
inline void top_p(float* scores, index_t vocab, double p, int min_tokens_to_keep = 1) {
  if (p >= 1.0) return;
  std::vector<index_t> order(static_cast<std::size_t>(vocab));
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return scores[a] < scores[b]; });
  const float top = scores[order.back()];
  std::vector<float> probs(static_cast<std::size_t>(vocab));
  float sum = 0;
  for (index_t i = 0; i < vocab; ++i) sum += probs[std::size_t(i)] = std::exp(scores[order[std::size_t(i)]] - top);
  const float cut = float(1.0 - p);
  double cum = 0;  // torch's CPU cumsum accumulates float32 in double
  std::vector<char> remove(static_cast<std::size_t>(vocab), 0);
  for (index_t i = 0; i < vocab; ++i) {
    cum += double(probs[std::size_t(i)] / sum);
    remove[std::size_t(i)] = float(cum) <= cut && i < vocab - min_tokens_to_keep;
  }
  for (index_t i = 0; i < vocab; ++i)
    if (remove[std::size_t(i)]) scores[order[std::size_t(i)]] = kNegInf;
}

// log_softmax of one row in float32 (beam search scores log-probabilities).
inline void log_softmax(float* scores, index_t vocab) {
  const float top = *std::max_element(scores, scores + vocab);
  float sum = 0;
  for (index_t v = 0; v < vocab; ++v) sum += std::exp(scores[v] - top);
  const float lse = std::log(sum);
  for (index_t v = 0; v < vocab; ++v) scores[v] = scores[v] - top - lse;
}

inline std::vector<float> softmax(const float* scores, index_t vocab) {
  std::vector<float> p(static_cast<std::size_t>(vocab));
  const float top = *std::max_element(scores, scores + vocab);
  float sum = 0;
  for (index_t v = 0; v < vocab; ++v) sum += p[std::size_t(v)] = std::exp(scores[v] - top);
  for (auto& x : p) x /= sum;
  return p;
}

}  // namespace generation

// The processors transformers would build for `options` (after the length resolution), applied to
// score rows [rows, vocab] in place.
class LogitsProcessorList {
 public:
  // prompt_length: the ids a row starts with (what transformers calls input_ids_seq_length).
  LogitsProcessorList(const GenerationOptions& o, index_t prompt_length) : o_(o) {
    // transformers turns min_new_tokens into min_length = prompt + min_new_tokens (both processors
    // then mask EOS below the same length).
    eos_until_ = o.min_new_tokens ? prompt_length + *o.min_new_tokens : index_t(o.min_length);
    if (o.do_sample) {
      // Beam sampling keeps at least one non-EOS continuation.
      min_keep_ = o.num_beams > 1 ? int(o.eos_token_id.empty() ? 2 : o.eos_token_id.size() + 1) : 1;
    }
  }

  void operator()(const generation::Ids& ids, std::vector<float>& scores, index_t vocab) const {
    const index_t rows = index_t(ids.size());
    BLIP2_CHECK(index_t(scores.size()) == rows * vocab, ShapeError, "LogitsProcessorList: ", scores.size(),
                " scores for ", rows, " rows of vocabulary ", vocab);
    for (index_t r = 0; r < rows; ++r) {
      float* s = scores.data() + r * vocab;
      const auto& seq = ids[std::size_t(r)];
      if (o_.repetition_penalty != 1.0) generation::repetition_penalty(seq, s, vocab, o_.repetition_penalty);
      if (o_.no_repeat_ngram_size > 0) generation::no_repeat_ngram(seq, s, vocab, o_.no_repeat_ngram_size);
      if (!o_.eos_token_id.empty() && eos_until_ > 0 && index_t(seq.size()) < eos_until_)
        generation::mask_eos(s, vocab, o_.eos_token_id);
      if (o_.do_sample) {
        if (o_.temperature != 1.0) generation::temperature(s, vocab, o_.temperature);
        if (o_.top_k != 0) generation::top_k(s, vocab, o_.top_k, min_keep_);
        if (o_.top_p < 1.0) generation::top_p(s, vocab, o_.top_p, min_keep_);
      }
    }
  }

 private:
  GenerationOptions o_;
  index_t eos_until_ = 0;
  int min_keep_ = 1;
};

}  // namespace blip2
