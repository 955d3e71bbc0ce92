#pragma once
// Greedy search and multinomial sampling (transformers' `_sample`): one token per row and step;
// rows that produced an EOS id continue with pad_token_id until every row is finished or the
// sequences reach max_length.
//
// `Step` is a decoder step (see generate.hpp): start() runs the prompt once and returns the
// next-token logits [B, V] (float32, CPU); expand(n) repeats every row n times; step(tokens) feeds
// one token per row and returns the next logits [rows, V]; reorder(rows) keeps the given rows.
#include "../core/random.hpp"
#include "logits_processors.hpp"

namespace blip2 {

namespace generation {

// The first row index whose cumulative probability exceeds u * total (torch.multinomial's
// inversion, with blip2's counter-based uniform numbers).
inline index_t draw(const std::vector<float>& probs, double u) {
  double total = 0;
  for (float p : probs) total += p;
  BLIP2_CHECK(total > 0 && std::isfinite(total), ValueError,
              "generate: sampling from a row whose probabilities sum to ", total);
  const double target = u * total;
  double cum = 0;
  index_t last = -1;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (!(probs[i] > 0)) continue;
    cum += probs[i];
    last = index_t(i);
    if (cum > target) return last;
  }
  return last;
}

// Rows of logits [rows0, V] repeated `times` times each, as float32 scores [rows0 * times * V].
inline std::vector<float> repeat_rows(const Tensor<float>& logits, index_t times) {
  const auto v = logits.contiguous().to_vector();
  if (times == 1) return v;
  const index_t rows = logits.size(0), vocab = logits.size(1);
  std::vector<float> out;
  out.reserve(v.size() * std::size_t(times));
  for (index_t r = 0; r < rows; ++r)
    for (index_t t = 0; t < times; ++t) out.insert(out.end(), v.begin() + r * vocab, v.begin() + (r + 1) * vocab);
  return out;
}

// The pad id transformers uses: pad_token_id, else the first EOS id; -1 when neither is set.
inline std::int64_t resolved_pad(const GenerationOptions& o) {
  if (o.pad_token_id) return *o.pad_token_id;
  return o.eos_token_id.empty() ? -1 : o.eos_token_id.front();
}

// Sequences [rows][len] -> tensor [rows, max len] filled with `fill`.
inline Tensor<std::int64_t> to_tensor(const Ids& rows, std::int64_t fill) {
  std::size_t len = 0;
  for (const auto& r : rows) len = std::max(len, r.size());
  std::vector<std::int64_t> flat(rows.size() * len, fill);
  for (std::size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), flat.begin() + i * len);
  return Tensor<std::int64_t>::from_vector({index_t(rows.size()), index_t(len)}, flat);
}

}  // namespace generation

// Greedy search (do_sample false) or multinomial sampling (do_sample true, num_return_sequences
// samples per input) from `prompts` (one row per input, all of the same length; what the logits
// processors see) until max_length ids per row.
template <class Step>
GenerateOutput sample_search(Step& step, const GenerationOptions& o, const generation::Ids& prompts, index_t max_length) {
  using namespace generation;
  o.validate();
  BLIP2_CHECK(!prompts.empty() && !prompts[0].empty(), ValueError, "generate: the prompt is empty");
  const index_t P = index_t(prompts[0].size());
  const index_t copies = o.do_sample ? o.num_return_sequences : 1;
  const bool has_eos = !o.eos_token_id.empty();
  const std::int64_t pad = resolved_pad(o);
  const LogitsProcessorList processors(o, P);
  Generator gen(o.seed);

  Ids seqs;
  for (const auto& p : prompts)
    for (index_t c = 0; c < copies; ++c) seqs.push_back(p);
  const index_t rows = index_t(seqs.size());
  std::vector<char> unfinished(static_cast<std::size_t>(rows), 1);

  const Tensor<float> first = step.start();
  const index_t vocab = first.size(1);
  if (copies > 1) step.expand(copies);
  std::vector<float> scores = repeat_rows(first, copies);
  for (index_t cur = P;;) {
    processors(seqs, scores, vocab);
    std::vector<std::int64_t> next(static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r) {
      const float* s = scores.data() + r * vocab;
      index_t tok;
      if (o.do_sample) tok = draw(softmax(s, vocab), gen.uniform());
      else tok = index_t(std::max_element(s, s + vocab) - s);  // the first maximum, as torch.argmax
      if (has_eos && !unfinished[std::size_t(r)]) tok = pad;
      next[std::size_t(r)] = tok;
      seqs[std::size_t(r)].push_back(tok);
    }
    ++cur;
    bool any = false;
    for (index_t r = 0; r < rows; ++r) {
      const bool done = cur >= max_length || o.is_eos(next[std::size_t(r)]);
      unfinished[std::size_t(r)] = unfinished[std::size_t(r)] && !done;
      any = any || unfinished[std::size_t(r)];
    }
    if (!any) break;
    scores = step.step(next).contiguous().to_vector();
  }
  GenerateOutput out;
  out.sequences = to_tensor(seqs, pad);
  out.prompt_length = P;
  return out;
}

}  // namespace blip2
