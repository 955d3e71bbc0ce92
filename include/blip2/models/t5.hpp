#pragma once
// Flan-T5, the encoder-decoder language model of blip2-flan-t5-* (transformers'
// T5ForConditionalGeneration): pre-norm residual blocks with RMS norm ("layer_norm", no bias, no
// mean subtraction), unscaled attention without biases, a relative position bias computed by the
// first block of each stack and shared by the others (bidirectional buckets in the encoder, causal
// ones in the decoder, none on cross-attention), a gated ("gated-gelu": act(wi_0 x) * wi_1 x) or
// plain (act(wi x)) feed-forward, token embeddings "shared" by encoder and decoder, and an LM head
// that is "shared.weight" (tie_word_embeddings) or a separate "lm_head.weight". Dropout is not
// applied (inference and frozen-LM training).
//
// The decoder runs all positions at once (teacher forcing) or step by step with a T5DecoderCache:
// self-attention keys/values grow by the new positions, cross-attention keys/values of the encoder
// output are computed on the first call and reused.
#include <cmath>
#include <limits>

#include "../autograd/checkpoint.hpp"
#include "../nn/activation.hpp"
#include "../nn/linear.hpp"
#include "../ops/attention.hpp"
#include "../ops/index.hpp"
#include "../ops/norm.hpp"
#include "config.hpp"
#include "kv_cache.hpp"

namespace blip2 {

// The bucket of a relative position (key position minus query position), as transformers'
// T5Attention._relative_position_bucket: bidirectional buckets give half the range to each
// direction; causal buckets map every later key to bucket 0. Distances below half the (remaining)
// buckets are exact, larger ones log-spaced up to max_distance, beyond it the last bucket. The
// log-spaced part is computed in float32 as torch does, so bucket edges agree exactly.
inline index_t t5_relative_position_bucket(index_t relative_position, bool bidirectional, index_t num_buckets,
                                           index_t max_distance) {
  index_t bucket = 0, n = num_buckets, distance = relative_position;
  if (bidirectional) {
    n /= 2;
    if (distance > 0) bucket = n;
    distance = distance < 0 ? -distance : distance;
  } else {
    distance = distance < 0 ? -distance : 0;
  }
  const index_t max_exact = n / 2;
  if (distance < max_exact) return bucket + distance;
  const float span = float(std::log(double(max_distance) / double(max_exact)));
  const float scaled = std::log(float(distance) / float(max_exact)) / span * float(n - max_exact);
  return bucket + std::min<index_t>(max_exact + index_t(scaled), n - 1);
}

// T5LayerNorm: x / sqrt(mean(x^2) + eps) * weight.
template <class T, class D = cpu>
struct T5LayerNorm : nn::Module<T, D> {
  T5LayerNorm(index_t dim, double eps) : eps(eps) { weight = this->register_parameter("weight", Tensor<T, D>::empty({dim})); }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const { return rms_norm(x, weight, T(eps)); }
  Tensor<T, D> weight;
  double eps;
};

// "SelfAttention" / "EncDecAttention": q, k, v, o without biases, no 1/sqrt(d) scaling; the first
// self-attention of a stack also holds "relative_attention_bias.weight" [num_buckets, heads].
template <class T, class D = cpu, class W = T>
struct T5Attention : nn::Module<T, D> {
  T5Attention(const T5Config& c, bool has_relative_attention_bias) : config(c), heads(c.num_heads) {
    const index_t d = c.d_model, inner = index_t(c.num_heads) * c.d_kv;
    for (auto [name, slot] : {std::pair{"q", &q}, {"k", &k}, {"v", &v}})
      *slot = this->register_module(name, std::make_shared<nn::Linear<T, D, W>>(d, inner, false));
    o = this->register_module("o", std::make_shared<nn::Linear<T, D, W>>(inner, d, false));
    if (has_relative_attention_bias)
      relative_attention_bias = this->register_module("relative_attention_bias", std::make_shared<nn::Module<T, D>>())
                                    ->register_parameter("weight", Tensor<T, D>::empty({c.relative_attention_num_buckets,
                                                                                        index_t(c.num_heads)}));
  }

  // Bias [1, heads, L, S] for queries at positions first_query .. first_query + L - 1 over keys at
  // 0 .. S - 1 (a decoder step with a cache starts its queries at the cache length).
  Tensor<T, D> position_bias(index_t L, index_t S, index_t first_query, bool bidirectional) const {
    BLIP2_CHECK(relative_attention_bias.defined(), ValueError, "T5: this attention has no relative_attention_bias");
    std::vector<std::int64_t> buckets(std::size_t(L * S));
    for (index_t i = 0; i < L; ++i)
      for (index_t j = 0; j < S; ++j)
        buckets[std::size_t(i * S + j)] = t5_relative_position_bucket(
            j - (first_query + i), bidirectional, config.relative_attention_num_buckets, config.relative_attention_max_distance);
    const Tensor<T, D> values = embedding(relative_attention_bias, Tensor<std::int64_t, D>::from_vector({L, S}, buckets));
    return values.permute({2, 0, 1}).unsqueeze(0);  // [L, S, heads] -> [1, heads, L, S]
  }

  // x [B, L, d] attends to projected keys/values [B, S, inner] under an additive bias broadcast to
  // [B, heads, L, S].
  Tensor<T, D> attend(const Tensor<T, D>& x, const Tensor<T, D>& keys, const Tensor<T, D>& values,
                      const Tensor<T, D>& bias) const {
    AttentionOptions opt;
    opt.scale = 1.0;
    return (*o)(multi_head_attention((*q)(x), keys, values, heads, bias, opt));
  }

  T5Config config;
  index_t heads;
  std::shared_ptr<nn::Linear<T, D, W>> q, k, v, o;
  Tensor<T, D> relative_attention_bias;
};

// "DenseReluDense": wo(act(wi_0 x) * wi_1 x) when gated, wo(act(wi x)) otherwise.
template <class T, class D = cpu, class W = T>
struct T5DenseActDense : nn::Module<T, D> {
  explicit T5DenseActDense(const T5Config& c) : act(nn::activation_from_name(c.dense_act_fn)) {
    const index_t d = c.d_model, ff = c.d_ff;
    if (c.is_gated()) {
      wi_0 = this->register_module("wi_0", std::make_shared<nn::Linear<T, D, W>>(d, ff, false));
      wi_1 = this->register_module("wi_1", std::make_shared<nn::Linear<T, D, W>>(d, ff, false));
    } else {
      wi = this->register_module("wi", std::make_shared<nn::Linear<T, D, W>>(d, ff, false));
    }
    wo = this->register_module("wo", std::make_shared<nn::Linear<T, D, W>>(ff, d, false));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const {
    return (*wo)(wi ? nn::activate(act, (*wi)(x)) : nn::activate(act, (*wi_0)(x)) * (*wi_1)(x));
  }
  nn::Activation act;
  std::shared_ptr<nn::Linear<T, D, W>> wi, wi_0, wi_1, wo;
};

// Keys/values a decoder keeps between steps: its self-attention's, growing with every step, and the
// cross-attention's over the encoder output, computed by the first step.
template <class T, class D = cpu>
struct T5DecoderCache {
  KVCache<T, D> self_attention;
  std::vector<Tensor<T, D>> cross_keys, cross_values;  // per decoder block, [B, S, heads * d_kv]

  index_t length() const { return self_attention.length(); }
  bool has_cross() const { return !cross_keys.empty(); }

  // Keeps batch rows in `order` (beam search reorders hypotheses; the caller reorders the encoder mask).
  void select_rows(const Tensor<std::int64_t, D>& order) {
    self_attention.select_rows(order);
    for (auto* list : {&cross_keys, &cross_values})
      for (auto& t : *list) t = index_select(t, 0, order);
  }
};

// "block.i": "layer.0" self-attention, "layer.1" cross-attention (decoder only), then the
// feed-forward ("layer.1" in the encoder, "layer.2" in the decoder); each sub-layer is
// x + f(layer_norm(x)).
template <class T, class D = cpu, class W = T>
struct T5Block : nn::Module<T, D> {
  T5Block(const T5Config& c, bool is_decoder, bool has_relative_attention_bias) {
    auto sub = [&](int i) { return this->register_module("layer." + std::to_string(i), std::make_shared<nn::Module<T, D>>()); };
    auto norm = [&](const std::shared_ptr<nn::Module<T, D>>& m) {
      return m->register_module("layer_norm", std::make_shared<T5LayerNorm<T, D>>(c.d_model, c.layer_norm_epsilon));
    };
    auto self = sub(0);
    self_attention = self->register_module("SelfAttention", std::make_shared<T5Attention<T, D, W>>(c, has_relative_attention_bias));
    self_norm = norm(self);
    if (is_decoder) {
      auto cross = sub(1);
      cross_attention = cross->register_module("EncDecAttention", std::make_shared<T5Attention<T, D, W>>(c, false));
      cross_norm = norm(cross);
    }
    auto ff = sub(is_decoder ? 2 : 1);
    feed_forward = ff->register_module("DenseReluDense", std::make_shared<T5DenseActDense<T, D, W>>(c));
    ff_norm = norm(ff);
  }

  // x [B, L, d]; self_bias broadcast to [B, heads, L, past + L]; with a cache, this block's keys and
  // values are appended under `index`. cross_keys/values [B, S, inner] and cross_bias (broadcast to
  // [B, heads, L, S]) for a decoder block.
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& self_bias, KVCache<T, D>* cache, std::size_t index,
                          const Tensor<T, D>& cross_keys = {}, const Tensor<T, D>& cross_values = {},
                          const Tensor<T, D>& cross_bias = {}) const {
    const Tensor<T, D> n = (*self_norm)(x);
    Tensor<T, D> keys = (*self_attention->k)(n), values = (*self_attention->v)(n);
    if (cache) std::tie(keys, values) = cache->append(index, keys, values);
    Tensor<T, D> h = x + self_attention->attend(n, keys, values, self_bias);
    if (cross_attention) h = h + cross_attention->attend((*cross_norm)(h), cross_keys, cross_values, cross_bias);
    return h + (*feed_forward)((*ff_norm)(h));
  }

  std::shared_ptr<T5Attention<T, D, W>> self_attention, cross_attention;
  std::shared_ptr<T5LayerNorm<T, D>> self_norm, cross_norm, ff_norm;
  std::shared_ptr<T5DenseActDense<T, D, W>> feed_forward;
};

// "encoder" / "decoder": the blocks and "final_layer_norm".
template <class T, class D = cpu, class W = T>
struct T5Stack : nn::Module<T, D> {
  T5Stack(const T5Config& c, bool is_decoder) : is_decoder(is_decoder) {
    const int n = is_decoder ? c.num_decoder_layers : c.num_layers;
    for (int i = 0; i < n; ++i)
      blocks.push_back(this->register_module("block." + std::to_string(i), std::make_shared<T5Block<T, D, W>>(c, is_decoder, i == 0)));
    final_layer_norm = this->register_module("final_layer_norm", std::make_shared<T5LayerNorm<T, D>>(c.d_model, c.layer_norm_epsilon));
  }
  bool is_decoder;
  std::vector<std::shared_ptr<T5Block<T, D, W>>> blocks;
  std::shared_ptr<T5LayerNorm<T, D>> final_layer_norm;
};

template <class T, class D = cpu, class W = T>
struct T5ForConditionalGeneration : nn::Module<T, D> {
  explicit T5ForConditionalGeneration(const T5Config& c) : config(c) {
    BLIP2_CHECK(c.num_layers > 0 && c.num_decoder_layers > 0 && c.num_heads > 0 && c.relative_attention_num_buckets > 0,
                ValueError, "T5: config needs layers, heads and relative attention buckets (num_layers ", c.num_layers,
                ", num_decoder_layers ", c.num_decoder_layers, ", num_heads ", c.num_heads, ", buckets ",
                c.relative_attention_num_buckets, ")");
    shared = this->register_module("shared", std::make_shared<nn::Module<T, D>>())
                 ->register_weight("weight", Tensor<W, D>::empty({c.vocab_size, c.d_model}));
    encoder = this->register_module("encoder", std::make_shared<T5Stack<T, D, W>>(c, false));
    decoder = this->register_module("decoder", std::make_shared<T5Stack<T, D, W>>(c, true));
    if (!c.tie_word_embeddings)
      lm_head = this->register_module("lm_head", std::make_shared<nn::Linear<T, D, W>>(c.d_model, c.vocab_size, false));
  }

  // Token ids [B, L] -> embeddings [B, L, d_model] (an id outside the vocabulary is a ValueError).
  Tensor<T, D> embed(const Tensor<std::int64_t, D>& ids) const { return embedding(shared, ids).template to<T>(); }

  // Encoder over inputs_embeds [B, S, d_model] with attention_mask [B, S] of 0/1 (undefined: all
  // attend). Returns the last hidden state [B, S, d_model] (after final_layer_norm).
  Tensor<T, D> encode(const Tensor<T, D>& inputs_embeds, const Tensor<std::int64_t, D>& attention_mask = {}) const {
    BLIP2_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config.d_model, ShapeError, "T5: inputs_embeds ",
                to_string(inputs_embeds.shape()), " do not have width d_model ", config.d_model);
    const index_t S = inputs_embeds.size(1);
    Tensor<T, D> bias = encoder->blocks[0]->self_attention->position_bias(S, S, 0, true);
    if (attention_mask.defined()) bias = bias + padding_mask(attention_mask, inputs_embeds.size(0), S, "attention_mask");
    Tensor<T, D> h = inputs_embeds;
    for (std::size_t i = 0; i < encoder->blocks.size(); ++i) {
      const auto& block = *encoder->blocks[i];
      h = maybe_checkpoint<T, D>(
          gradient_checkpointing, [&block, i](const auto& x) { return block(x[0], x[1], nullptr, i); }, {h, bias});
    }
    return (*encoder->final_layer_norm)(h);
  }

  // Decoder logits [B, L, vocab] for decoder_ids [B, L] over the encoder output [B, S, d_model]
  // with its mask [B, S] (undefined: all attend). With a cache the ids are the next L positions
  // after the cached ones; the first call stores the cross-attention keys/values, later calls reuse
  // them (encoder_out may then be undefined). decoder_mask [B, past + L] of 0/1 masks padded decoder
  // positions on top of the causal mask (transformers' decoder_attention_mask).
  Tensor<T, D> decode(const Tensor<std::int64_t, D>& decoder_ids, const Tensor<T, D>& encoder_out,
                      const Tensor<std::int64_t, D>& encoder_mask = {}, T5DecoderCache<T, D>* cache = nullptr,
                      const Tensor<std::int64_t, D>& decoder_mask = {}) const {
    BLIP2_CHECK(decoder_ids.dim() == 2 && decoder_ids.size(1) > 0, ShapeError, "T5: decoder_input_ids ",
                to_string(decoder_ids.shape()), " are not [batch, length > 0]");
    const index_t B = decoder_ids.size(0), L = decoder_ids.size(1), past = cache ? cache->length() : 0;
    const bool cached_cross = cache && cache->has_cross();
    BLIP2_CHECK(cached_cross || (encoder_out.defined() && encoder_out.dim() == 3 && encoder_out.size(0) == B &&
                                 encoder_out.size(2) == config.d_model),
                ShapeError, "T5: encoder output ", encoder_out.defined() ? to_string(encoder_out.shape()) : std::string("(none)"),
                " does not fit decoder_input_ids ",
                to_string(decoder_ids.shape()), " (d_model ", config.d_model, ")");
    const std::size_t layers = decoder->blocks.size();
    std::vector<Tensor<T, D>> cross_k(layers), cross_v(layers);
    if (cached_cross) {
      BLIP2_CHECK(cache->cross_keys.size() == layers && cache->cross_keys[0].size(0) == B, ShapeError,
                  "T5: the cache's cross-attention keys ", to_string(cache->cross_keys[0].shape()),
                  " do not fit decoder_input_ids ", to_string(decoder_ids.shape()));
      cross_k = cache->cross_keys;
      cross_v = cache->cross_values;
    } else {
      for (std::size_t i = 0; i < layers; ++i) {
        const auto& attn = *decoder->blocks[i]->cross_attention;
        cross_k[i] = (*attn.k)(encoder_out);
        cross_v[i] = (*attn.v)(encoder_out);
      }
      if (cache) {
        cache->cross_keys = cross_k;
        cache->cross_values = cross_v;
      }
    }
    const index_t S = cross_k[0].size(1);
    const Tensor<T, D> cross_bias = encoder_mask.defined() ? padding_mask(encoder_mask, B, S, "encoder attention mask")
                                                           : Tensor<T, D>();
    Tensor<T, D> self_bias =
        decoder->blocks[0]->self_attention->position_bias(L, past + L, past, false) + causal_mask<T, D>(L, past + L);
    if (decoder_mask.defined()) self_bias = self_bias + padding_mask(decoder_mask, B, past + L, "decoder attention mask");
    KVCache<T, D>* kv = cache ? &cache->self_attention : nullptr;
    Tensor<T, D> h = embed(decoder_ids);
    for (std::size_t i = 0; i < layers; ++i) {
      const auto& block = *decoder->blocks[i];
      h = maybe_checkpoint<T, D>(
          gradient_checkpointing && !kv,
          [&block, kv, i](const auto& x) { return block(x[0], x[1], kv, i, x[2], x[3], x[4]); },
          {h, self_bias, cross_k[i], cross_v[i], cross_bias});
    }
    h = (*decoder->final_layer_norm)(h);
    if (config.scale_decoder_outputs) h = h * T(1.0 / std::sqrt(double(config.d_model)));
    return lm_head ? (*lm_head)(h) : linear(h, shared);
  }

  // Teacher-forced logits [B, L, vocab]: encoder over inputs_embeds/attention_mask, decoder over
  // decoder_input_ids.
  Tensor<T, D> operator()(const Tensor<T, D>& inputs_embeds, const Tensor<std::int64_t, D>& attention_mask,
                          const Tensor<std::int64_t, D>& decoder_input_ids) const {
    return decode(decoder_input_ids, encode(inputs_embeds, attention_mask), attention_mask);
  }

  // The decoder input for labels [B, L]: decoder_start_token_id, then labels[:, :-1] with -100
  // replaced by the padding id. Labels must be ids of the vocabulary or -100 (ValueError otherwise).
  Tensor<std::int64_t, D> shift_right(const Tensor<std::int64_t, D>& labels) const {
    BLIP2_CHECK(labels.dim() == 2 && labels.size(1) > 0, ShapeError, "T5: labels ", to_string(labels.shape()),
                " are not [batch, length > 0]");
    const index_t B = labels.size(0), L = labels.size(1);
    const auto v = labels.template to<cpu>().contiguous().to_vector();
    std::vector<std::int64_t> out(v.size());
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < L; ++t) {
        const std::int64_t id = v[std::size_t(b * L + t)];
        BLIP2_CHECK(id == -100 || (id >= 0 && id < config.vocab_size), ValueError, "T5: labels hold ", id, " at [", b, ", ",
                    t, "], outside [0, ", config.vocab_size, ") and not -100 (ignored)");
        if (t + 1 < L) out[std::size_t(b * L + t + 1)] = id == -100 ? config.pad_token_id : id;
      }
    for (index_t b = 0; b < B; ++b) out[std::size_t(b * L)] = config.decoder_start_token_id;
    return Tensor<std::int64_t, D>::from_vector({B, L}, out);
  }

  // [B, S] of 0/1 -> additive [B, 1, 1, S] of 0 / -inf.
  static Tensor<T, D> padding_mask(const Tensor<std::int64_t, D>& m, index_t B, index_t S, const char* what) {
    BLIP2_CHECK(m.dim() == 2 && m.size(0) == B && m.size(1) == S, ShapeError, "T5: ", what, " ", to_string(m.shape()),
                " does not fit batch ", B, " and length ", S);
    const auto v = m.template to<cpu>().contiguous().to_vector();
    std::vector<T> add(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) add[i] = v[i] ? T(0) : -std::numeric_limits<T>::infinity();
    return Tensor<T, D>::from_vector({B, 1, 1, S}, add);
  }

  // Recompute each block during backward instead of keeping its activations (not with a cache).
  bool gradient_checkpointing = false;
  T5Config config;
  Tensor<W, D> shared;
  std::shared_ptr<T5Stack<T, D, W>> encoder, decoder;
  std::shared_ptr<nn::Linear<T, D, W>> lm_head;
};

}  // namespace blip2
