#pragma once
// BLIP-2's stage-2 (generative) losses through the frozen language model, as LAVIS's
// Blip2OPT.forward and Blip2T5.forward compute them (lavis/models/blip2_models/blip2_opt.py,
// blip2_t5.py): the projected query outputs are soft visual prompts in front of the text.
//   OPT (decoder-only) language modelling: the caption ids (OPT's BOS first, "\n" appended, right
//     padded) follow the Q prompts; targets are the ids with padding, the first `prompt_length`
//     positions and the Q query positions ignored, so without a prompt the last query position
//     predicts the BOS and that term counts; mean next-token cross-entropy, no smoothing.
//   Flan-T5 (encoder-decoder) prefix language modelling: the encoder reads [Q prompts; prefix ids],
//     the decoder predicts the suffix ids (padding ignored), teacher-forced from them shifted right;
//     exact (erf) GELU in the feed-forward whatever the config says (LAVIS forces it).
// The image encoder is frozen (it records no graph); what trains is set_stage2_trainable()'s.
#include <sstream>

#include "../models/blip2_opt.hpp"
#include "../models/blip2_t5.hpp"

namespace blip2 {

template <class T, class D = cpu>
struct Stage2Output {
  Tensor<T, D> loss;                    // scalar
  Tensor<T, D> image_embeds;            // [B, S, C] post_layernorm (LAVIS ln_vision) output
  Tensor<T, D> query_output;            // [B, Q, H]
  Tensor<T, D> language_model_inputs;   // [B, Q, LM width], the soft visual prompts
  Tensor<T, D> logits;                  // OPT: [B, Q + L, vocab]; T5: decoder [B, L', vocab]
  Tensor<std::int64_t, D> targets;      // OPT: [B, Q + L]; T5: the labels [B, L'] (-100 = ignored)
  Tensor<T, D> encoder_last_hidden_state;  // T5 only: [B, Q + L, d_model]
};

namespace detail {
template <class T, class D, class W, class LM>
void stage2_prompts(const Blip2Generative<T, D, W, LM>& model, const Tensor<T, D>& vit_features, index_t batch,
                    Stage2Output<T, D>& out) {
  BLIP2_CHECK(vit_features.dim() == 3 && vit_features.size(0) == batch, ShapeError, "stage 2: image features ",
              to_string(vit_features.shape()), " do not fit a batch of ", batch, " texts");
  out.image_embeds = (*model.vision_model->post_layernorm)(vit_features);
  out.query_output = model.query_features(out.image_embeds);
  out.language_model_inputs = model.project(out.query_output);
}

template <class D>
void check_text(const Tensor<std::int64_t, D>& ids, const Tensor<std::int64_t, D>& mask, const char* ids_name,
                const char* mask_name) {
  BLIP2_CHECK(ids.dim() == 2 && ids.size(1) > 0 && mask.shape() == ids.shape(), ShapeError, "stage 2: ", ids_name, " ",
              to_string(ids.shape()), " and ", mask_name, " ", to_string(mask.shape()), " must be the same [batch, length > 0]");
}
}  // namespace detail

// LAVIS's OPT targets [B, Q + L] for caption ids [B, L]: -100 at the Q query positions, at the
// padding (pad_id) and at the first prompt_lengths[b] text positions of row b (BOS and prompt;
// LAVIS has one length for the batch, an instruction mix has one per row), else the id.
template <class D>
Tensor<std::int64_t, D> opt_caption_targets(const Tensor<std::int64_t, D>& ids, std::int64_t pad_id,
                                            const std::vector<index_t>& prompt_lengths, index_t queries) {
  const index_t B = ids.size(0), L = ids.size(1);
  BLIP2_CHECK(index_t(prompt_lengths.size()) == B, ShapeError, "stage 2: ", prompt_lengths.size(), " prompt lengths for ",
              B, " captions");
  const auto v = ids.template to<cpu>().to_vector();
  std::vector<std::int64_t> t(std::size_t(B * (queries + L)), -100);
  for (index_t b = 0; b < B; ++b) {
    const index_t p = prompt_lengths[std::size_t(b)];
    BLIP2_CHECK(p >= 0 && p <= L, ValueError, "stage 2: prompt_length ", p, " outside [0, ", L, "] (the caption length)");
    for (index_t i = p; i < L; ++i) {
      const std::int64_t id = v[std::size_t(b * L + i)];
      if (id != pad_id) t[std::size_t(b * (queries + L) + queries + i)] = id;
    }
  }
  return Tensor<std::int64_t, D>::from_vector({B, queries + L}, t);
}

template <class D>
Tensor<std::int64_t, D> opt_caption_targets(const Tensor<std::int64_t, D>& ids, std::int64_t pad_id, index_t prompt_length,
                                            index_t queries) {
  return opt_caption_targets(ids, pad_id, std::vector<index_t>(std::size_t(ids.size(0)), prompt_length), queries);
}

// The OPT stage-2 loss from image features before post_layernorm (VisionModel::encode)
// [B, S, C] and caption ids / attention mask [B, L] as LAVIS tokenizes them, with one prompt
// length per row.
template <class T, class D, class W>
Stage2Output<T, D> stage2_opt_loss_from_features(const Blip2OPT<T, D, W>& model, const Tensor<T, D>& vit_features,
                                                 const Tensor<std::int64_t, D>& input_ids,
                                                 const Tensor<std::int64_t, D>& text_attention_mask,
                                                 const std::vector<index_t>& prompt_lengths) {
  detail::check_text(input_ids, text_attention_mask, "input_ids", "text_attention_mask");
  Stage2Output<T, D> out;
  const index_t B = input_ids.size(0), Q = model.query_tokens.size(1);
  out.targets = opt_caption_targets(input_ids, model.config.opt.pad_token_id, prompt_lengths, Q);
  detail::stage2_prompts(model, vit_features, B, out);
  const auto& lm = *model.language_model;
  const Tensor<T, D> embeds = concat<T, D>({out.language_model_inputs, lm.embed(input_ids)}, 1);
  const auto mask = concat<std::int64_t, D>({Tensor<std::int64_t, D>::ones({B, Q}), text_attention_mask}, 1);
  out.logits = lm(embeds, mask);
  out.loss = Blip2OPT<T, D, W>::causal_lm_loss(out.logits, out.targets);
  return out;
}

// The same with one prompt length for the batch (LAVIS's prompt_length; 0: no prompt).
template <class T, class D, class W>
Stage2Output<T, D> stage2_opt_loss_from_features(const Blip2OPT<T, D, W>& model, const Tensor<T, D>& vit_features,
                                                 const Tensor<std::int64_t, D>& input_ids,
                                                 const Tensor<std::int64_t, D>& text_attention_mask,
                                                 index_t prompt_length = 0) {
  detail::check_text(input_ids, text_attention_mask, "input_ids", "text_attention_mask");
  return stage2_opt_loss_from_features(model, vit_features, input_ids, text_attention_mask,
                                       std::vector<index_t>(std::size_t(input_ids.size(0)), prompt_length));
}

template <class T, class D, class W>
Stage2Output<T, D> stage2_opt_loss(const Blip2OPT<T, D, W>& model, const Tensor<T, D>& pixels,
                                   const Tensor<std::int64_t, D>& input_ids, const Tensor<std::int64_t, D>& text_attention_mask,
                                   index_t prompt_length = 0) {
  return stage2_opt_loss_from_features(model, model.vision_model->encode(pixels), input_ids, text_attention_mask,
                                       prompt_length);
}

// LAVIS's Flan-T5 activation: exact GELU in every feed-forward (Blip2T5.__init__ sets
// dense_act_fn = "gelu" whatever the checkpoint's config says).
template <class T, class D, class W>
void use_lavis_t5_activation(Blip2T5<T, D, W>& model) {
  for (const auto* stack : {model.language_model->encoder.get(), model.language_model->decoder.get()})
    for (const auto& block : stack->blocks) block->feed_forward->act = nn::Activation::gelu;
}

// The Flan-T5 prefix-LM loss from image features before post_layernorm [B, S, C]: prefix ids and
// mask [B, L] (each row ending with </s>), suffix ids and mask [B, L'] (the decoder targets).
template <class T, class D, class W>
Stage2Output<T, D> stage2_t5_loss_from_features(const Blip2T5<T, D, W>& model, const Tensor<T, D>& vit_features,
                                                const Tensor<std::int64_t, D>& input_ids,
                                                const Tensor<std::int64_t, D>& text_attention_mask,
                                                const Tensor<std::int64_t, D>& output_ids,
                                                const Tensor<std::int64_t, D>& decoder_attention_mask) {
  detail::check_text(input_ids, text_attention_mask, "input_ids", "text_attention_mask");
  detail::check_text(output_ids, decoder_attention_mask, "output_ids", "decoder_attention_mask");
  BLIP2_CHECK(output_ids.size(0) == input_ids.size(0), ShapeError, "stage 2: ", output_ids.size(0), " suffixes (output_ids) for ",
              input_ids.size(0), " prefixes (input_ids)");
  Stage2Output<T, D> out;
  const index_t B = input_ids.size(0), Q = model.query_tokens.size(1);
  const auto& lm = *model.language_model;
  auto labels = output_ids.template to<cpu>().to_vector();
  for (auto& id : labels)
    if (id == lm.config.pad_token_id) id = -100;
  out.targets = Tensor<std::int64_t, D>::from_vector(output_ids.shape(), labels);
  const Tensor<std::int64_t, D> decoder_ids = lm.shift_right(out.targets);  // also checks the ids
  detail::stage2_prompts(model, vit_features, B, out);
  const Tensor<T, D> embeds = concat<T, D>({out.language_model_inputs, lm.embed(input_ids)}, 1);
  const auto mask = concat<std::int64_t, D>({Tensor<std::int64_t, D>::ones({B, Q}), text_attention_mask}, 1);
  out.encoder_last_hidden_state = lm.encode(embeds, mask);
  out.logits = lm.decode(decoder_ids, out.encoder_last_hidden_state, mask, nullptr, decoder_attention_mask);
  out.loss = cross_entropy(out.logits, out.targets);
  return out;
}

template <class T, class D, class W>
Stage2Output<T, D> stage2_t5_loss(const Blip2T5<T, D, W>& model, const Tensor<T, D>& pixels,
                                  const Tensor<std::int64_t, D>& input_ids, const Tensor<std::int64_t, D>& text_attention_mask,
                                  const Tensor<std::int64_t, D>& output_ids,
                                  const Tensor<std::int64_t, D>& decoder_attention_mask) {
  return stage2_t5_loss_from_features(model, model.vision_model->encode(pixels), input_ids, text_attention_mask, output_ids,
                                      decoder_attention_mask);
}

// A caption split for the prefix LM: the first `words` words (the encoder's text) and the rest
// (the decoder's target), words separated by whitespace.
struct PrefixSplit {
  std::string prefix, suffix;
};

inline PrefixSplit split_prefix_lm(const std::string& caption, std::size_t words) {
  std::istringstream in(caption);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  BLIP2_CHECK(words >= 1 && words < w.size(), ValueError, "prefix LM: cannot split the ", w.size(), "-word caption '",
              caption.substr(0, 80), "' after ", words, " words (both parts need a word)");
  PrefixSplit out;
  for (std::size_t i = 0; i < w.size(); ++i) (i < words ? out.prefix : out.suffix) += (i == 0 || i == words ? "" : " ") + w[i];
  return out;
}

// BLIP-2's split (LAVIS issue #139): a split point drawn uniformly from the first word to the
// middle of the caption, 1 <= words <= n / 2, from `gen`.
inline PrefixSplit split_prefix_lm(const std::string& caption, Generator& gen) {
  std::istringstream in(caption);
  std::size_t n = 0;
  for (std::string s; in >> s;) ++n;
  BLIP2_CHECK(n >= 2, ValueError, "prefix LM: the caption '", caption.substr(0, 80), "' has ", n,
              " words; a prefix/suffix split needs at least two");
  const std::size_t words = 1 + std::size_t(uniform_below(gen, n / 2));
  return split_prefix_lm(caption, words);
}

}  // namespace blip2
