#pragma once
// What the model benchmarks share: the blip2-opt-2.7b configuration, timers and peak memory.
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

}  // namespace blip2::bench
