#pragma once
// Blip2ForConditionalGeneration with an OPT language model: image -> ViT -> Q-Former ->
// language_projection -> soft visual prompts in front of (or in place of the image tokens within)
// the text -> OPT. Only query_tokens, the Q-Former and the projection train; the ViT and OPT stay
// frozen (they record no weight gradients).
#include "blip2_generative.hpp"
#include "opt.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct Blip2OPT : Blip2Generative<T, D, W, OPTForCausalLM<T, D, W>> {
  using Base = Blip2Generative<T, D, W, OPTForCausalLM<T, D, W>>;
  using Output = typename Base::Output;  // logits over the whole LM input [B, L, vocab]

  explicit Blip2OPT(const Blip2Config& c) : Base(c, "Blip2OPT", "opt", c.opt, c.opt.embed_dim()) {}

  // pixels [B, 3, H, W]; input_ids [B, L] (with or without image placeholders); attention_mask
  // [B, L] or undefined; labels [B, L'] (optional, -100 ignored) score the last L' positions as
  // transformers does (position t predicts t + 1).
  Output operator()(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& input_ids,
                    const Tensor<std::int64_t, D>& attention_mask = {}, const Tensor<std::int64_t, D>& labels = {}) const {
    Output out;
    out.image = this->query_image(pixels);
    out.language_model_inputs = this->project(out.image.queries);
    const auto [embeds, mask] = this->merge(out.language_model_inputs, input_ids, attention_mask);
    out.logits = (*this->language_model)(embeds, mask);
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
};

}  // namespace blip2
