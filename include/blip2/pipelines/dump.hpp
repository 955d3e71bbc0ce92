#pragma once
// `blip2 dump`: runs the model a directory holds on inputs named as in the reference fixtures and
// writes every output under the fixture's names, for side-by-side debugging with transformers.
//   OPT:       pixel_values + input_ids_with_image_tokens/attention_mask_with_image_tokens (or
//              text_input_ids/text_attention_mask), optional labels
//   T5:        pixel_values, text_input_ids, text_attention_mask, labels (decoder targets)
//   retrieval: pixel_values, input_ids, attention_mask
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

}  // namespace blip2
