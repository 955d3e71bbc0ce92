// BLIP-2 pre-training objectives on the GPU against LAVIS: the stage-1 (ITC, ITM, ITG) and stage-2
// (OPT LM, Flan-T5 prefix LM) fixtures of tests/test_stage1.cpp and tests/test_stage2.cpp, with
// every parameter and input on the device, under the fixtures' tolerances. Runs only with a GPU.
#include <doctest/doctest.h>

#include <blip2/blip2.hpp>

#include "../model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

const std::string kData = std::string(BLIP2_TEST_DATA) + "/";

Tensor<float> host(const Tensor<float, cuda>& t) { return t.to<cpu>(); }

void check_loss(const char* what, const Tensor<float, cuda>& ours, const Tensor<float>& ref) {
  const double a = host(ours).item(), b = ref.to_vector()[0];
  CHECK_MESSAGE(std::abs(a - b) <= 1e-5 * std::abs(b), what << ": " << a << " vs LAVIS " << b);
}

}  // namespace

TEST_CASE("cuda stage 1: LAVIS's losses, logits and gradients") {
  const std::string dir = kData + "lavis-stage1/";
  const auto model = Blip2Stage1<float, cuda>::load(dir + "model");
  model->set_stage1_trainable();
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  Stage1Options opt;
  opt.neg_image_idx_per_text = io.load<std::int64_t>("neg_image_idx_per_text").to_vector();
  opt.neg_text_idx_per_image = io.load<std::int64_t>("neg_text_idx_per_image").to_vector();
  const auto o = stage1_losses(*model, io.load<float, cuda>("pixel_values"), io.load<std::int64_t, cuda>("input_ids"),
                               io.load<std::int64_t, cuda>("attention_mask"), opt);
  check_activation("sim_i2t", host(o.sim_i2t), io.load<float>("sim_i2t"));
  check_activation("itm_logits", host(o.itm_logits), io.load<float>("itm_logits"));
  check_activation("itg_logits", host(o.itg_logits), io.load<float>("itg_logits"));
  check_loss("loss_itc", o.loss_itc, io.load<float>("loss_itc"));
  check_loss("loss_itm", o.loss_itm, io.load<float>("loss_itm"));
  check_loss("loss_itg", o.loss_itg, io.load<float>("loss_itg"));
  o.loss.backward();
  check_trained_gradients(*model, dir + "grads.safetensors");
}

TEST_CASE("cuda stage 1: seeded negatives and gradient checkpointing agree with the CPU") {
  const std::string dir = kData + "lavis-stage1/";
  const auto gpu = Blip2Stage1<float, cuda>::load(dir + "model");
  const auto cpu_model = Blip2Stage1<float>::load(dir + "model");
  gpu->set_stage1_trainable();
  gpu->qformer->gradient_checkpointing = true;
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  Generator g1(5), g2(5);
  Stage1Options a, b;
  a.generator = &g1;
  b.generator = &g2;
  const auto on_gpu = stage1_losses(*gpu, io.load<float, cuda>("pixel_values"), io.load<std::int64_t, cuda>("input_ids"),
                                    io.load<std::int64_t, cuda>("attention_mask"), a);
  NoGrad no_grad;
  const auto on_cpu = stage1_losses(*cpu_model, io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids"),
                                    io.load<std::int64_t>("attention_mask"), b);
  CHECK(on_gpu.neg_image_idx_per_text == on_cpu.neg_image_idx_per_text);
  CHECK(on_gpu.neg_text_idx_per_image == on_cpu.neg_text_idx_per_image);
  CHECK(host(on_gpu.loss).item() == doctest::Approx(on_cpu.loss.item()).epsilon(1e-5));
}

TEST_CASE("cuda stage 2: LAVIS's OPT and Flan-T5 losses and gradients") {
  {
    const std::string dir = kData + "lavis-stage2-opt/";
    Blip2OPT<float, cuda> model(Blip2Config::load(dir + "model/config.json"));
    REQUIRE(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
    model.set_stage2_trainable();
    model.language_model->gradient_checkpointing = true;
    const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
    const auto o = stage2_opt_loss(model, io.load<float, cuda>("pixel_values"), io.load<std::int64_t, cuda>("input_ids"),
                                   io.load<std::int64_t, cuda>("text_attention_mask"));
    check_activation("opt logits", host(o.logits), io.load<float>("logits"));
    check_loss("opt loss", o.loss, io.load<float>("loss"));
    o.loss.backward();
    check_trained_gradients(model, dir + "grads.safetensors");
  }
  {
    const std::string dir = kData + "lavis-stage2-t5/";
    Blip2T5<float, cuda> model(Blip2Config::load(dir + "model/config.json"));
    REQUIRE(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
    use_lavis_t5_activation(model);
    model.set_stage2_trainable();
    const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
    const auto o = stage2_t5_loss(model, io.load<float, cuda>("pixel_values"), io.load<std::int64_t, cuda>("input_ids"),
                                  io.load<std::int64_t, cuda>("text_attention_mask"), io.load<std::int64_t, cuda>("output_ids"),
                                  io.load<std::int64_t, cuda>("decoder_attention_mask"));
    check_activation("t5 logits", host(o.logits), io.load<float>("logits"));
    check_loss("t5 loss", o.loss, io.load<float>("loss"));
    o.loss.backward();
    check_trained_gradients(model, dir + "grads.safetensors");
  }
}
