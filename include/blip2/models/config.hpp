#pragma once
// BLIP-2 configuration as Hugging Face's config.json holds it (model_type "blip-2", with nested
// vision_config, qformer_config and text_config of model_type "opt" or "t5"). Keys that are absent
// take transformers' defaults.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>

#include "../core/error.hpp"
#include "../io/json.hpp"

namespace blip2 {

namespace detail {
template <class V>
V json_or(const nlohmann::json& j, const char* key, V fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
    // nlohmann converts any number by a cast: 4e40 (undefined behaviour) or 3.5 (cut to 3) must not pass.
    const bool whole = it->is_number_integer() ||
                       (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>());
    const long double v = it->is_number_unsigned() ? (long double)it->get<std::uint64_t>()
                          : it->is_number_integer() ? (long double)it->get<std::int64_t>()
                          : it->is_number_float()   ? (long double)it->get<double>()
                                                    : 0.0L;
    BLIP2_CHECK(it->is_number() && whole && v >= (long double)std::numeric_limits<V>::lowest() &&
                    v <= (long double)std::numeric_limits<V>::max(),
                IoError, "config: key '", key, "' must be a whole number from ", std::numeric_limits<V>::lowest(), " to ",
                std::numeric_limits<V>::max(), ", got ", it->dump());
    return V(v);
  }
  try {
    return it->get<V>();
  } catch (const nlohmann::json::exception&) {
    throw IoError(std::string("config: key '") + key + "' has the wrong type: " + it->dump());
  }
}

// A size read from a config must lie in [lo, hi]: negative or absurd values would reach allocations.
inline void check_size(const std::string& where, const std::string& key, long long v, long long lo, long long hi) {
  BLIP2_CHECK(v >= lo && v <= hi, IoError, where, ": '", key, "' is ", v, "; expected ", lo, " to ", hi);
}
}  // namespace detail

struct VisionConfig {
  int hidden_size = 1408, intermediate_size = 6144, num_hidden_layers = 39, num_attention_heads = 16;
  int image_size = 224, patch_size = 14;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-6;
  bool qkv_bias = true;

  static VisionConfig from_json(const nlohmann::json& j) {
    VisionConfig c;
    c.hidden_size = detail::json_or(j, "hidden_size", c.hidden_size);
    c.intermediate_size = detail::json_or(j, "intermediate_size", c.intermediate_size);
    c.num_hidden_layers = detail::json_or(j, "num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = detail::json_or(j, "num_attention_heads", c.num_attention_heads);
    c.image_size = detail::json_or(j, "image_size", c.image_size);
    c.patch_size = detail::json_or(j, "patch_size", c.patch_size);
    c.hidden_act = detail::json_or(j, "hidden_act", c.hidden_act);
    c.layer_norm_eps = detail::json_or(j, "layer_norm_eps", c.layer_norm_eps);
    c.qkv_bias = detail::json_or(j, "qkv_bias", c.qkv_bias);
    return c;
  }
  nlohmann::json to_json() const {
    return {{"model_type", "blip_2_vision_model"}, {"hidden_size", hidden_size}, {"intermediate_size", intermediate_size},
            {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
            {"image_size", image_size}, {"patch_size", patch_size}, {"hidden_act", hidden_act},
            {"layer_norm_eps", layer_norm_eps}, {"qkv_bias", qkv_bias}};
  }
};

struct QFormerConfig {
  int vocab_size = 30522, hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12;
  int intermediate_size = 3072, max_position_embeddings = 512, cross_attention_frequency = 2;
  int encoder_hidden_size = 1408, pad_token_id = 0;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12, hidden_dropout_prob = 0.1, attention_probs_dropout_prob = 0.1;
  bool use_qformer_text_input = false;

  static QFormerConfig from_json(const nlohmann::json& j) {
    QFormerConfig c;
    c.vocab_size = detail::json_or(j, "vocab_size", c.vocab_size);
    c.hidden_size = detail::json_or(j, "hidden_size", c.hidden_size);
    c.num_hidden_layers = detail::json_or(j, "num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = detail::json_or(j, "num_attention_heads", c.num_attention_heads);
    c.intermediate_size = detail::json_or(j, "intermediate_size", c.intermediate_size);
    c.max_position_embeddings = detail::json_or(j, "max_position_embeddings", c.max_position_embeddings);
    c.cross_attention_frequency = detail::json_or(j, "cross_attention_frequency", c.cross_attention_frequency);
    c.encoder_hidden_size = detail::json_or(j, "encoder_hidden_size", c.encoder_hidden_size);
    c.pad_token_id = detail::json_or(j, "pad_token_id", c.pad_token_id);
    c.hidden_act = detail::json_or(j, "hidden_act", c.hidden_act);
    c.layer_norm_eps = detail::json_or(j, "layer_norm_eps", c.layer_norm_eps);
    c.hidden_dropout_prob = detail::json_or(j, "hidden_dropout_prob", c.hidden_dropout_prob);
    c.attention_probs_dropout_prob = detail::json_or(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
    c.use_qformer_text_input = detail::json_or(j, "use_qformer_text_input", c.use_qformer_text_input);
    return c;
  }
  nlohmann::json to_json() const {
    return {{"model_type", "blip_2_qformer"}, {"vocab_size", vocab_size}, {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
            {"intermediate_size", intermediate_size}, {"max_position_embeddings", max_position_embeddings},
            {"cross_attention_frequency", cross_attention_frequency}, {"encoder_hidden_size", encoder_hidden_size},
            {"pad_token_id", pad_token_id}, {"hidden_act", hidden_act}, {"layer_norm_eps", layer_norm_eps},
            {"hidden_dropout_prob", hidden_dropout_prob}, {"attention_probs_dropout_prob", attention_probs_dropout_prob},
            {"use_qformer_text_input", use_qformer_text_input}, {"position_embedding_type", "absolute"}};
  }
};

struct OPTConfig {
  int vocab_size = 50272, hidden_size = 768, num_hidden_layers = 12, ffn_dim = 3072, num_attention_heads = 12;
  int max_position_embeddings = 2048, word_embed_proj_dim = 0;  // 0: same as hidden_size
  int pad_token_id = 1, bos_token_id = 2, eos_token_id = 2;
  bool do_layer_norm_before = true, remove_final_layer_norm = false, enable_bias = true;
  bool layer_norm_elementwise_affine = true, tie_word_embeddings = true;
  std::string activation_function = "relu";
  double dropout = 0.1, attention_dropout = 0.0;

  int embed_dim() const { return word_embed_proj_dim ? word_embed_proj_dim : hidden_size; }

  static OPTConfig from_json(const nlohmann::json& j) {
    OPTConfig c;
    c.vocab_size = detail::json_or(j, "vocab_size", c.vocab_size);
    c.hidden_size = detail::json_or(j, "hidden_size", c.hidden_size);
    c.num_hidden_layers = detail::json_or(j, "num_hidden_layers", c.num_hidden_layers);
    c.ffn_dim = detail::json_or(j, "ffn_dim", c.ffn_dim);
    c.num_attention_heads = detail::json_or(j, "num_attention_heads", c.num_attention_heads);
    c.max_position_embeddings = detail::json_or(j, "max_position_embeddings", c.max_position_embeddings);
    c.word_embed_proj_dim = detail::json_or(j, "word_embed_proj_dim", c.hidden_size);
    c.pad_token_id = detail::json_or(j, "pad_token_id", c.pad_token_id);
    c.bos_token_id = detail::json_or(j, "bos_token_id", c.bos_token_id);
    c.eos_token_id = detail::json_or(j, "eos_token_id", c.eos_token_id);
    c.do_layer_norm_before = detail::json_or(j, "do_layer_norm_before", c.do_layer_norm_before);
    c.remove_final_layer_norm = detail::json_or(j, "_remove_final_layer_norm", c.remove_final_layer_norm);
    c.enable_bias = detail::json_or(j, "enable_bias", c.enable_bias);
    c.layer_norm_elementwise_affine = detail::json_or(j, "layer_norm_elementwise_affine", c.layer_norm_elementwise_affine);
    c.tie_word_embeddings = detail::json_or(j, "tie_word_embeddings", c.tie_word_embeddings);
    c.activation_function = detail::json_or(j, "activation_function", c.activation_function);
    c.dropout = detail::json_or(j, "dropout", c.dropout);
    c.attention_dropout = detail::json_or(j, "attention_dropout", c.attention_dropout);
    return c;
  }
  nlohmann::json to_json() const {
    return {{"model_type", "opt"}, {"vocab_size", vocab_size}, {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers}, {"ffn_dim", ffn_dim}, {"num_attention_heads", num_attention_heads},
            {"max_position_embeddings", max_position_embeddings}, {"word_embed_proj_dim", embed_dim()},
            {"pad_token_id", pad_token_id}, {"bos_token_id", bos_token_id}, {"eos_token_id", eos_token_id},
            {"do_layer_norm_before", do_layer_norm_before}, {"_remove_final_layer_norm", remove_final_layer_norm},
            {"enable_bias", enable_bias}, {"layer_norm_elementwise_affine", layer_norm_elementwise_affine},
            {"tie_word_embeddings", tie_word_embeddings}, {"activation_function", activation_function},
            {"dropout", dropout}, {"attention_dropout", attention_dropout}};
  }
};

struct T5Config {
  int vocab_size = 32128, d_model = 512, d_kv = 64, d_ff = 2048, num_layers = 6, num_decoder_layers = 6;
  int num_heads = 8, relative_attention_num_buckets = 32, relative_attention_max_distance = 128;
  int pad_token_id = 0, eos_token_id = 1, decoder_start_token_id = 0;
  double layer_norm_epsilon = 1e-6, dropout_rate = 0.1;
  std::string feed_forward_proj = "relu";  // "relu", "gated-gelu", ...
  bool tie_word_embeddings = true;  // true: the head is shared.weight; false: a separate lm_head.weight
  // Multiply the decoder output by d_model^-0.5 before the head (the original T5's tied head).
  // transformers 5.x saves the flag; older configs imply it from tie_word_embeddings (absent = true).
  bool scale_decoder_outputs = true;

  bool is_gated() const { return feed_forward_proj.rfind("gated-", 0) == 0; }
  // The feed-forward activation: "gated-gelu" means gelu_new (tanh form) unless dense_act_fn names another.
  std::string dense_act_fn;

  static T5Config from_json(const nlohmann::json& j) {
    T5Config c;
    c.vocab_size = detail::json_or(j, "vocab_size", c.vocab_size);
    c.d_model = detail::json_or(j, "d_model", c.d_model);
    c.d_kv = detail::json_or(j, "d_kv", c.d_kv);
    c.d_ff = detail::json_or(j, "d_ff", c.d_ff);
    c.num_layers = detail::json_or(j, "num_layers", c.num_layers);
    c.num_decoder_layers = detail::json_or(j, "num_decoder_layers", c.num_layers);
    c.num_heads = detail::json_or(j, "num_heads", c.num_heads);
    c.relative_attention_num_buckets = detail::json_or(j, "relative_attention_num_buckets", c.relative_attention_num_buckets);
    c.relative_attention_max_distance =
        detail::json_or(j, "relative_attention_max_distance", c.relative_attention_max_distance);
    c.pad_token_id = detail::json_or(j, "pad_token_id", c.pad_token_id);
    c.eos_token_id = detail::json_or(j, "eos_token_id", c.eos_token_id);
    c.decoder_start_token_id = detail::json_or(j, "decoder_start_token_id", c.decoder_start_token_id);
    c.layer_norm_epsilon = detail::json_or(j, "layer_norm_epsilon", c.layer_norm_epsilon);
    c.dropout_rate = detail::json_or(j, "dropout_rate", c.dropout_rate);
    c.feed_forward_proj = detail::json_or(j, "feed_forward_proj", c.feed_forward_proj);
    c.tie_word_embeddings = detail::json_or(j, "tie_word_embeddings", c.tie_word_embeddings);
    c.scale_decoder_outputs = detail::json_or(j, "scale_decoder_outputs", c.tie_word_embeddings);
    const std::string act = c.is_gated() ? c.feed_forward_proj.substr(6) : c.feed_forward_proj;
    c.dense_act_fn = detail::json_or(j, "dense_act_fn", act == "gelu" ? std::string("gelu_new") : act);
    return c;
  }
};

struct Blip2Config {
  VisionConfig vision;
  QFormerConfig qformer;
  std::string text_model_type;  // "opt" or "t5"; empty for the retrieval model without a language model
  OPTConfig opt;
  T5Config t5;
  int num_query_tokens = 32, image_text_hidden_size = 256;
  std::optional<int> image_token_index;
  std::vector<std::string> architectures;
  nlohmann::json text_config_json;  // text_config as read (to_json writes it back unchanged)

  bool is_retrieval() const {
    for (const auto& a : architectures)
      if (a == "Blip2ForImageTextRetrieval") return true;
    return false;
  }

  static Blip2Config from_json(const nlohmann::json& j, const std::string& where = "config.json") {
    BLIP2_CHECK(j.is_object(), IoError, where, ": not a JSON object");
    const std::string type = detail::json_or(j, "model_type", std::string());
    BLIP2_CHECK(type == "blip-2", IoError, where, ": unsupported model_type '", type, "' (expected 'blip-2')");
    Blip2Config c;
    try {
      c.vision = VisionConfig::from_json(j.value("vision_config", nlohmann::json::object()));
      c.qformer = QFormerConfig::from_json(j.value("qformer_config", nlohmann::json::object()));
      c.num_query_tokens = detail::json_or(j, "num_query_tokens", c.num_query_tokens);
      c.image_text_hidden_size = detail::json_or(j, "image_text_hidden_size", c.image_text_hidden_size);
      if (j.contains("image_token_index") && !j["image_token_index"].is_null())
        c.image_token_index = detail::json_or(j, "image_token_index", 0);
      c.architectures = detail::json_or(j, "architectures", std::vector<std::string>{});
      const auto text = j.value("text_config", nlohmann::json::object());
      c.text_config_json = text;
      c.text_model_type = detail::json_or(text, "model_type", std::string(c.is_retrieval() ? "" : "opt"));
      if (c.text_model_type == "opt") c.opt = OPTConfig::from_json(text);
      else if (c.text_model_type == "t5") c.t5 = T5Config::from_json(text);
      else if (!c.is_retrieval())
        throw IoError(where + ": unsupported text_config model_type '" + c.text_model_type + "' (expected opt or t5)");
    } catch (const nlohmann::json::exception& e) {
      throw IoError(where + ": " + e.what());
    } catch (const IoError& e) {  // a key's value, named without the file
      throw IoError(where + ": " + e.what());
    }
    c.check_sizes(where);
    return c;
  }

  // The sizes that shape tensors: positive (layers may be 0) and below limits far above any
  // BLIP-2 (ViT-g 1408 wide, OPT-6.7B 4096, Flan-T5-XXL 4096 with 64 heads and 10240 FFN).
  void check_sizes(const std::string& where) const {
    constexpr long long width = 1 << 16, layers = 1 << 10, vocab = 1 << 26;
    using detail::check_size;
    check_size(where, "num_query_tokens", num_query_tokens, 1, 1 << 12);
    check_size(where, "image_text_hidden_size", image_text_hidden_size, 1, width);
    // A transformer stack's width, feed-forward width (its key), depth and heads.
    auto stack = [&](const std::string& section, int hidden, const char* ffn_key, int ffn, int depth, int heads) {
      check_size(where, section + ".hidden_size", hidden, 1, width);
      check_size(where, section + "." + ffn_key, ffn, 1, 4 * width);
      check_size(where, section + ".num_hidden_layers", depth, 0, layers);
      check_size(where, section + ".num_attention_heads", heads, 1, hidden);
    };
    stack("vision_config", vision.hidden_size, "intermediate_size", vision.intermediate_size, vision.num_hidden_layers,
          vision.num_attention_heads);
    check_size(where, "vision_config.patch_size", vision.patch_size, 1, 1 << 10);
    check_size(where, "vision_config.image_size", vision.image_size, vision.patch_size, 1 << 14);
    stack("qformer_config", qformer.hidden_size, "intermediate_size", qformer.intermediate_size,
          qformer.num_hidden_layers, qformer.num_attention_heads);
    check_size(where, "qformer_config.vocab_size", qformer.vocab_size, 1, vocab);
    check_size(where, "qformer_config.max_position_embeddings", qformer.max_position_embeddings, 1, 1 << 20);
    check_size(where, "qformer_config.cross_attention_frequency", qformer.cross_attention_frequency, 1, layers);
    check_size(where, "qformer_config.encoder_hidden_size", qformer.encoder_hidden_size, 1, width);
    if (text_model_type == "opt") {
      stack("text_config", opt.hidden_size, "ffn_dim", opt.ffn_dim, opt.num_hidden_layers, opt.num_attention_heads);
      check_size(where, "text_config.vocab_size", opt.vocab_size, 1, vocab);
      check_size(where, "text_config.max_position_embeddings", opt.max_position_embeddings, 1, 1 << 20);
      check_size(where, "text_config.word_embed_proj_dim", opt.word_embed_proj_dim, 0, width);
    } else if (text_model_type == "t5") {
      check_size(where, "text_config.d_model", t5.d_model, 1, width);
      check_size(where, "text_config.d_kv", t5.d_kv, 1, width);
      check_size(where, "text_config.d_ff", t5.d_ff, 1, 4 * width);
      check_size(where, "text_config.num_layers", t5.num_layers, 0, layers);
      check_size(where, "text_config.num_decoder_layers", t5.num_decoder_layers, 0, layers);
      check_size(where, "text_config.num_heads", t5.num_heads, 1, 1 << 12);
      check_size(where, "text_config.vocab_size", t5.vocab_size, 1, vocab);
      check_size(where, "text_config.relative_attention_num_buckets", t5.relative_attention_num_buckets, 1, 1 << 16);
    }
  }

  static Blip2Config load(const std::string& path) { return from_json(io::read_json_file(path), path); }

  // Hugging Face's config.json layout (what from_json reads back).
  nlohmann::json to_json() const {
    nlohmann::json j = {{"model_type", "blip-2"},
                        {"architectures", architectures},
                        {"num_query_tokens", num_query_tokens},
                        {"image_text_hidden_size", image_text_hidden_size},
                        {"vision_config", vision.to_json()},
                        {"qformer_config", qformer.to_json()}};
    if (image_token_index) j["image_token_index"] = *image_token_index;
    if (!text_config_json.empty()) j["text_config"] = text_config_json;
    else if (text_model_type == "opt") j["text_config"] = opt.to_json();
    return j;
  }
};

}  // namespace blip2
