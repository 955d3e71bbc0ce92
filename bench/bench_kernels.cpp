// CPU kernel benchmarks at the BLIP-2 shapes: float32 GEMM (x W^T) and decode GEMV against OpenBLAS
// (when found) and the Eigen path, softmax, layer norm and attention, and a stream triad as the
// memory-bandwidth reference. One JSON line per case on stdout; see bench/README.md.
//
//   bench_kernels [--quick] [--threads N] [--filter SUBSTRING] [--sweep]
#include <blip2/blip2.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(BLIP2_BENCH_OPENBLAS)
#include <cblas.h>
#include <unistd.h>
#endif

using namespace blip2;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  bool quick = false, sweep = false;
  std::vector<int> threads = {1, 2};
  std::string filter;
};
Options opt;

// Fastest timed run of the last median_seconds() call: on a shared machine the median includes time
// other processes took, the best run is close to what the kernel does alone.
double last_best = 0;
// Median CPU time of the calling thread over the same runs. With one thread it is the kernel's own
// time whatever else the machine runs (preemption excluded); reported as cpu_seconds on 1-thread lines.
double last_cpu = 0;

double thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median of `reps` timed runs after `warm` untimed ones; keeps going until min_seconds have been
// spent timing (at least `reps` runs, at most 200).
template <class F>
double median_seconds(F&& f, int warm = 2, int reps = 7, double min_seconds = 0.5) {
  if (opt.quick) reps = 3, min_seconds = 0.05, warm = 1;
  for (int i = 0; i < warm; ++i) f();
  std::vector<double> t, cpu;
  double spent = 0;
  while ((int(t.size()) < reps || spent < min_seconds) && t.size() < 200) {
    const auto a = Clock::now();
    const double c = thread_cpu_now();
    f();
    cpu.push_back(thread_cpu_now() - c);
    const double s = std::chrono::duration<double>(Clock::now() - a).count();
    t.push_back(s);
    spent += s;
  }
  std::sort(t.begin(), t.end());
  last_best = t.front();
  last_cpu = median(cpu);
  return t[t.size() / 2];
}

// OpenBLAS's worker threads spin for about 0.1 s after a call (OpenMP's for a few ms); let them go
// idle before timing another library, or they take one of the two cores from it.
void settle(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Implementations of one case timed round-robin (one run of each per round, with a pause after each)
// so that a change in the machine's load hits them alike; median and best per implementation.
struct Impl {
  Impl(std::string n, std::function<void()> f, int settle = 20, int divisor = 1)
      : name(std::move(n)), run(std::move(f)), settle_ms(settle), rounds_divisor(divisor) {}
  std::string name;
  std::function<void()> run;
  int settle_ms = 20;
  int rounds_divisor = 1;  // a slow reference (Eigen) runs in every n-th round only
  std::vector<double> t, cpu;
};
void compare(std::vector<Impl>& impls, int rounds = 9) {
  if (opt.quick) rounds = 3;
  for (auto& im : impls) {
    im.run();  // warm-up: pack buffers, page faults, thread start
    settle(im.settle_ms);
  }
  for (int r = 0; r < rounds; ++r)
    for (auto& im : impls) {
      if (r % im.rounds_divisor) continue;
      const auto a = Clock::now();
      const double c = thread_cpu_now();
      im.run();
      im.cpu.push_back(thread_cpu_now() - c);
      im.t.push_back(std::chrono::duration<double>(Clock::now() - a).count());
      settle(im.settle_ms);
    }
  for (auto& im : impls) std::sort(im.t.begin(), im.t.end());
}
double median_of(const Impl& im) { return im.t[im.t.size() / 2]; }

void set_threads(int n) {
  set_num_threads(n);
#if defined(BLIP2_BENCH_OPENBLAS)
  openblas_set_num_threads(n);
#endif
}

struct Line {
  std::string text;
  Line(const std::string& name, const std::string& impl, int threads) : threads_(threads) {
    text = "{\"name\": \"" + name + "\", \"impl\": \"" + impl + "\", \"threads\": " + std::to_string(threads);
  }
  Line& num(const char* key, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    text += std::string(", \"") + key + "\": " + buf;
    return *this;
  }
  int threads_ = 0;
  Line& best() {
    num("best_seconds", last_best);
    return threads_ == 1 ? num("cpu_seconds", last_cpu) : *this;
  }
  Line& integer(const char* key, index_t v) {
    text += std::string(", \"") + key + "\": " + std::to_string(v);
    return *this;
  }
  void print() const {
    std::printf("%s}\n", text.c_str());
    std::fflush(stdout);
  }
};

bool wanted(const std::string& name) { return opt.filter.empty() || name.find(opt.filter) != std::string::npos; }

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : v) x = u(rng);
  return v;
}

// a = b + s * c over three arrays larger than the last-level cache; bytes counted as STREAM does.
double triad(int threads) {
  const index_t n = opt.quick ? (index_t(1) << 24) : (index_t(1) << 25);  // 128 MiB per array
  std::vector<float> a(std::size_t(n), 0.0f), b(std::size_t(n), 1.0f), c(std::size_t(n), 2.0f);
  const float s = 3.0f;
  const double sec = median_seconds([&] {
    cpu_kernel::parallel_for(n, 1 << 16, [&](index_t lo, index_t hi) {
      float* pa = a.data();
      const float *pb = b.data(), *pc = c.data();
#pragma omp simd
      for (index_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
  });
  const double gbps = 3.0 * double(n) * 4 / sec / 1e9;
  Line("triad", "blip2", threads).integer("elements", n).num("seconds", sec).best().num("gbps", gbps).print();
  return gbps;
}

// C[M, N] = x[M, K] W[N, K]^T, the Hugging Face linear layout.
void gemm_case(const std::string& name, index_t M, index_t K, index_t N, int threads) {
  if (!wanted(name)) return;
  const auto x = random_vector(std::size_t(M * K), 1), w = random_vector(std::size_t(N * K), 2);
  std::vector<float> c(static_cast<std::size_t>(M * N));
  const double flop = 2.0 * double(M) * double(N) * double(K);
  const double bytes = 4.0 * double(M * K + N * K + M * N);
  auto report = [&](const char* impl, double sec, double ratio) {
    Line l(name, impl, threads);
    l.integer("M", M).integer("K", K).integer("N", N).num("seconds", sec).best().num("gflops", flop / sec / 1e9);
    l.num("gbps", bytes / sec / 1e9);
    if (ratio > 0) l.num("ratio", ratio);
    l.print();
  };
  std::vector<Impl> impls;
  impls.push_back({"blip2", [&] { cpu_kernel::gemm(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, c.data(), N); }});
  impls.push_back({"eigen", [&] {
                     cpu_kernel::gemm_eigen(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, c.data(), N);
                   }, 20, 3});
#if defined(BLIP2_BENCH_OPENBLAS)
  impls.push_back({"openblas", [&] {
                     cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x.data(), int(K),
                                 w.data(), int(K), 0.0f, c.data(), int(N));
                   }, 250});
#endif
  compare(impls, flop > 1e9 ? 9 : 15);
  const double ours = median_of(impls[0]);
  for (const auto& im : impls) {
    last_best = im.t.front();
    last_cpu = median(im.cpu);
    report(im.name.c_str(), median_of(im), im.name == "blip2" ? 0 : median_of(im) / ours);  // ratio: blip2 speed / its
  }
}

// y[N] = W[N, K] x[K] (M = 1 decode). The weights are cycled over copies that together exceed the
// last-level cache, so every run reads them from memory as a real model's weights are.
void gemv_case(const std::string& name, index_t K, index_t N, int threads) {
  if (!wanted(name)) return;
  const double wbytes = 4.0 * double(N) * double(K);
  const int copies = opt.quick ? 1 : std::max(2, int(std::ceil(400e6 / wbytes)));
  std::vector<std::vector<float>> w;
  for (int i = 0; i < copies; ++i) w.push_back(random_vector(std::size_t(N * K), unsigned(10 + i)));
  const auto x = random_vector(std::size_t(K), 3);
  std::vector<float> y(static_cast<std::size_t>(N));
  auto report = [&](const char* impl, double sec, double ratio) {
    Line l(name, impl, threads);
    l.integer("M", 1).integer("K", K).integer("N", N).num("seconds", sec).best().num("gflops", 2.0 * N * K / sec / 1e9);
    l.num("gbps", wbytes / sec / 1e9);
    if (ratio > 0) l.num("ratio", ratio);
    l.print();
  };
  int next = 0;
  auto weights = [&] { return w[std::size_t(next++ % copies)].data(); };
  std::vector<Impl> impls;
  impls.push_back({"blip2", [&] { cpu_kernel::gemm(false, true, 1, N, K, 1.0f, x.data(), K, weights(), K, 0.0f, y.data(), N); }});
#if defined(BLIP2_BENCH_OPENBLAS)
  impls.push_back({"openblas", [&] {
                     cblas_sgemv(CblasRowMajor, CblasNoTrans, int(N), int(K), 1.0f, weights(), int(K), x.data(), 1, 0.0f,
                                 y.data(), 1);
                   }, 250});
#endif
  compare(impls, 11);
  const double ours = median_of(impls[0]);
  for (const auto& im : impls) {
    last_best = im.t.front();
    last_cpu = median(im.cpu);
    report(im.name.c_str(), median_of(im), im.name == "blip2" ? 0 : median_of(im) / ours);
  }
}

void softmax_case(const std::string& name, index_t rows, index_t cols, int threads) {
  if (!wanted(name)) return;
  const auto x = random_vector(std::size_t(rows * cols), 4);
  std::vector<float> y(x.size());
  const double sec = median_seconds([&] { cpu_kernel::softmax(x.data(), y.data(), rows, cols, false); });
  Line(name, "blip2", threads).integer("rows", rows).integer("cols", cols).num("seconds", sec).best()
      .num("gbps", 8.0 * double(rows * cols) / sec / 1e9).print();
}

void layer_norm_case(const std::string& name, index_t rows, index_t cols, int threads) {
  if (!wanted(name)) return;
  const auto x = random_vector(std::size_t(rows * cols), 5), w = random_vector(std::size_t(cols), 6),
             b = random_vector(std::size_t(cols), 7);
  std::vector<float> y(x.size()), mean(static_cast<std::size_t>(rows)), rstd(static_cast<std::size_t>(rows));
  const double sec = median_seconds([&] {
    cpu_kernel::layer_norm(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, cols, 1e-5f);
  });
  Line(name, "blip2", threads).integer("rows", rows).integer("cols", cols).num("seconds", sec).best()
      .num("gbps", 8.0 * double(rows * cols) / sec / 1e9).print();
}

// softmax(q k^T / sqrt(d) [+ causal]) v over [heads, L, d] tensors, through the op (no autograd).
void attention_case(const std::string& name, index_t heads, index_t lq, index_t lk, index_t d, bool causal, int threads) {
  if (!wanted(name)) return;
  Generator g(0);
  const auto q = randn<float>({heads, lq, d}, g), k = randn<float>({heads, lk, d}, g), v = randn<float>({heads, lk, d}, g);
  NoGrad no_grad;
  AttentionOptions ao;
  ao.causal = causal;
  const double sec = median_seconds([&] { (void)scaled_dot_product_attention(q, k, v, Tensor<float>(), ao); });
  const double flop = 4.0 * double(heads * lq * lk * d);
  Line(name, "blip2", threads).integer("heads", heads).integer("Lq", lq).integer("Lk", lk).integer("d", d)
      .num("seconds", sec).best().num("gflops", flop / sec / 1e9).print();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(BLIP2_BENCH_OPENBLAS)
  // A DYNAMIC_ARCH OpenBLAS (Debian's) falls back to its generic "Prescott" (SSE3) kernels on CPUs it
  // cannot name, such as virtualised Sapphire Rapids: 10x slower than it can be. It reads the core
  // type at load time only, so set it and start again (an explicit OPENBLAS_CORETYPE is kept).
  const std::string core = openblas_get_corename();
  if (!std::getenv("OPENBLAS_CORETYPE") && core == "Prescott" &&
      (__builtin_cpu_supports("avx512f") || __builtin_cpu_supports("avx2"))) {
    setenv("OPENBLAS_CORETYPE", __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: go on with the generic kernels
  }
  std::printf("{\"name\": \"config\", \"impl\": \"openblas\", \"core\": \"%s\", \"coretype_env\": \"%s\"}\n",
              openblas_get_corename(), std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "");
#endif
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") opt.quick = true;
    else if (a == "--sweep") opt.sweep = true;
    else if (a == "--threads" && i + 1 < argc) opt.threads = {std::atoi(argv[++i])};
    else if (a == "--filter" && i + 1 < argc) opt.filter = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--threads N] [--filter SUBSTRING] [--sweep]\n", argv[0]);
      return 2;
    }
  }
  for (int t : opt.threads) {
    set_threads(t);
    if (wanted("triad")) triad(t);
    // ViT-g (width 1408, MLP 6144, qkv 4224), Q-Former (768), OPT-2.7B (2560, MLP 10240)
    gemm_case("gemm_vitg_qkv", 257, 1408, 4224, t);
    gemm_case("gemm_vitg_mlp", 257, 1408, 6144, t);
    gemm_case("gemm_qformer", 32, 768, 768, t);
    gemm_case("gemm_opt_prefill_mlp", 64, 2560, 10240, t);
    gemv_case("gemv_opt_decode_mlp", 2560, 10240, t);
    if (opt.sweep)
      for (index_t m : {2, 3, 4, 5, 8, 12, 16})
        gemm_case("gemm_small_m" + std::to_string(m), m, 2560, 10240, t);
    softmax_case("softmax_vitg", 16 * 257, 257, t);
    softmax_case("softmax_opt_prefill", 32 * 42, 42, t);
    softmax_case("softmax_opt_decode", 32, 43, t);
    layer_norm_case("layer_norm_vitg", 257, 1408, t);
    layer_norm_case("layer_norm_opt_prefill", 42, 2560, t);
    layer_norm_case("layer_norm_opt_decode", 1, 2560, t);
    attention_case("attention_vitg", 16, 257, 257, 88, false, t);
    attention_case("attention_opt_prefill", 32, 42, 42, 80, true, t);
    attention_case("attention_opt_decode", 32, 1, 43, 80, false, t);
  }
  return 0;
}
