#pragma once
// OPT, the decoder-only language model of blip2-opt-* (transformers' OPTForCausalLM): learned
// positions computed from the attention mask (offset 2, so left padding works), pre-LN layers (or
// post-LN with do_layer_norm_before=false), ReLU feed-forward, optional project_in/out when
// word_embed_proj_dim differs from hidden_size, and an LM head tied to the token embeddings.
#include <limits>

#include "../autograd/checkpoint.hpp"
#include "../nn/activation.hpp"
#include "../nn/embedding.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "../ops/attention.hpp"
#include "../ops/index.hpp"
#include "config.hpp"
#include "kv_cache.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct OPTAttention : nn::Module<T, D> {
  explicit OPTAttention(const OPTConfig& c) : heads(c.num_attention_heads) {
    const index_t h = c.hidden_size;
    for (auto [name, slot] : {std::pair{"k_proj", &k_proj}, {"v_proj", &v_proj}, {"q_proj", &q_proj}, {"out_proj", &out_proj}})
      *slot = this->register_module(name, std::make_shared<nn::Linear<T, D, W>>(h, h, c.enable_bias));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& mask, KVCache<T, D>* cache, std::size_t layer) const {
    Tensor<T, D> k = (*k_proj)(x), v = (*v_proj)(x);
    if (cache) std::tie(k, v) = cache->append(layer, k, v);
    return (*out_proj)(multi_head_attention((*q_proj)(x), k, v, heads, mask));
  }
  index_t heads;
  std::shared_ptr<nn::Linear<T, D, W>> q_proj, k_proj, v_proj, out_proj;
};

template <class T, class D = cpu, class W = T>
struct OPTLayer : nn::Module<T, D> {
  explicit OPTLayer(const OPTConfig& c) : pre_norm(c.do_layer_norm_before), act(nn::activation_from_name(c.activation_function)) {
    self_attn = this->register_module("self_attn", std::make_shared<OPTAttention<T, D, W>>(c));
    self_attn_layer_norm = this->register_module("self_attn_layer_norm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size));
    fc1 = this->register_module("fc1", std::make_shared<nn::Linear<T, D, W>>(c.hidden_size, c.ffn_dim, c.enable_bias));
    fc2 = this->register_module("fc2", std::make_shared<nn::Linear<T, D, W>>(c.ffn_dim, c.hidden_size, c.enable_bias));
    final_layer_norm = this->register_module("final_layer_norm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& mask, KVCache<T, D>* cache, std::size_t layer) const {
    Tensor<T, D> h = x + (*self_attn)(pre_norm ? (*self_attn_layer_norm)(x) : x, mask, cache, layer);
    if (!pre_norm) h = (*self_attn_layer_norm)(h);
    Tensor<T, D> out = h + (*fc2)(nn::activate(act, (*fc1)(pre_norm ? (*final_layer_norm)(h) : h)));
    return pre_norm ? out : (*final_layer_norm)(out);
  }
  bool pre_norm;
  nn::Activation act;
  std::shared_ptr<OPTAttention<T, D, W>> self_attn;
  std::shared_ptr<nn::LayerNorm<T, D>> self_attn_layer_norm, final_layer_norm;
  std::shared_ptr<nn::Linear<T, D, W>> fc1, fc2;
};

// Checkpoint prefix "model.decoder." inside the language model.
template <class T, class D = cpu, class W = T>
struct OPTForCausalLM : nn::Module<T, D> {
  static constexpr index_t kPositionOffset = 2;

  explicit OPTForCausalLM(const OPTConfig& c) : config(c) {
    auto decoder = this->register_module("model", std::make_shared<nn::Module<T, D>>())
                       ->register_module("decoder", std::make_shared<nn::Module<T, D>>());
    embed_tokens = decoder->register_module("embed_tokens", std::make_shared<nn::Module<T, D>>())
                       ->register_weight("weight", Tensor<W, D>::empty({c.vocab_size, c.embed_dim()}));
    embed_positions = decoder->register_module("embed_positions", std::make_shared<nn::Module<T, D>>())
                          ->register_weight("weight", Tensor<W, D>::empty({c.max_position_embeddings + kPositionOffset,
                                                                              c.hidden_size}));
    if (c.embed_dim() != c.hidden_size) {
      project_in = decoder->register_module("project_in", std::make_shared<nn::Linear<T, D, W>>(c.embed_dim(), c.hidden_size, false));
      project_out = decoder->register_module("project_out", std::make_shared<nn::Linear<T, D, W>>(c.hidden_size, c.embed_dim(), false));
    }
    if (c.do_layer_norm_before && !c.remove_final_layer_norm)
      final_layer_norm = decoder->register_module("final_layer_norm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size));
    for (int i = 0; i < c.num_hidden_layers; ++i)
      layers.push_back(decoder->register_module("layers." + std::to_string(i), std::make_shared<OPTLayer<T, D, W>>(c)));
  }

  // Token ids [B, L] -> embeddings [B, L, embed_dim] (an id outside the vocabulary is a ValueError;
  // the padding id's row receives no gradient, as in transformers).
  Tensor<T, D> embed(const Tensor<std::int64_t, D>& ids) const { return embedding(embed_tokens, ids, config.pad_token_id).template to<T>(); }

  // inputs_embeds [B, L, embed_dim]; attention_mask [B, past + L] of 0/1 covering the cached
  // positions too. Returns logits [B, L, vocab]. With a cache, keys/values are appended to it.
  Tensor<T, D> operator()(const Tensor<T, D>& inputs_embeds, const Tensor<std::int64_t, D>& attention_mask,
                          KVCache<T, D>* cache = nullptr) const {
    const index_t B = inputs_embeds.size(0), L = inputs_embeds.size(1), past = cache ? cache->length() : 0;
    BLIP2_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config.embed_dim(), ShapeError, "OPT: inputs_embeds ",
                to_string(inputs_embeds.shape()), " do not have width ", config.embed_dim());
    BLIP2_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == past + L, ShapeError,
                "OPT: attention mask ", to_string(attention_mask.shape()), " does not cover ", past, " cached + ", L,
                " new positions of batch ", B);
    const auto m = attention_mask.template to<cpu>().to_vector();
    std::vector<std::int64_t> pos(std::size_t(B * L));
    std::vector<T> mask(std::size_t(B * L * (past + L)));
    const index_t S = past + L;
    for (index_t b = 0; b < B; ++b) {
      std::int64_t run = 0;
      for (index_t j = 0; j < S; ++j) {
        run += m[std::size_t(b * S + j)] != 0;
        if (j >= past) pos[std::size_t(b * L + j - past)] = (m[std::size_t(b * S + j)] ? run : 0) - 1 + kPositionOffset;
      }
      for (index_t i = 0; i < L; ++i)
        for (index_t j = 0; j < S; ++j)
          mask[std::size_t((b * L + i) * S + j)] =
              (j <= past + i && m[std::size_t(b * S + j)]) ? T(0) : -std::numeric_limits<T>::infinity();
    }
    const auto positions = Tensor<std::int64_t, D>::from_vector({B, L}, pos);
    Tensor<T, D> h = project_in ? (*project_in)(inputs_embeds) : inputs_embeds;
    h = h + embedding(embed_positions, positions).template to<T>();
    const auto additive = Tensor<T, D>::from_vector({B, 1, L, S}, mask);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& layer = *layers[i];
      h = maybe_checkpoint<T, D>(
          gradient_checkpointing && !cache, [&layer, cache, i](const auto& x) { return layer(x[0], x[1], cache, i); },
          {h, additive});
    }
    if (final_layer_norm) h = (*final_layer_norm)(h);
    if (project_out) h = (*project_out)(h);
    return linear(h, embed_tokens);
  }

  // Recompute each layer during backward instead of keeping its activations (training through the
  // frozen model: same gradients, one layer's activations at a time). Not with a KV cache.
  bool gradient_checkpointing = false;
  OPTConfig config;
  Tensor<W, D> embed_tokens, embed_positions;
  std::shared_ptr<nn::Linear<T, D, W>> project_in, project_out;
  std::shared_ptr<nn::LayerNorm<T, D>> final_layer_norm;
  std::vector<std::shared_ptr<OPTLayer<T, D, W>>> layers;
};

}  // namespace blip2
