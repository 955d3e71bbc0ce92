#pragma once
// What both Blip2ForConditionalGeneration variants (OPT in blip2_opt.hpp, Flan-T5 in blip2_t5.hpp)
// add to the backbone: "language_projection" from the Q-Former width to the language model's,
// the "language_model" itself, the placement of the projected queries among the text embeddings,
// and stage-2 freezing (query_tokens, the Q-Former, the projection and ln_vision train).
#include <algorithm>

#include "../ops/loss.hpp"
#include "blip2_backbone.hpp"

namespace blip2 {

template <class T, class D, class W, class LanguageModel>
struct Blip2Generative : Blip2Backbone<T, D, W> {
  struct Output {
    typename Blip2Backbone<T, D, W>::ImageQueries image;
    Tensor<T, D> language_model_inputs;  // [B, Q, LM width]
    Tensor<T, D> logits;                 // [B, L, vocab]
    Tensor<T, D> loss;                   // when labels were given
  };

  // `who` names the model in errors; the config's text model must be `text_type`. The language
  // model is built from `lm_config`; `width` is the width of its input embeddings.
  template <class LMConfig>
  Blip2Generative(const Blip2Config& c, const char* who, const char* text_type, const LMConfig& lm_config, index_t width)
      : Blip2Backbone<T, D, W>(checked(c, who, text_type)) {
    language_projection =
        this->register_module("language_projection", std::make_shared<nn::Linear<T, D>>(c.qformer.hidden_size, width));
    language_model = this->register_module("language_model", std::make_shared<LanguageModel>(lm_config));
  }

  // What LAVIS trains in stage 2: the query tokens, the Q-Former, the projection and the image
  // encoder's final LayerNorm (LAVIS's ln_vision); the encoder's blocks and the language model freeze.
  void set_stage2_trainable() {
    this->set_requires_grad(false);
    this->vision_model->post_layernorm->set_requires_grad(true);
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
    BLIP2_CHECK(ids.dim() == 2 && lm_inputs.dim() == 3 && lm_inputs.size(0) == ids.size(0) &&
                    (!mask.defined() || mask.shape() == ids.shape()),
                ShapeError, "BLIP-2: input_ids ", to_string(ids.shape()), ", attention_mask ",
                mask.defined() ? to_string(mask.shape()) : std::string("(none)"),
                " and image queries ", to_string(lm_inputs.shape()), " do not fit");
    const index_t B = ids.size(0), L = ids.size(1), Q = lm_inputs.size(1), E = lm_inputs.size(2);
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

  std::shared_ptr<nn::Linear<T, D>> language_projection;
  std::shared_ptr<LanguageModel> language_model;

 private:
  static const Blip2Config& checked(const Blip2Config& c, const char* who, const char* text_type) {
    BLIP2_CHECK(c.text_model_type == text_type, ValueError, who, ": config's text model is '", c.text_model_type,
                "', expected '", text_type, "'");
    return c;
  }
};

}  // namespace blip2
