#pragma once
// The Q-Former (transformers' Blip2QFormerModel): a BERT encoder whose learned queries read the
// image through cross-attention every `cross_attention_frequency` layers. Post-LN layers; queries
// and text share self-attention but have separate feed-forward branches (intermediate_query /
// output_query for queries, intermediate / output for text). Names follow the checkpoint.
#include "../autograd/checkpoint.hpp"
#include "../nn/activation.hpp"
#include "../nn/embedding.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "../ops/attention.hpp"
#include "config.hpp"

namespace blip2 {

// BERT's "dense, dropout, LayerNorm(x + residual)" block (SelfOutput and Output).
template <class T, class D = cpu>
struct DenseResidualNorm : nn::Module<T, D> {
  DenseResidualNorm(index_t in, index_t out, double eps) {
    dense = this->register_module("dense", std::make_shared<nn::Linear<T, D>>(in, out));
    LayerNorm = this->register_module("LayerNorm", std::make_shared<nn::LayerNorm<T, D>>(out, eps));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& residual) const {
    return (*LayerNorm)((*dense)(x) + residual);
  }
  std::shared_ptr<nn::Linear<T, D>> dense;
  std::shared_ptr<nn::LayerNorm<T, D>> LayerNorm;
};

// Keys and values of one self-attention layer, packed heads [B, S, hidden] (LAVIS's
// past_key_values: the ITG pass attends to the query pass's keys and values).
template <class T, class D = cpu>
struct AttentionKV {
  Tensor<T, D> key, value;
};

// Multi-head attention with output block: "attention.{query,key,value}" and "output.{dense,LayerNorm}".
template <class T, class D = cpu>
struct QFormerAttention : nn::Module<T, D> {
  QFormerAttention(const QFormerConfig& c, bool cross) : heads(c.num_attention_heads) {
    const index_t h = c.hidden_size, kv_in = cross ? c.encoder_hidden_size : c.hidden_size;
    auto attention = this->register_module("attention", std::make_shared<nn::Module<T, D>>());
    query = attention->register_module("query", std::make_shared<nn::Linear<T, D>>(h, h));
    key = attention->register_module("key", std::make_shared<nn::Linear<T, D>>(kv_in, h));
    value = attention->register_module("value", std::make_shared<nn::Linear<T, D>>(kv_in, h));
    output = this->register_module("output", std::make_shared<DenseResidualNorm<T, D>>(h, h, c.layer_norm_eps));
  }
  AttentionKV<T, D> keys_values(const Tensor<T, D>& source) const { return {(*key)(source), (*value)(source)}; }
  // x [B, L, h] attends to source [B, S, kv_in] (x itself for self-attention) under an additive mask.
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& source, const Tensor<T, D>& mask) const {
    return (*this)(x, keys_values(source), mask);
  }
  // The same with the keys and values already projected (a prefix from another pass may lead them).
  Tensor<T, D> operator()(const Tensor<T, D>& x, const AttentionKV<T, D>& kv, const Tensor<T, D>& mask) const {
    return (*output)(multi_head_attention((*query)(x), kv.key, kv.value, heads, mask), x);
  }
  index_t heads;
  std::shared_ptr<nn::Linear<T, D>> query, key, value;
  std::shared_ptr<DenseResidualNorm<T, D>> output;
};

template <class T, class D = cpu>
struct QFormerLayer : nn::Module<T, D> {
  QFormerLayer(const QFormerConfig& c, int index) : act(nn::activation_from_name(c.hidden_act)) {
    const index_t h = c.hidden_size, inner = c.intermediate_size;
    attention = this->register_module("attention", std::make_shared<QFormerAttention<T, D>>(c, false));
    if (index % c.cross_attention_frequency == 0)
      crossattention = this->register_module("crossattention", std::make_shared<QFormerAttention<T, D>>(c, true));
    if (c.use_qformer_text_input) {
      intermediate = feed_forward_in("intermediate", h, inner);
      output = this->register_module("output", std::make_shared<DenseResidualNorm<T, D>>(inner, h, c.layer_norm_eps));
    }
    intermediate_query = feed_forward_in("intermediate_query", h, inner);
    output_query = this->register_module("output_query", std::make_shared<DenseResidualNorm<T, D>>(inner, h, c.layer_norm_eps));
  }

  // x [B, Q + L, h]: the first `queries` rows are query tokens, the rest text. `self_kv` are x's own
  // keys and values (attention->keys_values(x)), led by the `past` prefix's when one is given.
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& mask, const Tensor<T, D>& image, index_t queries,
                          const AttentionKV<T, D>& self_kv, const AttentionKV<T, D>* past = nullptr) const {
    const AttentionKV<T, D> kv = past ? AttentionKV<T, D>{concat<T, D>({past->key, self_kv.key}, 1),
                                                          concat<T, D>({past->value, self_kv.value}, 1)}
                                      : self_kv;
    const Tensor<T, D> a = (*attention)(x, kv, mask);
    std::vector<Tensor<T, D>> parts;
    if (queries > 0) {
      Tensor<T, D> q = a.slice(1, 0, queries);
      if (crossattention) {
        BLIP2_CHECK(image.defined(), ValueError, "Q-Former: cross-attention layers need image features");
        q = (*crossattention)(q, image, Tensor<T, D>());
      }
      parts.push_back(feed_forward(q, *intermediate_query, *output_query));
    }
    if (a.size(1) > queries) {
      BLIP2_CHECK(intermediate, ValueError, "Q-Former: text input given but the config has use_qformer_text_input false");
      parts.push_back(feed_forward(a.slice(1, queries, a.size(1)), *intermediate, *output));
    }
    return parts.size() == 1 ? parts[0] : concat(parts, 1);
  }

  nn::Activation act;
  std::shared_ptr<QFormerAttention<T, D>> attention, crossattention;
  std::shared_ptr<nn::Linear<T, D>> intermediate, intermediate_query;
  std::shared_ptr<DenseResidualNorm<T, D>> output, output_query;

 private:
  std::shared_ptr<nn::Linear<T, D>> feed_forward_in(const std::string& name, index_t h, index_t inner) {
    auto holder = this->register_module(name, std::make_shared<nn::Module<T, D>>());
    return holder->register_module("dense", std::make_shared<nn::Linear<T, D>>(h, inner));
  }
  Tensor<T, D> feed_forward(const Tensor<T, D>& x, const nn::Linear<T, D>& in, const DenseResidualNorm<T, D>& out) const {
    return out(nn::activate(act, in(x)), x);
  }
};

template <class T, class D = cpu>
struct QFormerModel : nn::Module<T, D> {
  explicit QFormerModel(const QFormerConfig& c) : config(c) {
    layernorm = this->register_module("layernorm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size, c.layer_norm_eps));
    auto encoder = this->register_module("encoder", std::make_shared<nn::Module<T, D>>());
    for (int i = 0; i < c.num_hidden_layers; ++i)
      layers.push_back(encoder->register_module("layer." + std::to_string(i), std::make_shared<QFormerLayer<T, D>>(c, i)));
  }

  // embeds [B, Q + L, h] (queries first); attention_mask [B, Q + L] of 1 (attend) / 0 (padding) or
  // undefined (all attend); image [B, S, encoder_hidden] or undefined when queries == 0.
  Tensor<T, D> operator()(const Tensor<T, D>& embeds, const Tensor<std::int64_t, D>& attention_mask,
                          const Tensor<T, D>& image, index_t queries) const {
    Pass pass;
    if (attention_mask.defined()) pass.mask = padding_mask(attention_mask, embeds);
    return forward(embeds, image, queries, pass);
  }

  // What a pass may add to the embeddings: LAVIS's per-example masks and the key/value prefix.
  struct Pass {
    Tensor<T, D> mask;                                   // additive, broadcast to [B, heads, Lq, Lk]
    const std::vector<AttentionKV<T, D>>* past = nullptr;  // per layer, keys/values in front of the pass's own
    std::vector<AttentionKV<T, D>>* present = nullptr;     // receives each layer's own keys/values
  };

  // The general pass: embeds [B, Q + L, h] with the first `queries` rows query tokens (they
  // cross-attend to image and use the query feed-forward), under `pass.mask` [B, 1, Q + L, P + Q + L]
  // where P is the past prefix length (qformer_masks.hpp builds LAVIS's masks).
  Tensor<T, D> forward(const Tensor<T, D>& embeds, const Tensor<T, D>& image, index_t queries, const Pass& pass) const {
    BLIP2_CHECK(embeds.dim() == 3 && embeds.size(2) == config.hidden_size, ShapeError, "Q-Former: embeddings ",
                to_string(embeds.shape()), " do not have hidden size ", config.hidden_size);
    BLIP2_CHECK(!image.defined() || (image.dim() == 3 && image.size(2) == config.encoder_hidden_size &&
                                     image.size(0) == embeds.size(0)),
                ShapeError, "Q-Former: image features ", to_string(image.shape()), " do not fit embeddings ",
                to_string(embeds.shape()), " (encoder_hidden_size ", config.encoder_hidden_size, ")");
    BLIP2_CHECK(!pass.past || pass.past->size() == layers.size(), ValueError, "Q-Former: ",
                pass.past ? pass.past->size() : 0, " past key/value layers for ", layers.size(), " layers");
    if (pass.present) pass.present->clear();
    Tensor<T, D> h = (*layernorm)(embeds);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& layer = *layers[i];
      const AttentionKV<T, D> kv = layer.attention->keys_values(h);
      if (pass.present) pass.present->push_back(kv);
      const AttentionKV<T, D>* past = pass.past ? &(*pass.past)[i] : nullptr;
      const Tensor<T, D> mask = pass.mask;
      const bool with_past = past != nullptr;
      std::vector<Tensor<T, D>> in{h, kv.key, kv.value, image};
      if (with_past) in.insert(in.end(), {past->key, past->value});
      h = maybe_checkpoint<T, D>(
          gradient_checkpointing,
          [&layer, mask, queries, with_past](const std::vector<Tensor<T, D>>& x) {
            const AttentionKV<T, D> prefix{with_past ? x[4] : Tensor<T, D>(), with_past ? x[5] : Tensor<T, D>()};
            return layer(x[0], mask, x[3], queries, {x[1], x[2]}, with_past ? &prefix : nullptr);
          },
          in);
    }
    return h;
  }

  // [B, L] of 0/1 -> additive [B, 1, 1, L] of 0 / -inf.
  static Tensor<T, D> padding_mask(const Tensor<std::int64_t, D>& m, const Tensor<T, D>& embeds) {
    BLIP2_CHECK(m.dim() == 2 && m.size(0) == embeds.size(0) && m.size(1) == embeds.size(1), ShapeError,
                "Q-Former: attention mask ", to_string(m.shape()), " does not fit embeddings ", to_string(embeds.shape()));
    const auto v = m.template to<cpu>().to_vector();
    std::vector<T> add(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) add[i] = v[i] ? T(0) : -std::numeric_limits<T>::infinity();
    return Tensor<T, D>::from_vector({m.size(0), 1, 1, m.size(1)}, add);
  }

  // Recompute each layer during backward (same gradients, activations of one layer at a time).
  bool gradient_checkpointing = false;
  QFormerConfig config;
  std::shared_ptr<nn::LayerNorm<T, D>> layernorm;
  std::vector<std::shared_ptr<QFormerLayer<T, D>>> layers;
};

}  // namespace blip2
