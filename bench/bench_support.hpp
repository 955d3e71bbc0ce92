#pragma once
// What the model benchmarks share: the blip2-opt-2.7b configuration, LAVIS-shaped text batches,
// timers and peak memory.
#include <blip2/core/random.hpp>
#include <blip2/core/tensor.hpp>
#include <blip2/models/config.hpp>
#include <sys/resource.h>

#include <chrono>

namespace blip2::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Peak resident memory of this process in MiB.
inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

// blip2-opt-2.7b: EVA ViT-g/14 at 224 px, BERT-base Q-Former with 32 queries, OPT-2.7B, the
// processor's image placeholder token.
inline Blip2Config opt27b_config() {
  Blip2Config c;
  c.text_model_type = "opt";
  c.opt.vocab_size = 50272;
  c.opt.hidden_size = c.opt.word_embed_proj_dim = 2560;
  c.opt.num_hidden_layers = 32;
  c.opt.num_attention_heads = 32;
  c.opt.ffn_dim = 10240;
  c.opt.max_position_embeddings = 2048;
  c.image_token_index = 50265;
  return c;
}

// The stage-1 (retrieval) model on c's shapes: its Q-Former reads text ([DEC] added to BERT's vocabulary).
inline Blip2Config stage1_config(Blip2Config c) {
  c.architectures = {"Blip2ForImageTextRetrieval"};
  c.qformer.use_qformer_text_input = true;
  c.qformer.vocab_size = 30523;  // BERT's 30522 + [DEC]
  return c;
}

// LAVIS-shaped text batches: a start id, random word ids, an end id at the last valid position,
// then padding; valid lengths T, T - T/4, T, T/2 (further rows full), as the peer builds them.
inline std::pair<Tensor<std::int64_t>, Tensor<std::int64_t>> text_batch(index_t B, index_t T, std::int64_t first,
                                                                        std::int64_t last, std::int64_t lo, std::int64_t hi,
                                                                        std::int64_t pad, Generator& gen) {
  std::vector<std::int64_t> ids(std::size_t(B * T), pad), mask(std::size_t(B * T), 0);
  const index_t lengths[4] = {T, T - T / 4, T, T / 2};
  for (index_t b = 0; b < B; ++b) {
    const index_t n = b < 4 ? lengths[b] : T;
    for (index_t t = 0; t < n; ++t) {
      ids[std::size_t(b * T + t)] = t == 0 ? first : t == n - 1 ? last : lo + std::int64_t(gen.uniform() * double(hi - lo));
      mask[std::size_t(b * T + t)] = 1;
    }
  }
  return {Tensor<std::int64_t>::from_vector({B, T}, ids), Tensor<std::int64_t>::from_vector({B, T}, mask)};
}

}  // namespace blip2::bench
