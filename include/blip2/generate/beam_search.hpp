#pragma once
// Beam search (and beam sampling) as transformers' vectorised `_beam_search` does it:
// - scores are float32 log-softmax of the logits, then the logits processors, plus the running
//   beam's score; at the start only the first beam of each input is live (the others sit at -1e9);
// - each step keeps the best K = max(2, 1 + number of EOS ids) * num_beams candidates over all
//   beams of an input (beam sampling draws them without replacement instead);
// - a candidate is finished when its token is an EOS id or the sequence reaches max_length; the
//   best num_beams unfinished ones run on; finished ones among the first num_beams candidates
//   compete for the num_beams finished slots with score / (generated length ** length_penalty),
//   where the generated length counts the new tokens only (not the prompt) and includes the EOS;
// - early_stopping: True stops an input once its slots are full; False stops it when the best
//   running score over the current generated length cannot beat the worst finished one; "never"
//   uses the longest possible length for that bound when length_penalty > 0;
// - the returned sequences are each input's best num_return_sequences finished ones, cut to the
//   longest of them and filled with pad_token_id (or, where that is unset or 0, the first EOS id).
#include "sampling.hpp"

namespace blip2 {

namespace generation {

// Indices of the `k` largest values, largest first (ties: lower index first).
inline std::vector<index_t> top_indices(const std::vector<float>& v, index_t k) {
  std::vector<index_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), index_t(0));
  const auto better = [&](index_t a, index_t b) { return v[std::size_t(a)] > v[std::size_t(b)] || (v[std::size_t(a)] == v[std::size_t(b)] && a < b); };
  k = std::min<index_t>(k, index_t(v.size()));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  idx.resize(std::size_t(k));
  return idx;
}

// `k` distinct indices drawn without replacement with probabilities softmax(v).
inline std::vector<index_t> sample_without_replacement(const std::vector<float>& v, index_t k, Generator& gen) {
  std::vector<float> p = softmax(v.data(), index_t(v.size()));
  std::vector<index_t> out;
  for (index_t i = 0; i < k; ++i) {
    double total = 0;
    for (float x : p) total += x;
    index_t pick = -1;
    if (total > 0) {
      pick = draw(p, gen.uniform());
    } else {  // fewer categories with mass than draws: the rest in index order
      for (std::size_t j = 0; j < p.size() && pick < 0; ++j)
        if (std::find(out.begin(), out.end(), index_t(j)) == out.end()) pick = index_t(j);
    }
    out.push_back(pick);
    p[std::size_t(pick)] = 0;
  }
  return out;
}

}  // namespace generation

template <class Step>
GenerateOutput beam_search(Step& step, const GenerationOptions& o, const generation::Ids& prompts, index_t max_length) {
  using namespace generation;
  o.validate();
  BLIP2_CHECK(!prompts.empty() && !prompts[0].empty(), ValueError, "generate: the prompt is empty");
  constexpr float kBig = -1.0e9f;
  const index_t B = index_t(prompts.size()), n = o.num_beams, P = index_t(prompts[0].size());
  const index_t K = std::max<index_t>(2, 1 + index_t(o.eos_token_id.size())) * n;
  const std::int64_t fill =
      o.eos_token_id.empty() ? -1 : (o.pad_token_id && *o.pad_token_id != 0 ? *o.pad_token_id : o.eos_token_id.front());
  const LogitsProcessorList processors(o, P);
  Generator gen(o.seed);
  const auto pow_len = [&](index_t len) { return float(std::pow(double(len), o.length_penalty)); };

  struct Hyp {
    std::vector<std::int64_t> seq;
    float score;
    bool finished;
  };
  Ids running;
  std::vector<float> running_scores;
  std::vector<Hyp> done;  // the num_beams finished slots per input
  for (const auto& p : prompts)
    for (index_t j = 0; j < n; ++j) {
      running.push_back(p);
      running_scores.push_back(j == 0 ? 0.f : kBig);
      done.push_back({p, kBig, false});
    }
  std::vector<char> improvable(static_cast<std::size_t>(B), 1);  // transformers' is_early_stop_heuristic_unsatisfied

  const Tensor<float> first = step.start();
  const index_t V = first.size(1);
  step.expand(n);
  std::vector<float> scores = repeat_rows(first, n);
  for (index_t cur = P;;) {
    for (index_t r = 0; r < B * n; ++r) log_softmax(scores.data() + r * V, V);
    processors(running, scores, V);

    Ids next_running(static_cast<std::size_t>(B * n));
    std::vector<float> next_scores(static_cast<std::size_t>(B * n));
    std::vector<std::int64_t> origin(static_cast<std::size_t>(B * n)), last(static_cast<std::size_t>(B * n));
    bool all_hit = true;
    const float denom = pow_len(cur + 1 - P);
    for (index_t b = 0; b < B; ++b) {
      std::vector<float> acc(static_cast<std::size_t>(n * V));
      for (index_t j = 0; j < n; ++j)
        for (index_t v = 0; v < V; ++v)
          acc[std::size_t(j * V + v)] = scores[std::size_t((b * n + j) * V + v)] + running_scores[std::size_t(b * n + j)];
      const std::vector<index_t> picks = o.do_sample ? sample_without_replacement(acc, K, gen) : top_indices(acc, K);

      std::vector<float> cand_scores(static_cast<std::size_t>(K)), run_lp(static_cast<std::size_t>(K));
      std::vector<char> hits(static_cast<std::size_t>(K));
      for (index_t k = 0; k < K; ++k) {
        const index_t idx = picks[std::size_t(k)], tok = idx % V;
        cand_scores[std::size_t(k)] = acc[std::size_t(idx)];
        hits[std::size_t(k)] = cur + 1 >= max_length || o.is_eos(tok);
        run_lp[std::size_t(k)] = cand_scores[std::size_t(k)] + (hits[std::size_t(k)] ? kBig : 0.f);
        all_hit = all_hit && hits[std::size_t(k)];
      }
      const auto candidate = [&](index_t k) {
        const index_t idx = picks[std::size_t(k)];
        std::vector<std::int64_t> s = running[std::size_t(b * n + idx / V)];
        s.push_back(idx % V);
        return s;
      };

      // The best num_beams unfinished candidates run on.
      const std::vector<index_t> keep = top_indices(run_lp, n);
      for (index_t i = 0; i < n; ++i) {
        const index_t k = keep[std::size_t(i)], idx = picks[std::size_t(k)];
        next_running[std::size_t(b * n + i)] = candidate(k);
        next_scores[std::size_t(b * n + i)] = run_lp[std::size_t(k)];
        origin[std::size_t(b * n + i)] = b * n + idx / V;
        last[std::size_t(b * n + i)] = idx % V;
      }

      // Finished candidates among the first num_beams compete for the finished slots.
      bool full = o.early_stopping == EarlyStopping::True;
      for (index_t j = 0; j < n; ++j) full = full && done[std::size_t(b * n + j)].finished;
      std::vector<float> merged(static_cast<std::size_t>(n + K));
      for (index_t j = 0; j < n; ++j) merged[std::size_t(j)] = done[std::size_t(b * n + j)].score;
      for (index_t k = 0; k < K; ++k) {
        float s = cand_scores[std::size_t(k)] / denom;
        if (full) s += kBig;
        if (!improvable[std::size_t(b)]) s += kBig;
        if (!(hits[std::size_t(k)] && k < n)) s += kBig;
        merged[std::size_t(n + k)] = s;
      }
      const std::vector<index_t> best = top_indices(merged, n);
      std::vector<Hyp> slots;
      for (index_t m : best) {
        if (m < n) slots.push_back(done[std::size_t(b * n + m)]);
        else slots.push_back({candidate(m - n), merged[std::size_t(m)], hits[std::size_t(m - n)] && m - n < n});
      }
      std::move(slots.begin(), slots.end(), done.begin() + b * n);
    }
    running = std::move(next_running);
    running_scores = std::move(next_scores);
    ++cur;

    // Can a running beam still beat the worst finished one?
    bool any_improvable = false, all_finished = true;
    for (index_t b = 0; b < B; ++b) {
      const index_t len = o.early_stopping == EarlyStopping::Never && o.length_penalty > 0 ? max_length - P : cur - P;
      const float bound = running_scores[std::size_t(b * n)] / pow_len(len);
      float worst = done[std::size_t(b * n)].score;
      for (index_t j = 0; j < n; ++j) worst = std::min(worst, done[std::size_t(b * n + j)].score);
      bool beats = false;
      for (index_t j = 0; j < n; ++j) {
        const bool fin = done[std::size_t(b * n + j)].finished;
        beats = beats || bound > (fin ? worst : kBig);
        all_finished = all_finished && fin;
      }
      improvable[std::size_t(b)] = improvable[std::size_t(b)] && beats;
      any_improvable = any_improvable || improvable[std::size_t(b)];
    }
    const bool stop = !any_improvable || (all_finished && o.early_stopping == EarlyStopping::True) || all_hit;
    if (stop) break;
    step.reorder(origin);
    scores = step.step(last).contiguous().to_vector();
  }

  Ids rows;
  GenerateOutput out;
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < o.num_return_sequences; ++i) {
      rows.push_back(done[std::size_t(b * n + i)].seq);
      out.sequences_scores.push_back(done[std::size_t(b * n + i)].score);
    }
  out.sequences = to_tensor(rows, fill);
  out.prompt_length = P;
  return out;
}

}  // namespace blip2
