#pragma once
// The stage-1 (representation learning) model of BLIP-2, LAVIS's Blip2Qformer: the retrieval model
// (Q-Former with text embeddings, query tokens, vision/text projections, ITM head) plus what
// pre-training adds: the image-grounded text generation (ITG) head "cls.predictions.*", whose output
// matrix is tied to the Q-Former word embeddings, and the learnable ITC temperature "temp" (stored
// with shape [1]). A Salesforce/blip2-itm-vit-g checkpoint has neither: the model then runs ITC and
// ITM only and starts from LAVIS's temperature 0.07. The losses are in train/stage1_objectives.hpp.
#include <filesystem>

#include "../io/checkpoint.hpp"
#include "../nn/init.hpp"
#include "blip2_retrieval.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct Blip2Stage1 : Blip2Retrieval<T, D, W> {
  static constexpr double kInitialTemperature = 0.07;  // LAVIS's Blip2Qformer.__init__

  // `itg_head`: build the ITG head (a checkpoint without one loads with it absent).
  explicit Blip2Stage1(const Blip2Config& c, bool itg_head = true) : Blip2Retrieval<T, D, W>(c) {
    // LAVIS resizes the embeddings for [DEC], which drops BERT's padding_idx: the pad row trains.
    this->text_padding_idx = -1;
    temp = this->register_parameter("temp", Tensor<T, D>::full({1}, T(kInitialTemperature)));
    if (itg_head) add_itg_head();
  }

  // Gives a model loaded without the ITG head (e.g. blip2-itm-vit-g) a new one, initialised as BERT's
  // prediction head is (N(0, 0.02) weights, zero biases, unit LayerNorm), to continue stage 1 with ITG.
  void init_itg_head(Generator& gen) {
    BLIP2_CHECK(!has_itg_head(), ValueError, "Blip2Stage1: the model already has an ITG head");
    nn::init_parameters(*add_itg_head(), gen);
    if (this->word_embeddings.impl().requires_grad) set_stage1_trainable();
  }

  bool has_itg_head() const { return itg_dense != nullptr; }

  // The [DEC] id that starts ITG's decoder input: the last Q-Former id (LAVIS appends it to BERT's
  // vocabulary; 30522 in the released 30523-entry checkpoints).
  std::int64_t decoder_bos_id() const { return this->config.qformer.vocab_size - 1; }

  // ITG prediction scores [B, L, vocab] from Q-Former text outputs [B, L, hidden]: dense -> act ->
  // LayerNorm -> word_embeddings^T + bias (BertLMPredictionHead with the tied decoder).
  Tensor<T, D> itg_logits(const Tensor<T, D>& text_hidden) const {
    BLIP2_CHECK(has_itg_head(), ValueError,
                "Blip2Stage1: ITG needs the head cls.predictions.*, which this model's checkpoint does not have");
    const auto act = nn::activation_from_name(this->config.qformer.hidden_act);
    return linear((*itg_norm)(nn::activate(act, (*itg_dense)(text_hidden))), this->word_embeddings, itg_bias);
  }

  // What LAVIS trains in stage 1: everything but the image encoder's blocks and embeddings (its
  // final LayerNorm, LAVIS's ln_vision, trains).
  void set_stage1_trainable() {
    this->set_requires_grad(true);
    this->vision_model->set_requires_grad(false);
    this->vision_model->post_layernorm->set_requires_grad(true);
  }

  // Loads a model directory (config.json + safetensors) in transformers' retrieval layout, with or
  // without the ITG head and temperature; unknown tensors are an IoError naming them.
  static std::unique_ptr<Blip2Stage1> load(const std::string& dir) {
    const auto config_path = std::filesystem::path(dir) / "config.json";
    BLIP2_CHECK(std::filesystem::exists(config_path), IoError, dir, ": no config.json (expected a model directory)");
    const Blip2Config config = Blip2Config::load(config_path.string());
    const auto ckpt = io::Checkpoint::open(dir);
    auto model = std::make_unique<Blip2Stage1>(config, ckpt.contains("cls.predictions.bias"));
    const auto unexpected = io::load_parameters(*model, ckpt, "", {"temp"});
    BLIP2_CHECK(unexpected.empty(), IoError, dir, ": tensors the stage-1 model does not have, e.g. '",
                unexpected.empty() ? std::string() : unexpected.front(), "' (", unexpected.size(), " in all)");
    return model;
  }

  // Writes config.json and model.safetensors into `dir` (created if needed): transformers'
  // Blip2ForImageTextRetrieval names plus cls.predictions.* and temp, which transformers ignores.
  void save(const std::string& dir) const {
    std::filesystem::create_directories(dir);
    Blip2Config c = this->config;
    c.architectures = {"Blip2ForImageTextRetrieval"};
    io::write_json_file((std::filesystem::path(dir) / "config.json").string(), c.to_json());
    io::save_parameters(*this, (std::filesystem::path(dir) / "model.safetensors").string());
  }

  Tensor<T, D> temp;
  std::shared_ptr<nn::Linear<T, D>> itg_dense;
  std::shared_ptr<nn::LayerNorm<T, D>> itg_norm;
  Tensor<T, D> itg_bias;

 private:
  std::shared_ptr<nn::Module<T, D>> add_itg_head() {
    const auto& c = this->config.qformer;
    auto cls = this->register_module("cls", std::make_shared<nn::Module<T, D>>());
    auto predictions = cls->register_module("predictions", std::make_shared<nn::Module<T, D>>());
    auto transform = predictions->register_module("transform", std::make_shared<nn::Module<T, D>>());
    itg_dense = transform->register_module("dense", std::make_shared<nn::Linear<T, D>>(c.hidden_size, c.hidden_size));
    itg_norm = transform->register_module("LayerNorm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size, c.layer_norm_eps));
    itg_bias = predictions->register_parameter("bias", Tensor<T, D>::empty({c.vocab_size}));
    return cls;
  }
};

}  // namespace blip2
