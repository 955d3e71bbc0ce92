// Vision encoder details beyond the fixture's size: position-grid interpolation for other image
// sizes (transformers' interpolate_pos_encoding).
#include <blip2/models/vision.hpp>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

TEST_CASE("bicubic position interpolation") {
  using Emb = VisionEmbeddings<double>;
  // same size: the identity
  const auto same = Emb::bicubic_matrix(5, 5).to_vector();
  for (index_t i = 0; i < 5; ++i)
    for (index_t j = 0; j < 5; ++j) CHECK(same[std::size_t(i * 5 + j)] == doctest::Approx(i == j ? 1.0 : 0.0));
  // every row sums to one, so constant grids stay constant
  for (auto [out, in] : {std::pair<index_t, index_t>{7, 4}, {3, 8}, {26, 16}}) {
    const auto m = Emb::bicubic_matrix(out, in).to_vector();
    for (index_t i = 0; i < out; ++i) {
      double s = 0;
      for (index_t j = 0; j < in; ++j) s += m[std::size_t(i * in + j)];
      CHECK(s == doctest::Approx(1.0));
    }
  }
  // upsampling 2 -> 4 with half-pixel centres: output 1 sits at source 0.25
  const auto up = Emb::bicubic_matrix(4, 2).to_vector();
  const double t = 0.25, A = -0.75;
  const double w1 = ((A + 2) * t - (A + 3)) * t * t + 1, w2 = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1;
  const double w0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  CHECK(up[2] == doctest::Approx(w0 + w1));  // index -1 clamps onto 0
  CHECK(up[3] == doctest::Approx(1 - w0 - w1));
  CHECK(w2 > 0);
}

TEST_CASE("a model runs on other image sizes only with interpolate_pos_encoding") {
  const std::string dir = kFixtures + "blip2-opt-tiny/";
  const auto config = Blip2Config::load(dir + "model/config.json");
  VisionModel<float> vision(config.vision);
  io::load_parameters(vision, io::Checkpoint::open(dir + "model"), "vision_model.");
  Generator g(3);
  const auto pixels = randn<float>({1, 3, 42, 36}, g);  // a 7 x 6 patch grid instead of 5 x 5
  NoGrad no_grad;
  CHECK_THROWS_WITH_AS(vision(pixels), doctest::Contains("interpolate_pos_encoding"), ShapeError);
  const auto out = vision(pixels, true);
  CHECK(out.last_hidden_state.shape() == Shape{1, 43, 32});
  // at the native size interpolation changes nothing
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  check_activation("native size", vision(io.load<float>("pixel_values"), true).last_hidden_state,
                   io.load<float>("vision_last_hidden_state"));
}
