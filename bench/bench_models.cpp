// BLIP-2 model benchmarks at the blip2-opt-2.7b shapes with random weights: ViT-g/14 forward per
// image (batch 1 and 8), Q-Former forward, OPT-2.7B prefill of 42 tokens and per-token decode with
// the KV cache, and peak resident memory. One JSON line per case on stdout; the PyTorch peer is
// bench/torch_models.py (same shapes, same JSON keys).
//
//   bench_models [--part vit|qformer|opt|all|full] [--weights f32|bf16] [--threads N] [--decode-tokens N] [--quick]
// --weights bf16 stores the frozen ViT and OPT matrices as bfloat16 (compute stays float32).
// --part full (not part of all; run it alone so peak_rss_mb is its own): the whole Blip2OPT (ViT-g,
// Q-Former, OPT-2.7B, about 3.8 B parameters) runs one forward pass on an image and 10 text tokens
// (42 LM positions); rss_over_weights is peak resident memory over the model's weight bytes.
#include <blip2/blip2.hpp>

#include <cstdio>
#include <string>

#include "bench_support.hpp"

using namespace blip2;

namespace {

using bench::Clock;
using bench::peak_rss_mb;
using bench::seconds_since;

std::string weights_name = "f32";

void report(const char* name, double seconds, double weight_mb, const std::string& extra = "") {
  std::printf("{\"name\": \"%s\", \"impl\": \"blip2\", \"weights\": \"%s\", \"threads\": %d, \"seconds\": %.4f, "
              "\"weights_mb\": %.0f, \"peak_rss_mb\": %.0f%s}\n",
              name, weights_name.c_str(), num_threads(), seconds, weight_mb, peak_rss_mb(), extra.c_str());
  std::fflush(stdout);
}

// Median of n runs after one warm-up.
template <class F>
double median_of(int n, F&& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto s = Clock::now();
    f();
    t.push_back(seconds_since(s));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <class M>
double weight_mb(const M& m) {
  return double(m.weight_bytes()) / (1024.0 * 1024.0);
}

template <class W>
int run(const std::string& part, int reps, int decode_tokens) {
  const Blip2Config config = bench::opt27b_config();
  Generator gen(0);
  NoGrad no_grad;

  if (part == "vit" || part == "all") {
    VisionModel<float, cpu, W> vit(config.vision);
    nn::init_parameters(vit, gen);
    for (index_t batch : {1, 8}) {
      const auto pixels = randn<float>({batch, 3, 224, 224}, gen);
      const double s = median_of(batch == 1 ? reps : 1, [&] { vit(pixels); });
      report(batch == 1 ? "vit_g_forward_b1" : "vit_g_forward_b8", s / double(batch), weight_mb(vit),
             ", \"batch\": " + std::to_string(batch) + ", \"per\": \"image\"");
    }
  }
  if (part == "qformer" || part == "all") {
    QFormerModel<float> qformer(config.qformer);
    nn::init_parameters(qformer, gen);
    const auto queries = randn<float>({1, 32, 768}, gen), image = randn<float>({1, 257, 1408}, gen);
    const double s = median_of(reps * 3, [&] { qformer(queries, Tensor<std::int64_t>(), image, 32); });
    report("qformer_forward_b1", s, weight_mb(qformer));
  }
  if (part == "full") {
    const auto t0 = Clock::now();
    Blip2OPT<float, cpu, W> model(config);
    nn::init_parameters(model, gen);
    std::fprintf(stderr, "blip2-opt-2.7b: %.1f M parameters initialised in %.1f s\n",
                 double(model.parameter_count()) / 1e6, seconds_since(t0));
    const auto pixels = randn<float>({1, 3, 224, 224}, gen);
    std::vector<std::int64_t> ids(10);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = std::int64_t(100 + i);
    const auto input_ids = Tensor<std::int64_t>::from_vector({1, 10}, ids);
    const double s = median_of(1, [&] { model(pixels, input_ids); });
    const double ratio = peak_rss_mb() / weight_mb(model);
    report("blip2_opt_2.7b_forward", s, weight_mb(model),
           ", \"parameters\": " + std::to_string(model.parameter_count()) + ", \"rss_over_weights\": " +
               std::to_string(ratio).substr(0, 5));
  }
  if (part == "opt" || part == "all") {
    const auto t0 = Clock::now();
    OPTForCausalLM<float, cpu, W> lm(config.opt);
    nn::init_parameters(lm, gen);
    std::fprintf(stderr, "OPT-2.7B: %.1f M parameters initialised in %.1f s\n", double(lm.parameter_count()) / 1e6,
                 seconds_since(t0));
    const index_t prompt = 42;
    const auto embeds = randn<float>({1, prompt, 2560}, gen, 0.0, 0.02);
    const double prefill = median_of(reps, [&] {
      KVCache<float> cache;
      lm(embeds, Tensor<std::int64_t>::ones({1, prompt}), &cache);
    });
    report("opt_2.7b_prefill_42", prefill, weight_mb(lm), ", \"tokens\": 42");
    KVCache<float> cache;
    lm(embeds, Tensor<std::int64_t>::ones({1, prompt}), &cache);
    std::vector<double> steps;
    for (int t = 0; t < decode_tokens; ++t) {
      const auto next = lm.embed(Tensor<std::int64_t>::from_vector({1, 1}, {std::int64_t(100 + t)}));
      const auto s = Clock::now();
      lm(next, Tensor<std::int64_t>::ones({1, prompt + t + 1}), &cache);
      steps.push_back(seconds_since(s));
    }
    std::sort(steps.begin(), steps.end());
    report("opt_2.7b_decode_token", steps[steps.size() / 2], weight_mb(lm),
           ", \"per\": \"token\", \"context\": " + std::to_string(prompt + decode_tokens));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string part = "all";
  int decode_tokens = 8, reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--part" && i + 1 < argc) part = argv[++i];
    else if (a == "--weights" && i + 1 < argc) weights_name = argv[++i];
    else if (a == "--threads" && i + 1 < argc) set_num_threads(std::stoi(argv[++i]));
    else if (a == "--decode-tokens" && i + 1 < argc) decode_tokens = std::stoi(argv[++i]);
    else if (a == "--quick") reps = 1, decode_tokens = 3;
  }
  if (weights_name == "bf16") return run<bf16>(part, reps, decode_tokens);
  if (weights_name != "f32") {
    std::fprintf(stderr, "bench_models: --weights must be f32 or bf16\n");
    return 2;
  }
  return run<float>(part, reps, decode_tokens);
}
