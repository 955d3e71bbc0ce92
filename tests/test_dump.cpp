// The dump pipeline writes every fixture output, matching transformers, for each model kind.
#include <blip2/pipelines/dump.hpp>
#include <cstdio>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

TEST_CASE("dump reproduces the fixtures' outputs") {
  for (const std::string name : {"blip2-opt-tiny", "blip2-itm-tiny", "blip2-opt-generate", "blip2-t5-tiny"}) {
    INFO(name);
    const std::string dir = kFixtures + name + "/", out = "/tmp/blip2_dump_" + std::to_string(::getpid()) + ".safetensors";
    const auto written = dump_outputs(dir + "model", dir + "io.safetensors", out);
    const auto ours = io::SafeTensorsFile::open(out), ref = io::SafeTensorsFile::open(dir + "io.safetensors");
    std::size_t compared = 0;
    for (const auto& n : written) {
      if (!ref.contains(n)) continue;
      if (n == "loss") CHECK(ours.load<float>(n).item() == doctest::Approx(ref.load<float>(n).item()).epsilon(1e-5));
      else check_activation(n, ours.load<float>(n), ref.load<float>(n));
      ++compared;
    }
    CHECK(compared >= 1);
    std::remove(out.c_str());
  }
  CHECK_THROWS_WITH_AS(dump_outputs("/nonexistent", "x", "y"), doctest::Contains("no config.json"), IoError);
  CHECK_THROWS_WITH_AS(dump_outputs(kFixtures + "blip2-opt-tiny/model", kFixtures + "blip2-itm-tiny/io.safetensors", "/tmp/x"),
                       doctest::Contains("no input named 'text_input_ids'"), IoError);
}

namespace {
// Compares every output that the LAVIS fixture also holds: losses to 1e-5 relative, gradients to
// the fixture's gradient tolerance, ids exactly, everything else as activations.
std::size_t compare_with_fixture(const std::string& out, const std::vector<std::string>& written,
                                 const std::vector<std::string>& refs) {
  const auto ours = io::SafeTensorsFile::open(out);
  std::size_t compared = 0;
  for (const auto& n : written)
    for (const auto& path : refs) {
      const auto ref = io::SafeTensorsFile::open(path);
      if (!ref.contains(n)) continue;
      INFO(path << ": " << n);
      if (ref.entry(n).dtype == DType::i64) {
        CHECK(ours.load<std::int64_t>(n).to_vector() == ref.load<std::int64_t>(n).to_vector());
      } else if (n.rfind("loss", 0) == 0) {
        CHECK(ours.load<float>(n).item() == doctest::Approx(ref.load<float>(n).item()).epsilon(1e-5));
      } else if (n.rfind("grad.", 0) == 0) {
        const auto r = ref.load<float>(n).to_vector();
        double scale = 0;
        for (float v : r) scale = std::max(scale, double(std::abs(v)));
        CHECK(max_abs_diff(ours.load<float>(n), ref.load<float>(n)) <= std::max(1e-3 * scale, 1e-6));
      } else {
        check_activation(n, ours.load<float>(n), ref.load<float>(n));
      }
      ++compared;
    }
  return compared;
}
}  // namespace

TEST_CASE("dump --objective reproduces LAVIS's losses and gradients") {
  const std::string data = std::string(BLIP2_TEST_DATA) + "/", out = "/tmp/blip2_dump_objective_" + std::to_string(::getpid()) + ".safetensors";
  SUBCASE("stage 1, injected negatives") {
    const std::string dir = data + "lavis-stage1/";
    const auto written = dump_objective(dir + "model", "stage1", dir + "io.safetensors", out);
    CHECK(compare_with_fixture(out, written, {dir + "io.safetensors", dir + "grads.safetensors"}) == 10 + 127);
  }
  SUBCASE("stage 1, negatives drawn from the seed") {
    // Only the listed inputs are read: without the negatives they are drawn, reproducibly.
    const std::string dir = data + "lavis-stage1/", in = out + ".in";
    const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
    io::save_safetensors(in, {io::TensorRecord::from("pixel_values", io.load<float>("pixel_values")),
                              io::TensorRecord::from("input_ids", io.load<std::int64_t>("input_ids")),
                              io::TensorRecord::from("attention_mask", io.load<std::int64_t>("attention_mask"))});
    dump_objective(dir + "model", "stage1", in, out, 3);
    const auto a = io::SafeTensorsFile::open(out).load<float>("loss").item();
    dump_objective(dir + "model", "stage1", in, out, 3);
    CHECK(io::SafeTensorsFile::open(out).load<float>("loss").item() == a);
    std::remove(in.c_str());
  }
  SUBCASE("stage 2, OPT without and with a prompt") {
    const std::string dir = data + "lavis-stage2-opt/";
    auto written = dump_objective(dir + "model", "stage2", dir + "io.safetensors", out);
    CHECK(compare_with_fixture(out, written, {dir + "io.safetensors", dir + "grads.safetensors"}) == 3 + 91);
    // The prompt case's inputs take the images from io.safetensors.
    const std::string in = out + ".in";
    const auto io = io::SafeTensorsFile::open(dir + "io.safetensors"), prompt = io::SafeTensorsFile::open(dir + "io_prompt.safetensors");
    io::save_safetensors(in, {io::TensorRecord::from("pixel_values", io.load<float>("pixel_values")),
                              io::TensorRecord::from("input_ids", prompt.load<std::int64_t>("input_ids")),
                              io::TensorRecord::from("text_attention_mask", prompt.load<std::int64_t>("text_attention_mask")),
                              io::TensorRecord::from("prompt_length", prompt.load<std::int64_t>("prompt_length"))});
    written = dump_objective(dir + "model", "stage2", in, out);
    CHECK(compare_with_fixture(out, written, {dir + "io_prompt.safetensors", dir + "grads_prompt.safetensors"}) == 3 + 91);
    std::remove(in.c_str());
  }
  SUBCASE("stage 2, Flan-T5") {
    const std::string dir = data + "lavis-stage2-t5/";
    const auto written = dump_objective(dir + "model", "stage2", dir + "io.safetensors", out);
    CHECK(compare_with_fixture(out, written, {dir + "io.safetensors", dir + "grads.safetensors"}) == 3 + 91);
  }
  std::remove(out.c_str());
  CHECK_THROWS_WITH_AS(dump_objective(data + "lavis-stage1/model", "stage3", "x", "y"), doctest::Contains("stage3"), ValueError);
}
