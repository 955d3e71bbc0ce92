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
