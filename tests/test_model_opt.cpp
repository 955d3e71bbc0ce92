// Blip2ForConditionalGeneration with OPT against transformers: every recorded intermediate, the
// loss, all gradients and two AdamW steps (tests/data/hf-blip2/blip2-opt-tiny).
#include <blip2/models/blip2_opt.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {
// Below this fraction of the model's largest gradient a gradient is rounding noise.
constexpr double kZeroGradient = 1e-6;

double max_abs(const Tensor<float>& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, double(std::abs(v)));
  return m;
}

struct Fixture {
  std::string dir = kFixtures + "blip2-opt-tiny/";
  Blip2Config config = Blip2Config::load(dir + "model/config.json");
  Blip2OPT<float> model{config};
  io::SafeTensorsFile io = io::SafeTensorsFile::open(dir + "io.safetensors");
  Fixture() { CHECK(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty()); }
  Tensor<float> in(const std::string& n) const { return io.load<float>(n); }
  Tensor<std::int64_t> ids(const std::string& n) const { return io.load<std::int64_t>(n); }
};
}  // namespace

TEST_CASE("OPT model: forward intermediates match transformers, incl. the left-padded row") {
  Fixture f;
  NoGrad no_grad;
  for (const bool placeholders : {true, false}) {
    INFO("image placeholder layout: " << placeholders);
    const auto out = placeholders ? f.model(f.in("pixel_values"), f.ids("input_ids_with_image_tokens"),
                                            f.ids("attention_mask_with_image_tokens"))
                                  : f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"),
                                            f.ids("labels"));
    check_activation("vision_last_hidden_state", out.image.vision.last_hidden_state, f.in("vision_last_hidden_state"));
    check_activation("vision_pooler_output", out.image.vision.pooler_output, f.in("vision_pooler_output"));
    check_activation("qformer_last_hidden_state", out.image.queries, f.in("qformer_last_hidden_state"));
    check_activation("language_model_inputs", out.language_model_inputs, f.in("language_model_inputs"));
    check_activation("logits", out.logits, f.in("logits"));
    if (!placeholders) CHECK(out.loss.item() == doctest::Approx(f.in("loss").item()).epsilon(1e-5));
  }
}

TEST_CASE("OPT model: gradients of every parameter and two AdamW steps") {
  Fixture f;
  f.model.set_requires_grad(true);
  const auto loss = f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels")).loss;
  loss.backward();
  const auto grads = io::SafeTensorsFile::open(f.dir + "grads.safetensors");
  double largest = 0;
  for (const auto& e : grads.entries()) largest = std::max(largest, max_abs(grads.load<float>(e.name)));
  std::size_t checked = 0;
  for (const auto& [name, p] : f.model.named_parameters()) {
    const auto ref = grads.load<float>("grad." + name);
    if (max_abs(ref) < kZeroGradient * largest) {
      // Mathematically zero (key biases: softmax ignores a per-row constant); both sides hold
      // only rounding noise, so check that ours is noise too.
      CHECK_MESSAGE(max_abs(p.grad()) < kZeroGradient * largest, name);
    } else {
      check_gradient(name, p.grad(), ref);
    }
    ++checked;
  }
  CHECK(checked == grads.entries().size());

  Fixture g;  // fresh weights: stage-2 training, frozen ViT and OPT
  g.model.set_stage2_trainable();
  CHECK(g.model.vision_model->trainable_parameters().size() == 2);  // post_layernorm (LAVIS's ln_vision) only
  g.model.vision_model->post_layernorm->set_requires_grad(false);    // the fixture's steps kept it frozen
  CHECK(!g.model.language_model->trainable_parameters().size());
  AdamW<float, cpu> opt(g.model.trainable_parameters(), {1e-3, 0.9, 0.999, 1e-8, 0.05});
  const auto steps = io::SafeTensorsFile::open(g.dir + "adamw_steps.safetensors");
  for (int step = 1; step <= 2; ++step) {
    opt.zero_grad();
    const auto l = g.model(g.in("pixel_values"), g.ids("text_input_ids"), g.ids("text_attention_mask"), g.ids("labels")).loss;
    if (step == 2) CHECK(l.item() == doctest::Approx(7.250239372253418).epsilon(1e-5));
    l.backward();
    CHECK(!g.model.vision_model->embeddings->class_embedding.grad().defined());  // frozen: no weight gradient
    double largest = 0;
    for (const auto& p : g.model.trainable_parameters()) largest = std::max(largest, max_abs(p.grad()));
    std::set<std::string> noise_only;  // AdamW normalises rounding noise to full-size steps: skip those
    for (const auto& [name, p] : g.model.named_parameters())
      if (p.grad().defined() && max_abs(p.grad()) < kZeroGradient * largest) noise_only.insert(name);
    CHECK(noise_only.size() == 6);  // the six key biases (4 self-, 2 cross-attention)
    opt.step();
    for (const auto& [name, p] : g.model.named_parameters()) {
      const std::string key = "adamw_step" + std::to_string(step) + "." + name;
      if (!steps.contains(key) || noise_only.count(name)) continue;
      INFO(key);
      const auto a = p.to_vector(), b = steps.load<float>(key).to_vector();
      double diff = 0;
      for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::abs(a[i] - b[i])));
      CHECK(diff <= 1e-5);
    }
  }
}

TEST_CASE("OPT model: bad inputs name what is wrong") {
  Fixture f;
  NoGrad no_grad;
  const auto ids = Tensor<std::int64_t>::from_vector({2, 3}, {1, 200, 3, 4, 5, 6});
  CHECK_THROWS_WITH_AS(f.model(f.in("pixel_values"), ids), doctest::Contains("token id 200"), ValueError);
  const auto few = Tensor<std::int64_t>::from_vector({2, 3}, {127, 127, 3, 4, 5, 6});
  CHECK_THROWS_WITH_AS(f.model(f.in("pixel_values"), few), doctest::Contains("image tokens"), ValueError);
  CHECK_THROWS_AS(f.model(Tensor<float>::zeros({2, 3, 36, 36}), f.ids("text_input_ids")), ShapeError);
  CHECK_THROWS_AS(f.model(f.in("pixel_values"), f.ids("text_input_ids"), Tensor<std::int64_t>::ones({2, 5})), ShapeError);
}

TEST_CASE("checkpoint loading reports missing and misshaped tensors by name") {
  auto config = Blip2Config::load(kFixtures + "blip2-opt-tiny/model/config.json");
  config.opt.ffn_dim = 50;  // the checkpoint holds 48
  Blip2OPT<float> model(config);
  CHECK_THROWS_WITH_AS(io::load_parameters(model, io::Checkpoint::open(kFixtures + "blip2-opt-tiny/model")),
                       doctest::Contains("language_model.model.decoder.layers.0.fc1.weight' has shape [48,32]"), IoError);
  const auto t5 = io::Checkpoint::open(kFixtures + "blip2-t5-tiny/model");
  CHECK_THROWS_WITH_AS(io::load_parameters(model, t5), doctest::Contains("missing tensor 'language_model.model.decoder"),
                       IoError);
  const std::string bad = "/tmp/blip2_bad_config.json";
  std::ofstream(bad) << R"({"model_type": "llava"})";
  CHECK_THROWS_WITH_AS(Blip2Config::load(bad), doctest::Contains("unsupported model_type 'llava'"), IoError);
  std::ofstream(bad) << R"({"model_type": "blip-2", "text_config": {"model_type": "llama"}})";
  CHECK_THROWS_WITH_AS(Blip2Config::load(bad), doctest::Contains("'llama'"), IoError);
  // Integers: a number that does not fit, a fraction, a negative or absurd size are named errors,
  // not undefined conversions or allocations of gigabytes.
  for (const auto& [json, message] : std::vector<std::pair<std::string, std::string>>{
           {R"("num_query_tokens": 4e40)", "key 'num_query_tokens' must be a whole number"},
           {R"("num_query_tokens": 3.5)", "key 'num_query_tokens' must be a whole number"},
           {R"("num_query_tokens": -3)", "'num_query_tokens' is -3; expected 1 to 4096"},
           {R"("num_query_tokens": 1000000000)", "'num_query_tokens' is 1000000000"},
           {R"("vision_config": {"num_hidden_layers": -3})", "'vision_config.num_hidden_layers' is -3"},
           {R"("qformer_config": {"hidden_size": 18446744073709551615})", "key 'hidden_size' must be a whole number"},
           {R"("text_config": {"model_type": "opt", "vocab_size": 0})", "'text_config.vocab_size' is 0"}}) {
    INFO(json);
    std::ofstream(bad) << R"({"model_type": "blip-2", )" << json << "}";
    CHECK_THROWS_WITH_AS(Blip2Config::load(bad), doctest::Contains((bad + ": ").c_str()), IoError);
    CHECK_THROWS_WITH_AS(Blip2Config::load(bad), doctest::Contains(message.c_str()), IoError);
  }
  std::ofstream(bad) << R"({"model_type": "blip-2", "num_query_tokens": 8.0})";
  CHECK(Blip2Config::load(bad).num_query_tokens == 8);  // a whole number written as a float is one
}

TEST_CASE("bf16 and f16 storage of the frozen weights (float32 compute)") {
  Fixture f;
  NoGrad no_grad;
  const auto ref = f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask")).logits;
  Blip2OPT<float, cpu, bf16> half(f.config);
  CHECK(io::load_parameters(half, io::Checkpoint::open(f.dir + "model")).empty());
  std::size_t half_elements = 0;
  for (const auto& [name, w] : half.named_half_weights()) half_elements += std::visit([](const auto& t) { return std::size_t(t.numel()); }, w);
  CHECK(half.weight_bytes() == f.model.weight_bytes() - 2 * half_elements);  // ViT and OPT matrices in 2 bytes
  CHECK(!half.named_half_weights().empty());
  const auto logits = half(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask")).logits;
  check_activation("bf16-weight logits vs float32", logits, ref, 3e-2);  // bf16 keeps 8 bits of mantissa
  Blip2OPT<float, cpu, f16> f16_model(f.config);
  io::load_parameters(f16_model, io::Checkpoint::open(f.dir + "model"));
  check_activation("f16-weight logits vs float32",
                   f16_model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask")).logits, ref, 4e-3);
}

TEST_CASE("stage-2 training with bf16 frozen weights") {
  Fixture f;
  Blip2OPT<float, cpu, bf16> model(f.config);
  io::load_parameters(model, io::Checkpoint::open(f.dir + "model"));
  model.set_stage2_trainable();
  const auto loss = model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels")).loss;
  CHECK(loss.item() == doctest::Approx(f.in("loss").item()).epsilon(2e-2));
  loss.backward();
  const auto grads = io::SafeTensorsFile::open(f.dir + "grads.safetensors");
  // the frozen ViT and OPT run at bf16 precision, so the gradient is close, not equal
  check_gradient("query_tokens", model.query_tokens.grad(), grads.load<float>("grad.query_tokens"), 1e-1);
}

TEST_CASE("sharded checkpoints load through model.safetensors.index.json") {
  namespace fs = std::filesystem;
  Fixture f;
  const fs::path dir = fs::temp_directory_path() / ("blip2_sharded_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto whole = io::SafeTensorsFile::open(f.dir + "model/model.safetensors");
  std::vector<io::TensorRecord> shard[2];
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (std::size_t i = 0; i < whole.entries().size(); ++i) {
    const auto& e = whole.entries()[i];
    shard[i % 2].push_back(io::TensorRecord::from(e.name, whole.load<float>(e.name)));
    index["weight_map"][e.name] = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  io::save_safetensors((dir / "model-00001-of-00002.safetensors").string(), shard[0]);
  io::save_safetensors((dir / "model-00002-of-00002.safetensors").string(), shard[1]);
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  Blip2OPT<float> sharded(f.config);
  CHECK(io::load_parameters(sharded, io::Checkpoint::open(dir.string())).empty());
  NoGrad no_grad;
  check_activation("logits from the sharded checkpoint",
                   sharded(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask")).logits, f.in("logits"));
  index["weight_map"]["query_tokens"] = "missing-shard.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  CHECK_THROWS_WITH_AS(io::Checkpoint::open(dir.string()), doctest::Contains("missing-shard.safetensors"), IoError);
  fs::remove_all(dir);
}
