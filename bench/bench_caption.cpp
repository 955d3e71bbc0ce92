// Captioning one 224-pixel image with the blip2-opt-2.7b shapes (random weights): preprocessing,
// vision, Q-Former (+ projection), prefill and decode, for greedy search and beam search with 5
// beams, 30 new tokens each (min_new_tokens = max_new_tokens, so random weights cannot stop early).
// The prompt is what the HF processor builds without text: 32 image placeholders and "</s>".
// One JSON line per search on stdout; the PyTorch peer is bench/torch_caption.py (transformers'
// Blip2ForConditionalGeneration.generate on the same shapes, same keys).
//
//   bench_caption [--image FILE] [--weights f32|bf16] [--threads N] [--tokens N] [--device cpu|cuda]
// With -DBLIP2_CUDA=ON the same source is also built by nvcc as bench_caption_cuda (bench/cuda/),
// which takes --device cuda.
#include <blip2/blip2.hpp>

#include <cstdio>
#include <string>

#include "bench_support.hpp"

using namespace blip2;

namespace {

using bench::Clock;
using bench::seconds_since;

// Waits for the device (a one-element copy to the host) so that the stage times are complete.
template <class D>
void wait_for(const Tensor<float, D>& t) {
  (void)t.reshape({-1}).slice(0, 0, 1).template to<cpu>();
}

template <class D, class W>
int run(const std::string& image, const std::string& weights, int tokens) {
  const Blip2Config config = bench::opt27b_config();
  auto t0 = Clock::now();
  Blip2OPT<float, D, W> model(config);
  Generator gen(0);
  nn::init_parameters(model, gen);
  std::fprintf(stderr, "blip2-opt-2.7b shapes: %.2f B parameters, %.0f MB of weights, initialised in %.1f s\n",
               double(model.parameter_count()) / 1e9, double(model.weight_bytes()) / 1048576.0, seconds_since(t0));
  NoGrad no_grad;
  for (const int beams : {1, 5}) {
    GenerationOptions o = with_model_defaults({}, config);
    o.num_beams = beams;
    o.max_new_tokens = o.min_new_tokens = tokens;
    t0 = Clock::now();
    const auto pixels = image::preprocess(image, config.vision.image_size).template to<D>();
    const double preprocess = seconds_since(t0);
    t0 = Clock::now();
    const auto features = (*model.vision_model)(pixels).last_hidden_state;
    wait_for(features);
    const double vision = seconds_since(t0);
    t0 = Clock::now();
    const auto lm_inputs = model.project(model.query_features(features));
    wait_for(lm_inputs);
    const double qformer = seconds_since(t0);
    const auto out = generate_from_image(model, lm_inputs, Tensor<std::int64_t, D>(), Tensor<std::int64_t, D>(), o);
    const double total = preprocess + vision + qformer + out.prefill_seconds + out.decode_seconds;
    std::printf("{\"name\": \"caption_%s\", \"impl\": \"blip2\", \"device\": \"%s\", \"weights\": \"%s\", \"threads\": %d, "
                "\"new_tokens\": %lld, \"seconds\": %.3f, \"preprocess\": %.3f, \"vision\": %.3f, \"qformer\": %.3f, "
                "\"prefill\": %.3f, \"decode\": %.3f, \"decode_tokens_per_s\": %.3f, \"peak_rss_mb\": %.0f}\n",
                beams == 1 ? "greedy" : "beam5", std::is_same_v<D, cpu> ? "cpu" : "cuda", weights.c_str(), num_threads(),
                (long long)(out.sequences.size(1) - out.prompt_length), total, preprocess, vision, qformer,
                out.prefill_seconds, out.decode_seconds, double(out.decode_steps) / out.decode_seconds, bench::peak_rss_mb());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string image = std::string(BLIP2_SOURCE_DIR) + "/tests/data/images/chelsea.png", weights = "f32";
  int tokens = 30;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--image" && i + 1 < argc) image = argv[++i];
    else if (a == "--weights" && i + 1 < argc) weights = argv[++i];
    else if (a == "--threads" && i + 1 < argc) set_num_threads(std::atoi(argv[++i]));
    else if (a == "--tokens" && i + 1 < argc) tokens = std::atoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_caption [--image FILE] [--weights f32|bf16] [--threads N] [--tokens N] [--device cpu|cuda]\n");
      return 2;
    }
  }
  try {
    BLIP2_CHECK(weights == "f32" || weights == "bf16", ValueError, "--weights must be f32 or bf16");
#if defined(BLIP2_CUDA) && defined(__CUDACC__)
    if (device == "cuda") return weights == "bf16" ? run<cuda, bf16>(image, weights, tokens) : run<cuda, float>(image, weights, tokens);
#endif
    BLIP2_CHECK(device == "cpu", ValueError, "--device ", device, " is not built into this program (cuda: bench_caption_cuda)");
    return weights == "bf16" ? run<cpu, bf16>(image, weights, tokens) : run<cpu, float>(image, weights, tokens);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_caption: %s\n", e.what());
    return 1;
  }
}
