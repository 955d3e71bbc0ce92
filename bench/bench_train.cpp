// BLIP-2 pre-training steps at the real sizes with random weights: one stage-1 step (ITC + ITM + ITG
// on ViT-g/14 features [B, 257, 1408], BERT-base Q-Former with 32 queries, 32 text tokens) and one
// stage-2 step (the same features through the Q-Former and the projection into a frozen OPT-2.7B,
// 24 caption tokens), each zero_grad + forward + backward + AdamW with LAVIS's groups. The ViT's
// blocks are frozen and not run (the features are the input), as in the PyTorch peer
// bench/torch_train.py, which prints the same JSON keys with "impl": "pytorch".
//
//   bench_train [--part stage1|stage2|all] [--threads N] [--batch 4] [--text-len N] [--steps 3]
//               [--layers 32] [--weights f32|bf16] [--checkpointing] [--quick]
// --weights bf16 stores the frozen OPT matrices as bfloat16; --checkpointing recomputes each
// Q-Former and OPT layer in the backward pass; --quick: one timed step and 4 OPT layers.
// --part all runs each part in a child process so that peak_rss_mb is the part's own.
#include <blip2/blip2.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_support.hpp"

using namespace blip2;

namespace {

using bench::Clock;
using bench::peak_rss_mb;
using bench::seconds_since;

struct Args {
  std::string part = "all", weights = "f32";
  int threads = 0, batch = 4, text_len = 0, steps = 3, layers = 32;
  bool checkpointing = false, quick = false;
};

struct Phases {
  double step = 0, forward = 0, backward = 0, optimizer = 0;
};

// Median of each phase over `steps` timed steps after one warm-up step.
template <class Forward, class Optimizer>
Phases time_steps(int steps, Forward&& forward, Optimizer& opt) {
  std::vector<double> s, f, b, o;
  for (int i = 0; i <= steps; ++i) {
    const auto t0 = Clock::now();
    opt.zero_grad();
    const Tensor<float> loss = forward();
    const auto t1 = Clock::now();
    loss.backward();
    const auto t2 = Clock::now();
    opt.step();
    if (i == 0) continue;
    f.push_back(std::chrono::duration<double>(t1 - t0).count());
    b.push_back(std::chrono::duration<double>(t2 - t1).count());
    o.push_back(seconds_since(t2));
    s.push_back(seconds_since(t0));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(s), median(f), median(b), median(o)};
}

template <class M>
double trainable_mb(const M& m) {
  double n = 0;
  for (const auto& p : m.trainable_parameters()) n += double(p.numel()) * sizeof(float);
  return n / (1024.0 * 1024.0);
}

void report(const char* name, const Args& a, index_t text_len, const Phases& p, double trainable, double weights,
            const std::string& extra) {
  std::printf("{\"name\": \"%s\", \"impl\": \"blip2\", \"threads\": %d, \"seconds\": %.4f, \"batch\": %d, \"text_len\": %d, "
              "\"steps\": %d, \"forward_s\": %.4f, \"backward_s\": %.4f, \"optimizer_s\": %.4f, \"trainable_mb\": %.0f, "
              "\"weights_mb\": %.0f, \"peak_rss_mb\": %.0f, \"checkpointing\": %s%s}\n",
              name, num_threads(), p.step, a.batch, int(text_len), a.steps, p.forward, p.backward, p.optimizer, trainable,
              weights, peak_rss_mb(), a.checkpointing ? "true" : "false", extra.c_str());
  std::fflush(stdout);
}

// The shapes both stages share: blip2-opt-2.7b with the ViT's blocks left out (features are the input).
Blip2Config base_config(const Args& a) {
  Blip2Config c = bench::opt27b_config();
  c.vision.num_hidden_layers = 0;
  c.opt.num_hidden_layers = a.layers;
  return c;
}

void stage1(const Args& a) {
  Blip2Config c = bench::stage1_config(base_config(a));
  Generator gen(0);
  Blip2Stage1<float> model(c);
  nn::init_parameters(model, gen);
  copy_(model.temp, Tensor<float>::full({1}, float(Blip2Stage1<float>::kInitialTemperature)));
  model.set_stage1_trainable();
  model.qformer->gradient_checkpointing = a.checkpointing;
  const index_t T = a.text_len ? a.text_len : 32;
  const auto features = randn<float>({a.batch, 257, 1408}, gen);
  const auto [ids, mask] = bench::text_batch(a.batch, T, 101, 102, 1000, 30522, 0, gen);
  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  Generator negatives(1);
  Stage1Options o;
  o.generator = &negatives;
  const Phases p = time_steps(a.steps, [&] { return stage1_losses_from_features(model, features, ids, mask, o).loss; }, opt);
  report("train_stage1", a, T, p, trainable_mb(model), double(model.weight_bytes()) / (1024.0 * 1024.0), "");
}

template <class W>
void stage2(const Args& a) {
  const Blip2Config c = base_config(a);
  Generator gen(0);
  const auto t0 = Clock::now();
  Blip2OPT<float, cpu, W> model(c);
  nn::init_parameters(model, gen);
  std::fprintf(stderr, "stage 2: %.1f M parameters initialised in %.1f s\n", double(model.parameter_count()) / 1e6,
               seconds_since(t0));
  model.set_stage2_trainable();
  model.qformer->gradient_checkpointing = a.checkpointing;
  model.language_model->gradient_checkpointing = a.checkpointing;
  const index_t T = a.text_len ? a.text_len : 24;
  const auto features = randn<float>({a.batch, 257, 1408}, gen);
  const auto [ids, mask] = bench::text_batch(a.batch, T, 2, 50118, 4, 50265, 1, gen);
  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  const Phases p = time_steps(a.steps, [&] { return stage2_opt_loss_from_features(model, features, ids, mask).loss; }, opt);
  report("train_stage2", a, T, p, trainable_mb(model), double(model.weight_bytes()) / (1024.0 * 1024.0),
         ", \"opt_layers\": " + std::to_string(a.layers) + ", \"opt_dtype\": \"" + a.weights + "\"");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string forwarded;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      forwarded += " " + arg + " " + argv[i + 1];
      return argv[++i];
    };
    if (arg == "--part") a.part = argv[++i];
    else if (arg == "--threads") a.threads = std::stoi(value());
    else if (arg == "--batch") a.batch = std::stoi(value());
    else if (arg == "--text-len") a.text_len = std::stoi(value());
    else if (arg == "--steps") a.steps = std::stoi(value());
    else if (arg == "--layers") a.layers = std::stoi(value());
    else if (arg == "--weights") a.weights = value();
    else if (arg == "--checkpointing") a.checkpointing = true, forwarded += " --checkpointing";
    else if (arg == "--quick") a.quick = true, forwarded += " --quick";
    else {
      std::fprintf(stderr, "bench_train: unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  if (a.quick) {
    a.steps = 1;
    a.layers = 4;
  }
  if (a.weights != "f32" && a.weights != "bf16") {
    std::fprintf(stderr, "bench_train: --weights must be f32 or bf16\n");
    return 2;
  }
  if (a.threads > 0) set_num_threads(a.threads);
  if (a.part == "all") {  // each part in its own process: peak RSS is per part
    for (const char* part : {"stage1", "stage2"})
      if (std::system((std::string(argv[0]) + " --part " + part + forwarded).c_str()) != 0) return 1;
    return 0;
  }
  if (a.part == "stage1") stage1(a);
  else if (a.part == "stage2" && a.weights == "f32") stage2<float>(a);
  else if (a.part == "stage2") stage2<bf16>(a);
  else {
    std::fprintf(stderr, "bench_train: --part must be stage1, stage2 or all\n");
    return 2;
  }
  return 0;
}
