// Forward values of the ops against direct definitions.
#include "support.hpp"

#include <limits>

using namespace blip2;
using blip2::testing::max_abs_diff;
using blip2::testing::tensor;

namespace {
// Reference product of [B, M, K] x [B, K, N] (float64 loops).
Tensor<double> naive_bmm(const Tensor<double>& a, const Tensor<double>& b) {
  const index_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  auto va = a.to_vector(), vb = b.to_vector();
  std::vector<double> out(std::size_t(B * M * N), 0.0);
  for (index_t z = 0; z < B; ++z)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j)
        for (index_t k = 0; k < K; ++k)
          out[std::size_t((z * M + i) * N + j)] += va[std::size_t((z * M + i) * K + k)] * vb[std::size_t((z * K + k) * N + j)];
  return Tensor<double>::from_vector({B, M, N}, out);
}
}  // namespace

TEST_CASE("matmul: batched, broadcast, transposed operands") {
  Generator g(3);
  auto a = randn<double>({3, 5, 7}, g), b = randn<double>({3, 7, 4}, g);
  CHECK(max_abs_diff(matmul(a, b), naive_bmm(a, b)) < 1e-12);
  auto bt = randn<double>({3, 4, 7}, g);  // used transposed, in place
  CHECK(max_abs_diff(matmul(a, bt.transpose(1, 2)), naive_bmm(a, bt.transpose(1, 2).contiguous())) < 1e-12);
  auto b2 = randn<double>({7, 4}, g);  // broadcast over the batch
  CHECK(max_abs_diff(matmul(a, b2), naive_bmm(a, b2.unsqueeze(0).expand({3, 7, 4}).contiguous())) < 1e-12);
  auto w = randn<double>({6, 7}, g), bias = randn<double>({6}, g);
  auto y = linear(a, w, bias);
  auto ref = add(naive_bmm(a, w.transpose(0, 1).unsqueeze(0).expand({3, 7, 6}).contiguous()), bias);
  CHECK(max_abs_diff(y, ref) < 1e-12);
  // float32 products at a size where the GEMM blocks
  auto fa = randn<float>({67, 130}, g), fb = randn<float>({90, 130}, g);
  auto fy = linear(fa, fb);
  auto ry = naive_bmm(fa.to<double>().unsqueeze(0), fb.to<double>().transpose(0, 1).contiguous().unsqueeze(0));
  CHECK(max_abs_diff(fy.to<double>(), ry.squeeze(0)) < 1e-3);
}

TEST_CASE("elementwise and reductions") {
  auto x = tensor<double>({2, 3}, {-1, 0, 1, 2, -3, 0.5});
  CHECK(relu(x).to_vector() == std::vector<double>{0, 0, 1, 2, 0, 0.5});
  CHECK(std::abs(gelu(x).to_vector()[3] - 2 * 0.5 * (1 + std::erf(2 / std::sqrt(2.0)))) < 1e-12);
  CHECK(std::abs(gelu_tanh(x).to_vector()[0] - (-0.15880800939172324)) < 1e-9);
  CHECK(std::abs(silu(x).to_vector()[2] - 1 / (1 + std::exp(-1.0))) < 1e-12);
  CHECK(sum(x).item() == doctest::Approx(-0.5));
  CHECK(sum(x, {0}).to_vector() == std::vector<double>{1, -3, 1.5});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(mean(x, {1}).to_vector()[0] == doctest::Approx(0));
  CHECK(max(x, {1}).to_vector() == std::vector<double>{1, 2});
  CHECK(max(x, {0}).to_vector() == std::vector<double>{2, 0, 1});
  CHECK((x * 2.0 + 1.0).to_vector()[0] == -1);
  auto row = tensor<double>({3}, {10, 20, 30});
  CHECK((x + row).to_vector()[5] == 30.5);
  CHECK((x / row).to_vector()[1] == 0);
  // float32 vector path with a tail
  Generator g(5);
  auto f = randn<float>({1000}, g);
  auto ef = exp(f).to_vector();
  auto fv = f.to_vector();
  for (std::size_t i = 0; i < fv.size(); ++i) CHECK(ef[i] == doctest::Approx(std::exp(fv[i])).epsilon(1e-6));
  auto tf = tanh(f).to_vector();
  for (std::size_t i = 0; i < fv.size(); ++i) CHECK(tf[i] == doctest::Approx(std::tanh(fv[i])).epsilon(1e-5));
}

TEST_CASE("softmax with masks: fully masked rows give zeros") {
  const double inf = std::numeric_limits<double>::infinity();
  auto x = tensor<double>({3, 3}, {1, 2, 3, 1, 2, 3, 1, 2, 3});
  auto mask = tensor<double>({3, 3}, {0, 0, 0, 0, -inf, 0, -inf, -inf, -inf});
  auto y = softmax(x, mask).to_vector();
  const double z = std::exp(1) + std::exp(2) + std::exp(3);
  CHECK(y[0] == doctest::Approx(std::exp(1) / z));
  CHECK(y[4] == 0);
  CHECK(y[3] == doctest::Approx(std::exp(1) / (std::exp(1) + std::exp(3))));
  for (int i = 6; i < 9; ++i) CHECK(y[std::size_t(i)] == 0);
  auto big_negative = tensor<double>({1, 3}, {-3.4e38, -3.4e38, -3.4e38});  // finfo.min style
  CHECK(softmax(tensor<double>({1, 3}, {1, 2, 3}), big_negative).to_vector() == std::vector<double>{0, 0, 0});
  auto ls = log_softmax(x).to_vector();
  CHECK(ls[2] == doctest::Approx(3 - std::log(z)));
  // broadcast mask [B, 1, 1, L] over [B, H, Lq, L]
  Generator g(2);
  auto s = randn<float>({2, 4, 5, 6}, g);
  auto pad = Tensor<float>::zeros({2, 1, 1, 6});
  pad.data()[11] = -std::numeric_limits<float>::infinity();
  auto p = softmax(s, pad);
  CHECK(p.to_vector()[1 * 4 * 5 * 6 + 5] == 0.0f);
  CHECK(sum(p, {-1}).to_vector()[7] == doctest::Approx(1.0f));
}

TEST_CASE("layer norm and RMS norm") {
  auto x = tensor<double>({2, 4}, {1, 2, 3, 4, -1, 0, 1, 10});
  auto w = tensor<double>({4}, {1, 2, 1, 0.5}), b = tensor<double>({4}, {0, 1, 0, -1});
  auto y = layer_norm(x, w, b, 1e-5).to_vector();
  const double mu = 2.5, var = 1.25, rs = 1 / std::sqrt(var + 1e-5);
  CHECK(y[1] == doctest::Approx((2 - mu) * rs * 2 + 1));
  auto r = rms_norm(x, w, 1e-6).to_vector();
  const double ms = (1 + 4 + 9 + 16) / 4.0;
  CHECK(r[3] == doctest::Approx(4 / std::sqrt(ms + 1e-6) * 0.5));
  auto n = l2_normalize(x).to_vector();
  CHECK(n[0] == doctest::Approx(1 / std::sqrt(30.0)));
}

TEST_CASE("embedding, index_select and cross-entropy") {
  auto table = tensor<double>({4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  auto ids = Tensor<std::int64_t>::from_vector({2, 2}, {3, 0, 1, 3});
  auto e = embedding(table, ids);
  CHECK(e.shape() == Shape{2, 2, 2});
  CHECK(e.to_vector() == std::vector<double>{30, 31, 0, 1, 10, 11, 30, 31});
  CHECK(index_select(table, 1, Tensor<std::int64_t>::from_vector({1}, {1})).to_vector() ==
        std::vector<double>{1, 11, 21, 31});
  CHECK_THROWS_WITH_AS(embedding(table, Tensor<std::int64_t>::from_vector({2}, {1, 4})),
                       doctest::Contains("token id 4 at position 1"), ValueError);

  auto logits = tensor<double>({3, 3}, {1, 2, 3, 0, 0, 0, 5, 1, -1});
  auto targets = Tensor<std::int64_t>::from_vector({3}, {2, -100, 0});
  auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
  const double l0 = lse(1, 2, 3) - 3, l2 = lse(5, 1, -1) - 5;
  CHECK(cross_entropy(logits, targets).item() == doctest::Approx((l0 + l2) / 2));
  const double eps = 0.1;
  const double s0 = lse(1, 2, 3) - 2, s2 = lse(5, 1, -1) - 5.0 / 3;
  CHECK(cross_entropy(logits, targets, {-100, eps}).item() ==
        doctest::Approx(((1 - eps) * l0 + eps * s0 + (1 - eps) * l2 + eps * s2) / 2));
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor<std::int64_t>::from_vector({3}, {0, 3, 1})),
                       doctest::Contains("target 3 at position 1"), ValueError);
}

TEST_CASE("attention, causal masks, patch embedding and dropout") {
  Generator g(9);
  auto q = randn<double>({2, 3, 4}, g), k = randn<double>({2, 5, 4}, g), v = randn<double>({2, 5, 2}, g);
  AttentionOptions causal;
  causal.causal = true;
  auto out = scaled_dot_product_attention(q, k, v, Tensor<double>(), causal);
  // query 0 of 3 with 5 keys sees keys 0..2 (the last 3 queries are aligned with the last 3 keys)
  auto s = softmax(matmul(q, k.transpose(1, 2)) * 0.5, causal_mask<double, cpu>(3, 5));
  CHECK(max_abs_diff(out, matmul(s, v)) < 1e-12);
  CHECK(s.to_vector()[3] == 0);
  CHECK(s.to_vector()[2] > 0);

  auto pix = randn<double>({1, 2, 4, 4}, g), w = randn<double>({3, 2, 2, 2}, g), b = randn<double>({3}, g);
  auto pe = patch_embed(pix, w, b);
  CHECK(pe.shape() == Shape{1, 4, 3});
  // patch (row 1, col 0) -> index 2; output channel 1
  double ref = b.to_vector()[1];
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        ref += pix.to_vector()[std::size_t(c * 16 + (2 + i) * 4 + j)] * w.to_vector()[std::size_t(((1 * 2 + c) * 2 + i) * 2 + j)];
  CHECK(pe.to_vector()[2 * 3 + 1] == doctest::Approx(ref));

  Generator d1(42), d2(42);
  auto ones = Tensor<float>::ones({10000});
  auto a1 = dropout(ones, 0.25, d1).to_vector(), a2 = dropout(ones, 0.25, d2).to_vector();
  CHECK(a1 == a2);  // seeded
  std::size_t zeros = 0;
  for (float x : a1) zeros += x == 0.0f;
  CHECK(zeros > 2300);
  CHECK(zeros < 2700);
  CHECK(sum(Tensor<float>::from_vector({10000}, a1)).item() == doctest::Approx(10000).epsilon(0.05));
  CHECK(dropout(ones, 0.25, d1, false).is_same(ones));
}

TEST_CASE("linear and embedding with half-precision (frozen) weights") {
  Generator g(11);
  const auto w = randn<float>({1000, 300}, g), b = randn<float>({1000}, g);
  // 1 and 12 rows: the small-M kernels; 40 rows: the packed GEMM (both read the half-precision W)
  for (const Shape& xs : {Shape{1, 1, 300}, Shape{3, 4, 300}, Shape{2, 20, 300}}) {
    for (const bool bf : {true, false}) {
      INFO("bf16: " << bf << " x " << to_string(xs));
      auto x = randn<float>(xs, g).requires_grad_();
      const auto wf = bf ? w.to<bf16>().to<float>() : w.to<f16>().to<float>();
      const auto y = bf ? linear(x, w.to<bf16>(), b) : linear(x, w.to<f16>(), b);
      CHECK(max_abs_diff(y, linear(x, wf, b)) < 1e-3);
      x.zero_grad();
      sum(y * y).backward();
      const auto gx = x.grad();
      x.zero_grad();
      sum(square(linear(x, wf, b))).backward();
      CHECK(max_abs_diff(gx, x.grad()) < 1e-5 * std::max(1.0, double(max(abs(x.grad())).item())));
    }
  }
  nn::Linear<float, cpu, bf16> layer(300, 1000);
  CHECK(layer.named_half_weights().size() == 1);
  CHECK(layer.named_parameters().size() == 1);  // the bias
  CHECK(layer.weight_bytes() == 300 * 1000 * 2 + 1000 * 4);
  const auto rows = embedding(w.to<bf16>(), Tensor<std::int64_t>::from_vector({2}, {3, 7})).to<float>();
  CHECK(rows.to_vector()[0] == float(bf16(w.to_vector()[3 * 300])));
}
