// The BLIP-2 models on the GPU against transformers: the same fixtures and tolerances as the CPU
// parity tests (tests/test_model_*.cpp, tests/test_generate.cpp), with every parameter and input on
// the device. Runs only with a GPU (tests/cuda/main.cu skips otherwise).
#include <doctest/doctest.h>

#include <blip2/blip2.hpp>

#include "../model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

template <class Model>
struct GpuFixture {
  explicit GpuFixture(const std::string& name)
      : dir(kFixtures + name + "/"), config(Blip2Config::load(dir + "model/config.json")), model(config),
        io(io::SafeTensorsFile::open(dir + "io.safetensors")) {
    REQUIRE(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
  }
  Tensor<float, cuda> in(const std::string& n) const { return io.load<float, cuda>(n); }
  Tensor<std::int64_t, cuda> ids(const std::string& n) const { return io.load<std::int64_t, cuda>(n); }
  Tensor<float> ref(const std::string& n) const { return io.load<float>(n); }

  std::string dir;
  Blip2Config config;
  Model model;
  io::SafeTensorsFile io;
};

Tensor<float> host(const Tensor<float, cuda>& t) { return t.to<cpu>(); }

}  // namespace

TEST_CASE("cuda OPT model: forward intermediates and loss match transformers") {
  GpuFixture<Blip2OPT<float, cuda>> f("blip2-opt-tiny");
  NoGrad no_grad;
  const auto out = f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels"));
  check_activation("vision_last_hidden_state", host(out.image.vision.last_hidden_state), f.ref("vision_last_hidden_state"));
  check_activation("vision_pooler_output", host(out.image.vision.pooler_output), f.ref("vision_pooler_output"));
  check_activation("qformer_last_hidden_state", host(out.image.queries), f.ref("qformer_last_hidden_state"));
  check_activation("language_model_inputs", host(out.language_model_inputs), f.ref("language_model_inputs"));
  check_activation("logits", host(out.logits), f.ref("logits"));
  CHECK(host(out.loss).item() == doctest::Approx(f.ref("loss").item()).epsilon(1e-5));
}

TEST_CASE("cuda OPT model: gradients of every parameter match transformers") {
  GpuFixture<Blip2OPT<float, cuda>> f("blip2-opt-tiny");
  f.model.set_requires_grad(true);
  f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels")).loss.backward();
  const auto grads = io::SafeTensorsFile::open(f.dir + "grads.safetensors");
  double largest = 0;
  for (const auto& e : grads.entries())
    for (float v : grads.load<float>(e.name).to_vector()) largest = std::max(largest, double(std::abs(v)));
  std::size_t checked = 0;
  for (const auto& named : f.model.named_parameters()) {  // no structured bindings: doctest captures them
    const std::string& name = named.first;
    const auto& p = named.second;
    const auto ref = grads.load<float>("grad." + name);
    const auto ours = host(p.grad());
    double ref_max = 0, ours_max = 0;
    for (float v : ref.to_vector()) ref_max = std::max(ref_max, double(std::abs(v)));
    for (float v : ours.to_vector()) ours_max = std::max(ours_max, double(std::abs(v)));
    if (ref_max < 1e-6 * largest)  // mathematically zero (key biases): rounding noise on both sides
      CHECK_MESSAGE(ours_max < 1e-6 * largest, name);
    else
      check_gradient(name, ours, ref);
    ++checked;
  }
  CHECK(checked == grads.entries().size());
}

TEST_CASE("cuda OPT model with bf16-stored weights agrees with the CPU") {
  const std::string dir = kFixtures + "blip2-opt-tiny/";
  const auto config = Blip2Config::load(dir + "model/config.json");
  Blip2OPT<float, cuda, bf16> gpu_model(config);
  Blip2OPT<float, cpu, bf16> cpu_model(config);
  REQUIRE(io::load_parameters(gpu_model, io::Checkpoint::open(dir + "model")).empty());
  REQUIRE(io::load_parameters(cpu_model, io::Checkpoint::open(dir + "model")).empty());
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  NoGrad no_grad;
  const auto g = gpu_model(io.load<float, cuda>("pixel_values"), io.load<std::int64_t, cuda>("text_input_ids"),
                           io.load<std::int64_t, cuda>("text_attention_mask"));
  const auto c = cpu_model(io.load<float>("pixel_values"), io.load<std::int64_t>("text_input_ids"),
                           io.load<std::int64_t>("text_attention_mask"));
  check_activation("bf16 logits", host(g.logits), c.logits, 1e-3);
}

TEST_CASE("cuda T5 model: logits and loss match transformers") {
  GpuFixture<Blip2T5<float, cuda>> f("blip2-t5-tiny");
  NoGrad no_grad;
  const auto out = f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels"));
  check_activation("qformer_last_hidden_state", host(out.image.queries), f.ref("qformer_last_hidden_state"));
  check_activation("language_model_inputs", host(out.language_model_inputs), f.ref("language_model_inputs"));
  check_activation("logits", host(out.logits), f.ref("logits"));
  CHECK(host(out.loss).item() == doctest::Approx(f.ref("loss").item()).epsilon(1e-5));
}

TEST_CASE("cuda retrieval model: ITM and ITC match transformers") {
  GpuFixture<Blip2Retrieval<float, cuda>> f("blip2-itm-tiny");
  NoGrad no_grad;
  const auto pixels = f.in("pixel_values");
  const auto ids = f.ids("input_ids");
  const auto mask = f.ids("attention_mask");
  check_activation("itm_logits", host(f.model.itm(pixels, ids, mask)), f.ref("itm_logits"));
  const auto c = f.model.itc(pixels, ids, mask);
  check_activation("itc_logits_per_image", host(c.logits_per_image), f.ref("itc_logits_per_image"));
  check_activation("itc_text_embeds", host(c.text_embeds), f.ref("itc_text_embeds"));
  check_activation("itc_image_embeds", host(c.image_embeds), f.ref("itc_image_embeds"));
}

TEST_CASE("cuda generation: every fixture generate case gives transformers' ids") {
  for (const std::string name : {"blip2-opt-tiny", "blip2-opt-generate"}) {
    GpuFixture<Blip2OPT<float, cuda>> f(name);
    const auto meta = io::read_json_file(f.dir + "meta.json");
    std::size_t cases = 0;
    for (const auto& item : meta["generate"].items()) {
      const std::string case_name = item.key();
      const auto& c = item.value();
      INFO(name << " " << case_name);
      auto o = GenerationOptions::load(f.dir + "model/generation_config.json");
      o.update(c["kwargs"], "meta.json kwargs");
      o.max_new_tokens = c["max_new_tokens"].get<int>();
      const auto out = generate(f.model, f.in("pixel_values"), f.ids("input_ids_with_image_tokens"),
                                f.ids("attention_mask_with_image_tokens"), o);
      CHECK(out.rows() == c["sequences"].get<std::vector<std::vector<std::int64_t>>>());
      ++cases;
    }
    CHECK(cases > 0);
  }
}
