// The program every consumer project in tests/consumers/ builds: a few ops, a backward pass checked
// against hand-written loops, an error type, and a short AdamW run. Returns non-zero on any failure.
// BLIP2_CONSUMER names the integration path; BLIP2_EXPECT_SINGLE_INCLUDE asks that the amalgamated
// single_include/blip2/blip2.hpp was the header found, not include/blip2/blip2.hpp.
#include <blip2/blip2.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

#ifndef BLIP2_CONSUMER
#define BLIP2_CONSUMER "unnamed"
#endif
#if defined(BLIP2_EXPECT_SINGLE_INCLUDE) && !defined(BLIP2_SINGLE_INCLUDE)
#error "expected the amalgamated single_include/blip2/blip2.hpp, but another blip2/blip2.hpp was included"
#endif
#if !defined(BLIP2_EXPECT_SINGLE_INCLUDE) && defined(BLIP2_SINGLE_INCLUDE)
#error "expected include/blip2/blip2.hpp through the blip2::blip2 target, but the single header was included"
#endif

namespace {
int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "[%s] FAILED: %s\n", BLIP2_CONSUMER, what);
    ++failures;
  }
}

bool close(double a, double b, double tol = 1e-4) { return std::abs(a - b) <= tol * (1 + std::abs(b)); }
}  // namespace

int main() {
  using namespace blip2;
  try {
    // loss = sum((x W^T)^2), so dloss/dW = 2 y^T x with y = x W^T.
    const std::vector<float> xv = {1, 2, 3, 4, 5, 6};       // [2, 3]
    const std::vector<float> wv = {0.5f, -1, 2, 1, 0, -0.5f};  // [2, 3], [out, in]
    auto x = Tensor<float>::from_vector({2, 3}, xv);
    auto w = Tensor<float>::from_vector({2, 3}, wv);
    w.requires_grad_();
    auto y = linear(x, w);
    auto loss = sum(square(y));
    loss.backward();

    double want_y[2][2] = {}, want_loss = 0, want_grad[2][3] = {};
    for (int n = 0; n < 2; ++n)
      for (int o = 0; o < 2; ++o) {
        for (int i = 0; i < 3; ++i) want_y[n][o] += xv[n * 3 + i] * wv[o * 3 + i];
        want_loss += want_y[n][o] * want_y[n][o];
      }
    for (int o = 0; o < 2; ++o)
      for (int i = 0; i < 3; ++i)
        for (int n = 0; n < 2; ++n) want_grad[o][i] += 2 * want_y[n][o] * xv[n * 3 + i];

    const auto yv = y.to_vector();
    for (int k = 0; k < 4; ++k) check(close(yv[k], want_y[k / 2][k % 2]), "linear forward");
    check(close(loss.item(), want_loss), "sum(square(.)) forward");
    check(w.grad().defined(), "gradient reached the weight");
    if (w.grad().defined()) {
      const auto g = w.grad().to_vector();
      for (int k = 0; k < 6; ++k) check(close(g[k], want_grad[k / 3][k % 3]), "backward through linear");
    }

    // softmax rows sum to one; matmul agrees with linear.
    const auto p = softmax(x).to_vector();
    check(close(p[0] + p[1] + p[2], 1.0) && close(p[3] + p[4] + p[5], 1.0), "softmax rows sum to 1");
    const auto m = matmul(x, w.detach().transpose(0, 1)).to_vector();
    for (int k = 0; k < 4; ++k) check(close(m[k], yv[k]), "matmul == linear");

    // Shape errors are typed and name the op.
    bool threw = false;
    try {
      matmul(x, x);
    } catch (const ShapeError&) {
      threw = true;
    }
    check(threw, "matmul of [2,3] by [2,3] throws ShapeError");

    // A few AdamW steps lower the loss.
    AdamW<float, cpu> opt({w}, {5e-2});
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      auto l = sum(square(linear(x, w)));
      l.backward();
      opt.step();
      (step == 0 ? first : last) = l.item();
    }
    check(last < first, "AdamW lowers the loss");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[%s] FAILED: exception: %s\n", BLIP2_CONSUMER, e.what());
    return 1;
  }
  if (failures) return 1;
  std::printf("[%s] blip2 %d.%d.%d consumer: ok\n", BLIP2_CONSUMER, BLIP2_VERSION_MAJOR, BLIP2_VERSION_MINOR,
              BLIP2_VERSION_PATCH);
  return 0;
}
