// The CPU GEMM (cpu_kernel::gemm / gemm_batched and the kernels behind them) against a float64
// reference: every transpose combination, odd and degenerate sizes, padded leading dimensions,
// alpha / beta, beta = 0 over NaN, batches with shared operands, on one and two threads; and the
// mixed-precision product (Backend<cpu>::gemm_batched_mixed) with bf16 / f16 operands.
#include "support.hpp"

#include <cmath>
#include <limits>
#include <random>

using namespace blip2;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A row-major matrix with leading dimension ld >= cols; the padding holds NaN so that any read of it
// shows up in the results.
struct Mat {
  index_t rows = 0, cols = 0, ld = 0;
  std::vector<float> v;
  Mat(index_t r, index_t c, index_t pad, std::mt19937& rng) : rows(r), cols(c), ld(c + pad) {
    v.assign(std::size_t(std::max<index_t>(1, r * ld)), kNaN);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) v[std::size_t(i * ld + j)] = u(rng);
  }
  float at(index_t i, index_t j) const { return v[std::size_t(i * ld + j)]; }
};

using GemmFn = std::function<void(bool, bool, index_t, index_t, index_t, float, const float*, index_t, const float*,
                                  index_t, float, float*, index_t)>;

// Rounds B's values to what a storage type holds (the mixed-precision products read them in that type).
using Round = float (*)(float);
float keep(float v) { return v; }
template <class H> float round_to(float v) { return float(H(v)); }

// Runs one product through `fn` and checks every element of C, and that C's padding is untouched.
void check_gemm(const GemmFn& fn, bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, float beta,
                index_t pad, std::mt19937& rng, bool nan_c = false, Round round_b = keep) {
  INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K << " alpha=" << alpha
             << " beta=" << beta << " pad=" << pad << " threads=" << num_threads());
  const Mat a = ta ? Mat(K, M, pad, rng) : Mat(M, K, pad, rng);
  Mat b = tb ? Mat(N, K, pad, rng) : Mat(K, N, pad, rng);
  for (float& v : b.v) v = round_b(v);
  Mat c(M, N, pad, rng);
  if (nan_c)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) c.v[std::size_t(i * c.ld + j)] = kNaN;
  const Mat c0 = c;
  fn(ta, tb, M, N, K, alpha, a.v.data(), a.ld, b.v.data(), b.ld, beta, c.v.data(), c.ld);
  // float32 sums of K products: error within about K * eps * sum |terms| (checked with room to spare)
  const double eps = std::numeric_limits<float>::epsilon();
  index_t bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double ref = 0, mag = 0;
      for (index_t k = 0; k < K; ++k) {
        const double p = double(ta ? a.at(k, i) : a.at(i, k)) * double(tb ? b.at(j, k) : b.at(k, j));
        ref += p;
        mag += std::abs(p);
      }
      ref *= alpha;
      mag *= std::abs(alpha);
      if (beta != 0.0f) {
        ref += double(beta) * c0.at(i, j);
        mag += std::abs(double(beta) * c0.at(i, j));
      }
      const double got = c.at(i, j);
      if (!(std::abs(got - ref) <= double(K + 2) * eps * mag + 1e-30)) {
        if (bad++ < 5) FAIL_CHECK("C(" << i << ", " << j << ") = " << got << ", expected " << ref);
      }
    }
  CHECK(bad == 0);
  index_t touched = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = N; j < c.ld; ++j) touched += !std::isnan(c.at(i, j));
  CHECK(touched == 0);
}

const GemmFn kGemm = [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
                        const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  cpu_kernel::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
};

// The packed path whatever the shape (gemm() sends small M or N elsewhere), with a given kernel.
template <class Kern>
GemmFn packed_with() {
  return [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
            const float* B, index_t ldb, float beta, float* C, index_t ldc) {
    cpu_kernel::gemm_detail::gemm_packed<Kern>({ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc});
  };
}

struct AlphaBeta {
  float alpha, beta;
};
const AlphaBeta kScales[] = {{1.0f, 0.0f}, {-1.5f, 0.25f}, {0.5f, 1.0f}, {1.0f, -2.0f}};

// Restores the thread count when a test case ends.
struct Threads {
  int saved = num_threads();
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(saved); }
};

void sweep(const GemmFn& fn, const std::vector<index_t>& mn, const std::vector<index_t>& ks, Round round_b = keep) {
  std::mt19937 rng(42);
  int n = 0;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (index_t M : mn)
        for (index_t N : mn)
          for (index_t K : ks) {
            const AlphaBeta s = kScales[n % 4];
            check_gemm(fn, ta, tb, M, N, K, s.alpha, s.beta, n % 3 == 0 ? 5 : 0, rng, false, round_b);
            ++n;
          }
}

// Float32 A and C, B in H: Backend<cpu>::gemm_batched_mixed on B (values already representable in H,
// padding NaN) stored as H with the same layout.
template <class H>
GemmFn mixed_with() {
  return [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
            const float* B, index_t ldb, float beta, float* C, index_t ldc) {
    std::vector<H> b(std::size_t(std::max<index_t>(1, (tb ? N : K) * ldb)));
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = H(B[i]);
    Backend<cpu>::gemm_batched_mixed(ta, tb, M, N, K, alpha, A, lda, 0, b.data(), ldb, 0, beta, C, ldc, 0, 1);
  };
}

}  // namespace

TEST_CASE("gemm float32: transposes, odd sizes, scales, padded strides; 1 and 2 threads") {
  for (int threads : {1, 2}) {
    Threads t(threads);
    sweep(kGemm, {1, 2, 3, 5, 8, 9, 16, 17, 31, 65, 129}, {1, 3, 17, 31, 65, 257});
  }
}

TEST_CASE("gemm float32: larger than one cache block in every dimension") {
  std::mt19937 rng(7);
  for (int threads : {1, 2}) {
    Threads t(threads);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) check_gemm(kGemm, ta, tb, 1030, 1100, 300, 1.0f, 0.5f, 3, rng);
    check_gemm(kGemm, false, true, 257, 2100, 600, 1.0f, 0.0f, 0, rng, true);
    check_gemm(kGemm, false, true, 1, 4100, 700, 1.0f, 0.0f, 0, rng, true);   // decode GEMV
    check_gemm(kGemm, false, false, 1, 4100, 300, 1.0f, 1.0f, 2, rng);       // x B with B [K, N]
    check_gemm(kGemm, true, false, 3, 600, 513, -1.0f, 0.0f, 1, rng, true);  // small M, transposed A
    check_gemm(kGemm, false, false, 2100, 1, 513, 1.0f, 0.5f, 1, rng);       // small N (A x)
    check_gemm(kGemm, true, true, 600, 3, 129, 2.0f, 0.0f, 4, rng, true);
    check_gemm(kGemm, false, true, 13, 3000, 700, 1.0f, 0.5f, 0, rng);     // several row groups, dot path
    check_gemm(kGemm, false, false, 7, 3000, 300, 1.0f, 0.0f, 3, rng, true);  // several row groups, row sums
    check_gemm(kGemm, false, false, 2000, 14, 200, -1.0f, 1.0f, 1, rng);   // few columns, dot path
  }
}

TEST_CASE("gemm float32: beta = 0 never reads C (NaN stays out), alpha = 0 and K = 0 only scale C") {
  std::mt19937 rng(11);
  for (int threads : {1, 2}) {
    Threads t(threads);
    for (index_t M : {1, 3, 33, 200})
      for (index_t N : {1, 5, 47, 300}) {
        check_gemm(kGemm, false, true, M, N, 129, 1.0f, 0.0f, 2, rng, true);
        check_gemm(kGemm, true, false, M, N, 31, 0.5f, 0.0f, 0, rng, true);
      }
    check_gemm(kGemm, false, false, 40, 50, 0, 1.0f, 0.0f, 1, rng, true);  // K = 0, beta = 0: zeros
    check_gemm(kGemm, false, false, 40, 50, 0, 1.0f, 0.5f, 1, rng);        // K = 0: C *= beta
    check_gemm(kGemm, false, true, 40, 50, 20, 0.0f, 2.0f, 1, rng);        // alpha = 0: C *= beta
    check_gemm(kGemm, true, true, 40, 50, 20, 0.0f, 0.0f, 1, rng, true);
  }
}

TEST_CASE("gemm float32: the packed path and both micro-kernels at every edge") {
  for (int threads : {1, 2}) {
    Threads t(threads);
    sweep(packed_with<cpu_kernel::gemm_detail::DefaultKernel>(), {1, 2, 13, 14, 15, 33, 70}, {1, 16, 19});
    sweep(packed_with<cpu_kernel::gemm_detail::XsimdKernel>(), {1, 5, 6, 7, 31, 33, 70}, {1, 17, 260});
  }
}

TEST_CASE("gemm_batched float32: shared operands (stride 0), across and inside the batch") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int threads : {1, 2}) {
    Threads t(threads);
    struct Case {
      index_t batch, M, N, K;
      bool ta, tb, share_a, share_b;
    };
    for (const Case& cs : {Case{6, 17, 23, 31, false, true, false, false}, Case{5, 33, 40, 9, true, false, true, false},
                           Case{7, 1, 43, 80, false, true, false, false}, Case{3, 1, 80, 43, false, false, false, true},
                           Case{2, 300, 280, 200, false, true, false, true}, Case{1, 65, 70, 129, true, true, false, false}}) {
      INFO("batch=" << cs.batch << " M=" << cs.M << " N=" << cs.N << " K=" << cs.K << " threads=" << threads);
      const index_t lda = (cs.ta ? cs.M : cs.K) + 1, ldb = (cs.tb ? cs.K : cs.N) + 2, ldc = cs.N + 3;
      const index_t sa = cs.share_a ? 0 : (cs.ta ? cs.K : cs.M) * lda;
      const index_t sb = cs.share_b ? 0 : (cs.tb ? cs.N : cs.K) * ldb;
      const index_t sc = cs.M * ldc;
      std::vector<float> A(std::size_t((cs.ta ? cs.K : cs.M) * lda * (cs.share_a ? 1 : cs.batch)));
      std::vector<float> B(std::size_t((cs.tb ? cs.N : cs.K) * ldb * (cs.share_b ? 1 : cs.batch)));
      std::vector<float> C(std::size_t(sc * cs.batch), kNaN);
      for (float& x : A) x = u(rng);
      for (float& x : B) x = u(rng);
      cpu_kernel::gemm_batched(cs.ta, cs.tb, cs.M, cs.N, cs.K, 1.0f, A.data(), lda, sa, B.data(), ldb, sb, 0.0f,
                               C.data(), ldc, sc, cs.batch);
      index_t bad = 0;
      for (index_t z = 0; z < cs.batch; ++z)
        for (index_t i = 0; i < cs.M; ++i)
          for (index_t j = 0; j < cs.N; ++j) {
            double ref = 0, mag = 0;
            for (index_t k = 0; k < cs.K; ++k) {
              const double a = A[std::size_t(z * sa + (cs.ta ? k * lda + i : i * lda + k))];
              const double b = B[std::size_t(z * sb + (cs.tb ? j * ldb + k : k * ldb + j))];
              ref += a * b;
              mag += std::abs(a * b);
            }
            const double got = C[std::size_t(z * sc + i * ldc + j)];
            bad += !(std::abs(got - ref) <= double(cs.K + 2) * 1.2e-7 * mag + 1e-30);
          }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("gemm_batched_mixed: float32 x bf16 / f16 B (small-M kernels and packing read B directly)") {
  for (int threads : {1, 2}) {
    Threads t(threads);
    sweep(mixed_with<bf16>(), {1, 3, 16, 17, 100}, {1, 31, 300}, round_to<bf16>);
    sweep(mixed_with<f16>(), {1, 3, 16, 17, 100}, {1, 31, 300}, round_to<f16>);
    std::mt19937 rng(17);
    // decode GEMV split over threads, W [K, N] row sums, few columns, several cache blocks of the packed path
    check_gemm(mixed_with<bf16>(), false, true, 1, 4100, 700, 1.0f, 0.0f, 0, rng, true, round_to<bf16>);
    check_gemm(mixed_with<f16>(), false, true, 13, 3000, 700, 1.0f, 0.5f, 3, rng, false, round_to<f16>);
    check_gemm(mixed_with<bf16>(), false, false, 7, 3000, 300, 1.0f, 0.0f, 3, rng, true, round_to<bf16>);
    check_gemm(mixed_with<f16>(), true, true, 600, 3, 129, 2.0f, 0.0f, 4, rng, true, round_to<f16>);
    for (int tb = 0; tb < 2; ++tb) {
      check_gemm(mixed_with<bf16>(), false, tb, 300, 1100, 600, 1.0f, 0.5f, 1, rng, false, round_to<bf16>);
      check_gemm(mixed_with<f16>(), true, tb, 1030, 1100, 300, -1.0f, 0.0f, 0, rng, true, round_to<f16>);
    }
  }
}

// The all-half products cuBLAS runs (A and B half, C float32 or half), batched with a shared operand.
template <class H>
void check_all_half(bool half_c) {
  INFO(dtype_name<H> << " half_c=" << half_c);
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const index_t batch = 3, M = 17, N = 33, K = 45, lda = K + 1, ldb = N + 2, ldc = N + 3;
  std::vector<H> A(std::size_t(M * lda)), B(std::size_t(batch * K * ldb)), Ch(std::size_t(batch * M * ldc));
  std::vector<float> C(Ch.size());
  for (H& x : A) x = H(u(rng));
  for (H& x : B) x = H(u(rng));
  for (std::size_t i = 0; i < C.size(); ++i) Ch[i] = H(C[i] = float(H(u(rng))));
  const std::vector<float> C0 = C;
  const float alpha = 1.5f, beta = 0.5f;
  if (half_c)
    Backend<cpu>::gemm_batched_mixed(false, false, M, N, K, alpha, A.data(), lda, 0, B.data(), ldb, K * ldb, beta,
                                     Ch.data(), ldc, M * ldc, batch);
  else
    Backend<cpu>::gemm_batched_mixed(false, false, M, N, K, alpha, A.data(), lda, 0, B.data(), ldb, K * ldb, beta,
                                     C.data(), ldc, M * ldc, batch);
  // float32 accumulation error, plus the rounding of the result to H (half an ulp: 2^-8 bf16, 2^-11 f16)
  const double out_rounding = !half_c ? 0.0 : std::is_same_v<H, bf16> ? 1.0 / 256 : 1.0 / 2048;
  index_t bad = 0;
  for (index_t z = 0; z < batch; ++z)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        double ref = 0, mag = 0;
        for (index_t k = 0; k < K; ++k) {
          const double p = double(float(A[std::size_t(i * lda + k)])) * double(float(B[std::size_t(z * K * ldb + k * ldb + j)]));
          ref += p;
          mag += std::abs(p);
        }
        const std::size_t c = std::size_t(z * M * ldc + i * ldc + j);
        ref = alpha * ref + beta * double(C0[c]);
        mag = alpha * mag + std::abs(beta * double(C0[c]));
        const double got = half_c ? double(float(Ch[c])) : double(C[c]);
        bad += !(std::abs(got - ref) <= out_rounding * std::abs(ref) + double(K + 2) * 1.2e-7 * mag + 1e-30);
      }
  CHECK(bad == 0);
}

TEST_CASE("gemm_batched_mixed: bf16 / f16 A and B, float32 or half C (the CUDA back end's all-half products)") {
  check_all_half<bf16>(false);
  check_all_half<bf16>(true);
  check_all_half<f16>(false);
  check_all_half<f16>(true);
}

TEST_CASE("gemm float64 (Eigen) still follows the same contract") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const index_t M = 9, N = 11, K = 13;
  std::vector<double> A(std::size_t(K * M)), B(std::size_t(N * K)), C(std::size_t(M * N), std::nan(""));
  for (double& x : A) x = u(rng);
  for (double& x : B) x = u(rng);
  cpu_kernel::gemm(true, true, M, N, K, 2.0, A.data(), M, B.data(), K, 0.0, C.data(), N);
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double ref = 0;
      for (index_t k = 0; k < K; ++k) ref += A[std::size_t(k * M + i)] * B[std::size_t(j * K + k)];
      CHECK(C[std::size_t(i * N + j)] == doctest::Approx(2 * ref).epsilon(1e-12));
    }
}

// The float32 softmax row kernel (AVX-512 where available: masked tails, its own exp) against float64,
// at the row lengths attention uses; its cost is measured by bench_kernels with the GEMM's.
TEST_CASE("softmax float32 kernel: tails, masks, fully masked rows, log-softmax; 1 and 2 threads") {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (int threads : {1, 2})
    for (index_t cols : {1, 5, 16, 17, 31, 42, 43, 48, 64, 65, 80, 257, 1000}) {
      Threads t(threads);
      const index_t rows = 37;
      std::vector<float> x(std::size_t(rows * cols));
      for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
          float v = u(rng);
          if (r % 5 == 1 && c % 3 == 0) v = -inf;      // masked entries
          if (r % 5 == 2 && c % 4 == 1) v = -3.4e38f;  // finfo.min style masking
          if (r % 5 == 3) v = -inf;                    // a fully masked row
          if (r % 5 == 4) v *= 20.0f;                  // wide range: exp underflows for many entries
          x[std::size_t(r * cols + c)] = v;
        }
      for (bool log : {false, true}) {
        INFO("cols=" << cols << " log=" << log << " threads=" << threads);
        std::vector<float> y(x.size(), kNaN);
        cpu_kernel::softmax(x.data(), y.data(), rows, cols, log);
        index_t bad = 0;
        for (index_t r = 0; r < rows; ++r) {
          const float* xr = x.data() + r * cols;
          double m = -std::numeric_limits<double>::infinity();
          for (index_t c = 0; c < cols; ++c) m = std::max(m, double(xr[c]));
          double sum = 0;
          for (index_t c = 0; c < cols; ++c) sum += std::exp(double(xr[c]) - m);
          for (index_t c = 0; c < cols; ++c) {
            const double got = y[std::size_t(r * cols + c)];
            if (!(m > -1e30)) {  // fully masked: zeros
              bad += got != 0.0;
              continue;
            }
            if (log) {
              const double ref = double(xr[c]) - m - std::log(sum);
              bad += !(std::isinf(ref) ? got == ref : std::abs(got - ref) <= 1e-5 * std::max(1.0, std::abs(ref)));
            } else {
              const double ref = std::exp(double(xr[c]) - m) / sum;
              if (xr[c] <= -1e30f) {  // masked entries are exactly 0
                bad += got != 0.0;
                continue;
              }
              // x - m is rounded to float first: a relative error of about |x - m| * eps in exp
              const double d = std::abs(double(xr[c]) - m);
              bad += !(std::abs(got - ref) <= (8 + 2 * d) * 1.2e-7 * ref + 1e-37);
            }
          }
        }
        CHECK(bad == 0);
      }
    }
}

// Layer norm / RMS norm float32 kernels (four-accumulator row reductions) against float64.
TEST_CASE("layer_norm and rms_norm float32 kernels against float64") {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-2.0f, 3.0f);
  for (int threads : {1, 2})
    for (index_t cols : {1, 7, 16, 63, 64, 65, 1408, 2560}) {
      Threads t(threads);
      INFO("cols=" << cols << " threads=" << threads);
      const index_t rows = 9;
      const auto n = [](index_t k) { return static_cast<std::size_t>(k); };
      std::vector<float> x(n(rows * cols)), w(n(cols)), b(n(cols));
      for (float& v : x) v = u(rng);
      for (float& v : w) v = u(rng);
      for (float& v : b) v = u(rng);
      std::vector<float> y(x.size()), mean(n(rows)), rstd(n(rows)), yr(x.size()), rr(n(rows));
      cpu_kernel::layer_norm(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, cols, 1e-5f);
      cpu_kernel::rms_norm(x.data(), w.data(), yr.data(), rr.data(), rows, cols, 1e-6f);
      index_t bad = 0;
      for (index_t r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * cols;
        double mu = 0, ms = 0;
        for (index_t c = 0; c < cols; ++c) mu += xr[c], ms += double(xr[c]) * xr[c];
        mu /= double(cols);
        double var = 0;
        for (index_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
        const double rs = 1 / std::sqrt(var / double(cols) + 1e-5), rms = 1 / std::sqrt(ms / double(cols) + 1e-6);
        bad += !(std::abs(mean[std::size_t(r)] - mu) <= 1e-5 * (1 + std::abs(mu)));
        bad += !(std::abs(rstd[std::size_t(r)] - rs) <= 1e-4 * rs);
        for (index_t c = 0; c < cols; ++c) {
          const double ref = (xr[c] - mu) * rs * w[std::size_t(c)] + b[std::size_t(c)];
          const double refr = xr[c] * rms * w[std::size_t(c)];
          bad += !(std::abs(y[std::size_t(r * cols + c)] - ref) <= 1e-4 * (1 + std::abs(ref)));
          bad += !(std::abs(yr[std::size_t(r * cols + c)] - refr) <= 1e-4 * (1 + std::abs(refr)));
        }
      }
      CHECK(bad == 0);
    }
}
