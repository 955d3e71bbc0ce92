// Optimizers, schedule and clipping against their textbook definitions.
#include "support.hpp"

using namespace blip2;

TEST_CASE("AdamW matches the torch.optim.AdamW update") {
  const std::vector<double> p0{0.5, -1.0, 2.0}, grads1{0.1, -0.2, 0.3}, grads2{-0.05, 0.4, 0.0};
  auto p = Tensor<double>::from_vector({3}, p0).requires_grad_();
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
  AdamW<double, cpu> opt({p}, {lr, b1, b2, eps, wd});
  std::vector<double> ref = p0, m(3, 0), v(3, 0);
  int step = 0;
  for (const auto& gv : {grads1, grads2}) {
    p.zero_grad();
    sum(p * Tensor<double>::from_vector({3}, gv)).backward();
    opt.step();
    ++step;
    for (std::size_t i = 0; i < 3; ++i) {
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * gv[i];
      v[i] = b2 * v[i] + (1 - b2) * gv[i] * gv[i];
      const double mh = m[i] / (1 - std::pow(b1, step)), vh = v[i] / (1 - std::pow(b2, step));
      ref[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
    for (std::size_t i = 0; i < 3; ++i) CHECK(p.to_vector()[i] == doctest::Approx(ref[i]).epsilon(1e-12));
  }
  CHECK(opt.steps() == 2);
}

TEST_CASE("SGD with momentum and weight decay") {
  auto p = Tensor<double>::from_vector({2}, {1.0, -1.0}).requires_grad_();
  SGD<double, cpu> opt({p}, {0.1, 0.9, 0.0, 0.01, false});
  double ref0 = 1.0, buf = 0;
  for (int s = 0; s < 3; ++s) {
    p.zero_grad();
    sum(p * p).backward();  // grad 2p
    opt.step();
    const double d = 2 * ref0 + 0.01 * ref0;
    buf = s == 0 ? d : 0.9 * buf + d;
    ref0 -= 0.1 * buf;
    CHECK(p.to_vector()[0] == doctest::Approx(ref0).epsilon(1e-12));
  }
}

TEST_CASE("cosine schedule with warm-up") {
  CosineSchedule s{1.0, 10, 110, 0.1};
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(5) == doctest::Approx(0.5));
  CHECK(s.lr(10) == doctest::Approx(1.0));
  CHECK(s.lr(60) == doctest::Approx(0.55));
  CHECK(s.lr(110) == doctest::Approx(0.1));
  CHECK(s.lr(500) == doctest::Approx(0.1));
}

TEST_CASE("global-norm gradient clipping") {
  auto a = Tensor<double>::from_vector({2}, {1, 1}).requires_grad_();
  auto b = Tensor<double>::from_vector({1}, {1}).requires_grad_();
  sum(a * Tensor<double>::from_vector({2}, {3, 0})).backward();
  sum(b * 4.0).backward();
  const double total = clip_grad_norm<double, cpu>({a, b}, 1.0);
  CHECK(total == doctest::Approx(5.0));
  CHECK(a.grad().to_vector()[0] == doctest::Approx(3.0 / 5.0).epsilon(1e-5));
  CHECK(b.grad().to_vector()[0] == doctest::Approx(4.0 / 5.0).epsilon(1e-5));
  CHECK(clip_grad_norm<double, cpu>({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // below the limit: unchanged
}

TEST_CASE("a module trains: loss falls on a learnable problem") {
  Generator g(0);
  nn::Linear<float> layer(4, 1, g);
  auto x = randn<float>({64, 4}, g);
  auto w_true = Tensor<float>::from_vector({1, 4}, {1, -2, 0.5f, 3});
  auto y = linear(x, w_true);
  AdamW<float, cpu> opt(layer.trainable_parameters(), {0.05, 0.9, 0.999, 1e-8, 0.0});
  float first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    auto loss = mean(square(layer(x) - y));
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  CHECK(last < first * 1e-3f);
  CHECK(layer.named_parameters()[0].first == "weight");
  CHECK(layer.parameter_count() == 5);
}
