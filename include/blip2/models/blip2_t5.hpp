#pragma once
// Blip2ForConditionalGeneration with a Flan-T5 language model: image -> ViT -> Q-Former ->
// language_projection -> soft visual prompts in front of (or in place of the image tokens within)
// the prompt -> T5 encoder; the T5 decoder reads the encoder output and predicts the target text
// (teacher-forced from labels shifted right, or step by step through T5ForConditionalGeneration's
// decode with a T5DecoderCache). Only query_tokens, the Q-Former and the projection train.
#include <tuple>

#include "blip2_generative.hpp"
#include "t5.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct Blip2T5 : Blip2Generative<T, D, W, T5ForConditionalGeneration<T, D, W>> {
  using Base = Blip2Generative<T, D, W, T5ForConditionalGeneration<T, D, W>>;
  struct Output : Base::Output {                     // logits over the decoder positions [B, L', vocab]
    Tensor<T, D> encoder_last_hidden_state;          // [B, S, d_model], S = Q + prompt length (legacy layout)
    Tensor<std::int64_t, D> encoder_attention_mask;  // [B, S]
  };

  explicit Blip2T5(const Blip2Config& c) : Base(c, "Blip2T5", "t5", c.t5, c.t5.d_model) {}

  // The encoder side for pixels [B, 3, H, W] and the prompt input_ids [B, L] (with or without image
  // placeholders) with attention_mask [B, L] or undefined: fills image, language_model_inputs,
  // encoder_last_hidden_state and encoder_attention_mask.
  Output encode(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& input_ids,
                const Tensor<std::int64_t, D>& attention_mask = {}) const {
    Output out;
    out.image = this->query_image(pixels);
    out.language_model_inputs = this->project(out.image.queries);
    std::tie(out.encoder_last_hidden_state, out.encoder_attention_mask) =
        encode_queries(out.language_model_inputs, input_ids, attention_mask);
    return out;
  }

  // The encoder over projected image queries lm_inputs [B, Q, d_model] and the prompt: its output
  // [B, S, d_model] and attention mask [B, S].
  std::pair<Tensor<T, D>, Tensor<std::int64_t, D>> encode_queries(const Tensor<T, D>& lm_inputs,
                                                                  const Tensor<std::int64_t, D>& input_ids,
                                                                  const Tensor<std::int64_t, D>& attention_mask) const {
    const auto [embeds, mask] = this->merge(lm_inputs, input_ids, attention_mask);
    return {this->language_model->encode(embeds, mask), mask};
  }

  // encode(), then the decoder over decoder_input_ids, or else labels [B, L'] shifted right
  // (decoder_start_token_id first, -100 read as padding). With labels, loss is their mean
  // cross-entropy (positions holding -100 ignored).
  Output operator()(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& input_ids,
                    const Tensor<std::int64_t, D>& attention_mask = {}, const Tensor<std::int64_t, D>& labels = {},
                    const Tensor<std::int64_t, D>& decoder_input_ids = {}) const {
    BLIP2_CHECK(labels.defined() || decoder_input_ids.defined(), ValueError,
                "Blip2T5: the decoder needs labels or decoder_input_ids");
    BLIP2_CHECK(!labels.defined() || (labels.dim() == 2 && input_ids.dim() >= 1 && labels.size(0) == input_ids.size(0)),
                ShapeError, "Blip2T5: labels ", labels.defined() ? to_string(labels.shape()) : std::string("(none)"),
                " do not fit input_ids ", to_string(input_ids.shape()), " (expected [batch, target length])");
    const auto& lm = *this->language_model;
    Tensor<std::int64_t, D> decoder_ids = decoder_input_ids;
    if (labels.defined()) {
      const Tensor<std::int64_t, D> shifted = lm.shift_right(labels);  // also checks the label ids
      if (!decoder_ids.defined()) decoder_ids = shifted;
    }
    Output out = encode(pixels, input_ids, attention_mask);
    out.logits = lm.decode(decoder_ids, out.encoder_last_hidden_state, out.encoder_attention_mask);
    if (labels.defined()) out.loss = cross_entropy(out.logits, labels);
    return out;
  }
};

}  // namespace blip2
