// Blip2ForImageTextRetrieval against transformers: ITM logits and ITC similarities/embeddings
// (tests/data/hf-blip2/blip2-itm-tiny; the last text row has two padding positions).
#include <blip2/models/blip2_retrieval.hpp>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

TEST_CASE("retrieval model: ITM and ITC match transformers") {
  const std::string dir = kFixtures + "blip2-itm-tiny/";
  const auto config = Blip2Config::load(dir + "model/config.json");
  CHECK(config.is_retrieval());
  Blip2Retrieval<float> model(config);
  CHECK(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  const auto pixels = io.load<float>("pixel_values");
  const auto ids = io.load<std::int64_t>("input_ids");
  const auto mask = io.load<std::int64_t>("attention_mask");
  NoGrad no_grad;
  check_activation("itm_logits", model.itm(pixels, ids, mask), io.load<float>("itm_logits"));
  const auto c = model.itc(pixels, ids, mask);
  check_activation("itc_logits_per_image", c.logits_per_image, io.load<float>("itc_logits_per_image"));
  check_activation("itc_logits_per_text", c.logits_per_text, io.load<float>("itc_logits_per_text"));
  check_activation("itc_text_embeds", c.text_embeds, io.load<float>("itc_text_embeds"));
  check_activation("itc_image_embeds", c.image_embeds, io.load<float>("itc_image_embeds"));
  CHECK_THROWS_WITH_AS(model.itm(pixels, Tensor<std::int64_t>::from_vector({3, 1}, {1, 2, 99}), Tensor<std::int64_t>()),
                       doctest::Contains("token id 99"), ValueError);
}

TEST_CASE("retrieval model: ITC and ITM train the Q-Former (stage 1)") {
  const std::string dir = kFixtures + "blip2-itm-tiny/";
  Blip2Retrieval<float> model(Blip2Config::load(dir + "model/config.json"));
  io::load_parameters(model, io::Checkpoint::open(dir + "model"));
  model.vision_model->set_requires_grad(false);
  model.qformer->set_requires_grad(true);
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  const auto c = model.itc(io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids"), io.load<std::int64_t>("attention_mask"));
  const auto targets = arange<std::int64_t>(3);
  const auto loss = cross_entropy(c.logits_per_image * 10.0f, targets) + cross_entropy(c.logits_per_text * 10.0f, targets);
  loss.backward();
  CHECK(model.qformer->layers[0]->attention->query->weight.grad().defined());
  CHECK(!model.vision_model->post_layernorm->weight.grad().defined());
}
