#pragma once
// `blip2 dump`: runs the model a directory holds on inputs named as in the reference fixtures and
// writes every output under the fixture's names, for side-by-side debugging with transformers.
//   OPT:       pixel_values + input_ids_with_image_tokens/attention_mask_with_image_tokens (or
//              text_input_ids/text_attention_mask), optional labels
//   T5:        pixel_values, text_input_ids, text_attention_mask, labels (decoder targets)
//   retrieval: pixel_values, input_ids, attention_mask
// With an objective (dump_objective), the pre-training losses and the gradient of every trainable
// parameter instead, under the LAVIS fixtures' names (tests/data/lavis-stage1, lavis-stage2-*).
#include "../train/stage1_objectives.hpp"
#include "../train/stage2_objectives.hpp"
#include "model_dir.hpp"

namespace blip2 {

namespace detail {
inline Tensor<std::int64_t> optional_ids(const io::SafeTensorsFile& in, const std::string& name) {
  return in.contains(name) ? in.load<std::int64_t>(name) : Tensor<std::int64_t>();
}
inline Tensor<std::int64_t> required_ids(const io::SafeTensorsFile& in, const std::string& name) {
  BLIP2_CHECK(in.contains(name), IoError, in.path(), ": no input named '", name, "'");
  return in.load<std::int64_t>(name);
}
inline Tensor<float> required_floats(const io::SafeTensorsFile& in, const std::string& name) {
  BLIP2_CHECK(in.contains(name), IoError, in.path(), ": no input named '", name, "'");
  return in.load<float>(name);
}
}  // namespace detail

// Returns the names written, in order.
inline std::vector<std::string> dump_outputs(const std::string& model_dir, const std::string& inputs_path,
                                             const std::string& out_path) {
  const Blip2Config config = load_config(model_dir);
  const auto in = io::SafeTensorsFile::open(inputs_path);
  const Tensor<float> pixels = detail::required_floats(in, "pixel_values");
  std::vector<io::TensorRecord> out;
  auto put = [&out](const std::string& name, const Tensor<float>& t) { out.push_back(io::TensorRecord::from(name, t)); };
  NoGrad no_grad;
  if (config.is_retrieval()) {
    const auto model = load_model<Blip2Retrieval<float>>(model_dir, config);
    const auto ids = detail::required_ids(in, "input_ids");
    const auto mask = detail::optional_ids(in, "attention_mask");
    put("itm_logits", model->itm(pixels, ids, mask));
    const auto c = model->itc(pixels, ids, mask);
    put("itc_logits_per_image", c.logits_per_image);
    put("itc_logits_per_text", c.logits_per_text);
    put("itc_text_embeds", c.text_embeds);
    put("itc_image_embeds", c.image_embeds);
  } else {
    auto put_generative = [&](const auto& r) {
      put("vision_last_hidden_state", r.image.vision.last_hidden_state);
      put("vision_pooler_output", r.image.vision.pooler_output);
      put("qformer_last_hidden_state", r.image.queries);
      put("language_model_inputs", r.language_model_inputs);
      put("logits", r.logits);
      if (r.loss.defined()) put("loss", r.loss.reshape({1}));
    };
    const bool placeholders = in.contains("input_ids_with_image_tokens");
    const auto ids = detail::required_ids(in, placeholders ? "input_ids_with_image_tokens" : "text_input_ids");
    const auto mask = detail::optional_ids(in, placeholders ? "attention_mask_with_image_tokens" : "text_attention_mask");
    const auto labels = detail::optional_ids(in, "labels");
    if (config.text_model_type == "opt") {
      put_generative((*load_model<Blip2OPT<float>>(model_dir, config))(pixels, ids, mask, labels));
    } else {
      BLIP2_CHECK(labels.defined(), IoError, in.path(), ": a T5 model needs 'labels' (the decoder targets)");
      put_generative((*load_model<Blip2T5<float>>(model_dir, config))(pixels, ids, mask, labels));
    }
  }
  io::save_safetensors(out_path, out);
  std::vector<std::string> names;
  for (const auto& r : out) names.push_back(r.name);
  return names;
}

// `blip2 dump --objective`: the stage-1 or stage-2 losses of the model in `model_dir` on inputs named
// as in the LAVIS fixtures, with the gradient of every parameter LAVIS trains ("grad.<name>").
//   stage1 (a retrieval/stage-1 directory): pixel_values, input_ids, attention_mask, optional
//     neg_image_idx_per_text / neg_text_idx_per_image (else drawn from Generator(seed)) ->
//     loss_itc, loss_itm, loss_itg, loss, itm_logits, itg_logits, sim_i2t, the negatives, grad.*
//   stage2, OPT: pixel_values, input_ids, text_attention_mask, optional prompt_length ->
//     loss, logits, targets, grad.*
//   stage2, Flan-T5: pixel_values, input_ids, text_attention_mask, output_ids,
//     decoder_attention_mask -> loss, logits, grad.*
// Returns the names written, in order.
inline std::vector<std::string> dump_objective(const std::string& model_dir, const std::string& objective,
                                               const std::string& inputs_path, const std::string& out_path,
                                               std::uint64_t seed = 0) {
  BLIP2_CHECK(objective == "stage1" || objective == "stage2", ValueError, "dump: unknown objective '", objective,
              "' (stage1 or stage2)");
  const auto in = io::SafeTensorsFile::open(inputs_path);
  const Tensor<float> pixels = detail::required_floats(in, "pixel_values");
  std::vector<io::TensorRecord> out;
  auto put = [&out](const std::string& name, const auto& t) { out.push_back(io::TensorRecord::from(name, t)); };
  auto put_grads = [&](const auto& model) {
    for (const auto& [name, p] : model.named_parameters())
      if (p.impl().requires_grad) put("grad." + name, p.grad().defined() ? p.grad() : Tensor<float>::zeros(p.shape()));
  };
  auto ids_of = [&](const char* name) {
    const auto t = detail::optional_ids(in, name);
    return t.defined() ? t.to_vector() : std::vector<std::int64_t>();
  };
  if (objective == "stage1") {
    const auto model = Blip2Stage1<float>::load(model_dir);
    model->set_stage1_trainable();
    Generator gen(seed);
    Stage1Options opt;
    opt.generator = &gen;
    opt.neg_image_idx_per_text = ids_of("neg_image_idx_per_text");
    opt.neg_text_idx_per_image = ids_of("neg_text_idx_per_image");
    const auto r = stage1_losses(*model, pixels, detail::required_ids(in, "input_ids"),
                                 detail::required_ids(in, "attention_mask"), opt);
    r.loss.backward();
    for (const auto& [name, loss] : {std::pair{"loss_itc", r.loss_itc}, {"loss_itm", r.loss_itm},
                                     {"loss_itg", r.loss_itg}, {"loss", r.loss}})
      put(name, loss.reshape({1}));
    put("itm_logits", r.itm_logits);
    put("itg_logits", r.itg_logits);
    put("sim_i2t", r.sim_i2t);
    put("sim_t2i", r.sim_t2i);
    const index_t B = index_t(r.neg_image_idx_per_text.size());
    put("neg_image_idx_per_text", Tensor<std::int64_t>::from_vector({B}, r.neg_image_idx_per_text));
    put("neg_text_idx_per_image", Tensor<std::int64_t>::from_vector({B}, r.neg_text_idx_per_image));
    put_grads(*model);
  } else {
    const Blip2Config config = load_config(model_dir);
    auto finish = [&](const auto& model, const Stage2Output<float>& r) {
      r.loss.backward();
      put("loss", r.loss.reshape({1}));
      put("logits", r.logits);
      put(config.text_model_type == "opt" ? "targets" : "labels", r.targets);
      put_grads(model);
    };
    const auto ids = detail::required_ids(in, "input_ids"), mask = detail::required_ids(in, "text_attention_mask");
    if (config.text_model_type == "opt") {
      const auto model = load_model<Blip2OPT<float>>(model_dir, config);
      model->set_stage2_trainable();
      const auto prompt = detail::optional_ids(in, "prompt_length");
      BLIP2_CHECK(!prompt.defined() || prompt.numel() == 1, IoError, in.path(), ": prompt_length must hold one number, got ",
                  to_string(prompt.shape()));
      finish(*model, stage2_opt_loss(*model, pixels, ids, mask, prompt.defined() ? index_t(prompt.to_vector()[0]) : 0));
    } else {
      const auto model = load_model<Blip2T5<float>>(model_dir, config);
      use_lavis_t5_activation(*model);
      model->set_stage2_trainable();
      finish(*model, stage2_t5_loss(*model, pixels, ids, mask, detail::required_ids(in, "output_ids"),
                                    detail::required_ids(in, "decoder_attention_mask")));
    }
  }
  io::save_safetensors(out_path, out);
  std::vector<std::string> names;
  for (const auto& r : out) names.push_back(r.name);
  return names;
}

}  // namespace blip2
