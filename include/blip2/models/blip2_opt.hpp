#pragma once
// Blip2ForConditionalGeneration with an OPT language model: image -> ViT -> Q-Former ->
// language_projection -> soft visual prompts in front of (or in place of the image tokens within)
// the text -> OPT. Only query_tokens, the Q-Former and the projection train; the ViT and OPT stay
// frozen (they record no weight gradients).
#include "../ops/loss.hpp"
#include "blip2_backbone.hpp"
#include "opt.hpp"

namespace blip2 {

template <class T, class D = cpu>
struct Blip2OPT : Blip2Backbone<T, D> {
  struct Output {
    typename Blip2Backbone<T, D>::ImageQueries image;
    Tensor<T, D> language_model_inputs;  // [B, Q, LM width]
    Tensor<T, D> logits;                 // [B, L, vocab] over the whole LM input
    Tensor<T, D> loss;                   // when labels were given
  };

  explicit Blip2OPT(const Blip2Config& c) : Blip2Backbone<T, D>(c) {
    BLIP2_CHECK(c.text_model_type == "opt", ValueError, "Blip2OPT: config's text model is '", c.text_model_type, "'");
    language_projection = this->register_module(
        "language_projection", std::make_shared<nn::Linear<T, D>>(c.qformer.hidden_size, c.opt.embed_dim()));
    language_model = this->register_module("language_model", std::make_shared<OPTForCausalLM<T, D>>(c.opt));
  }

  // Freezes the image encoder and the language model; the rest takes gradients (stage 2 training).
  void set_stage2_trainable() {
    this->set_requires_grad(false);
    this->qformer->set_requires_grad(true);
    language_projection->set_requires_grad(true);
    this->query_tokens.requires_grad_(true);
  }

  Tensor<T, D> project(const Tensor<T, D>& queries) const { return (*language_projection)(queries); }

  // Text embeddings with the projected queries in place: where input_ids hold image_token_index
  // (the HF processor's layout, Q placeholders per row), or else in front of the text.
  // Returns the embeddings and the matching attention mask.
  std::pair<Tensor<T, D>, Tensor<std::int64_t, D>> merge(const Tensor<T, D>& lm_inputs, const Tensor<std::int64_t, D>& ids,
                                                          const Tensor<std::int64_t, D>& mask) const {
    const index_t B = ids.size(0), L = ids.size(1), Q = lm_inputs.size(1), E = lm_inputs.size(2);
    BLIP2_CHECK(ids.dim() == 2 && lm_inputs.size(0) == B && (!mask.defined() || mask.shape() == ids.shape()), ShapeError,
                "BLIP-2: input_ids ", to_string(ids.shape()), ", attention_mask ", to_string(mask.shape()),
                " and image queries ", to_string(lm_inputs.shape()), " do not fit");
    const Tensor<std::int64_t, D> full_mask = mask.defined() ? mask : Tensor<std::int64_t, D>::ones(ids.shape());
    const auto iv = ids.template to<cpu>().to_vector();
    const int image_id = this->config.image_token_index.value_or(-1);
    const index_t placeholders = std::count(iv.begin(), iv.end(), std::int64_t(image_id));
    if (placeholders == 0) {  // legacy layout: queries in front
      const Tensor<T, D> embeds = concat<T, D>({lm_inputs, language_model->embed(ids)}, 1);
      return {embeds, concat<std::int64_t, D>({Tensor<std::int64_t, D>::ones({B, Q}), full_mask}, 1)};
    }
    std::vector<std::int64_t> gather(std::size_t(B * L));
    for (index_t b = 0; b < B; ++b) {
      index_t k = 0;
      for (index_t t = 0; t < L; ++t) {
        const bool image = iv[std::size_t(b * L + t)] == image_id;
        BLIP2_CHECK(!image || k < Q, ValueError, "BLIP-2: row ", b, " of input_ids holds more than ", Q,
                    " image tokens (id ", image_id, ")");
        gather[std::size_t(b * L + t)] = image ? b * Q + k++ : B * Q + b * L + t;
      }
      BLIP2_CHECK(k == Q, ValueError, "BLIP-2: row ", b, " of input_ids holds ", k, " image tokens (id ", image_id,
                  "), the model needs ", Q);
    }
    const Tensor<T, D> rows = concat<T, D>({lm_inputs.reshape({B * Q, E}), language_model->embed(ids).reshape({B * L, E})}, 0);
    const Tensor<T, D> embeds = index_select(rows, 0, Tensor<std::int64_t, D>::from_vector({B * L}, gather)).reshape({B, L, E});
    return {embeds, full_mask};
  }

  // pixels [B, 3, H, W]; input_ids [B, L] (with or without image placeholders); attention_mask
  // [B, L] or undefined; labels [B, L'] (optional, -100 ignored) score the last L' positions as
  // transformers does (position t predicts t + 1).
  Output operator()(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& input_ids,
                    const Tensor<std::int64_t, D>& attention_mask = {}, const Tensor<std::int64_t, D>& labels = {}) const {
    Output out;
    out.image = this->query_image(pixels);
    out.language_model_inputs = project(out.image.queries);
    const auto [embeds, mask] = merge(out.language_model_inputs, input_ids, attention_mask);
    out.logits = (*language_model)(embeds, mask);
    if (labels.defined()) out.loss = causal_lm_loss(out.logits, labels);
    return out;
  }

  // Mean next-token cross-entropy of logits [B, L, V] against labels [B, L'] aligned to the last L'.
  static Tensor<T, D> causal_lm_loss(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels) {
    const index_t L = logits.size(1), Ll = labels.size(1);
    BLIP2_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && Ll <= L && Ll >= 2, ShapeError, "BLIP-2: labels ",
                to_string(labels.shape()), " do not fit logits ", to_string(logits.shape()));
    return cross_entropy(logits.slice(1, L - Ll, L - 1), labels.slice(1, 1, Ll).contiguous());
  }

  std::shared_ptr<nn::Linear<T, D>> language_projection;
  std::shared_ptr<OPTForCausalLM<T, D>> language_model;
};

}  // namespace blip2
