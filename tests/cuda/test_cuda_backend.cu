// The CUDA back end against the CPU back end: the same ops (written once in include/blip2/ops) run on
// Tensor<T, cuda> and Tensor<T, cpu> from the same inputs, and the results must agree. Runs only
// with a GPU (tests/cuda/main.cu skips otherwise).
#include <doctest/doctest.h>

#include <blip2/blip2.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

using namespace blip2;

namespace {

using GpuF = Tensor<float, cuda>;
using CpuF = Tensor<float, cpu>;
using Ids = Tensor<std::int64_t, cpu>;

template <class T>
Tensor<T, cuda> gpu(const Tensor<T, cpu>& t) {
  return t.template to<cuda>();
}

// max |g - c| / (1 + |c|) over all elements; shapes must agree.
template <class T>
double rel_err(const Tensor<T, cuda>& g, const Tensor<T, cpu>& c) {
  REQUIRE(to_string(g.shape()) == to_string(c.shape()));
  const auto vg = g.to_vector(), vc = c.to_vector();
  double m = 0;
  for (std::size_t i = 0; i < vg.size(); ++i) {
    const double a = convert_scalar<double>(vg[i]), b = convert_scalar<double>(vc[i]);
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) != std::isnan(b)) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (a == b) continue;  // also equal infinities
    m = std::max(m, std::abs(a - b) / (1 + std::abs(b)));
  }
  return m;
}

#define CHECK_CLOSE(g, c, tol)                     \
  do {                                             \
    const double err_ = rel_err((g), (c));         \
    INFO(#g " vs " #c ": relative error " << err_);  \
    CHECK(err_ <= (tol));                          \
  } while (0)

template <class T>
std::vector<std::uint16_t> bits_of(const std::vector<T>& v) {
  std::vector<std::uint16_t> out;
  for (const T& h : v) out.push_back(h.bits);
  return out;
}

}  // namespace

TEST_CASE("cuda: device memory, host copies and the caching allocator") {
  REQUIRE(Backend<cuda>::available());
  const std::vector<float> values{1, -2, 3.5f, 0, 1e-8f, -1e8f};
  const auto g = GpuF::from_vector({2, 3}, values);
  CHECK(g.to_vector() == values);
  CHECK(GpuF::zeros({5}).to_vector() == std::vector<float>(5, 0.f));
  CHECK(GpuF::full({3}, 2.5f).to_vector() == std::vector<float>(3, 2.5f));
  CHECK(GpuF::scalar(7.f).item() == 7.f);
  CHECK(Tensor<std::int64_t, cuda>::full({4}, -3).to_vector() == std::vector<std::int64_t>(4, -3));
  CHECK(GpuF::empty({0, 3}).to_vector().empty());

  // device <-> host moves keep shape and values
  const CpuF c = CpuF::from_vector({3, 2}, values);
  const auto back = gpu(c).to<cpu>();
  CHECK(back.shape() == Shape{3, 2});
  CHECK(back.to_vector() == values);

  // a freed block is handed out again for the next request of its bucket, without cudaMalloc
  using cuda_kernel::CachingAllocator;
  CHECK(CachingAllocator::bucket_size(1) == 512);
  CHECK(CachingAllocator::bucket_size(513) == 1024);
  CHECK(CachingAllocator::bucket_size((1 << 20) + 1) == (1 << 20) + (1 << 17));
  const float* first = nullptr;
  {
    const auto t = GpuF::empty({1000});
    first = t.data();
  }
  const auto before = cuda_kernel::memory_stats();
  CHECK(before.cached_bytes >= CachingAllocator::bucket_size(4000));
  const auto again = GpuF::empty({1000});
  const auto after = cuda_kernel::memory_stats();
  CHECK(again.data() == first);
  CHECK(after.device_allocations == before.device_allocations);
  CHECK(after.reuses == before.reuses + 1);
  CHECK(after.in_use_bytes == before.in_use_bytes + CachingAllocator::bucket_size(4000));
  // release-all returns every cached block to the driver; blocks in use stay valid
  cuda_kernel::empty_cache();
  CHECK(cuda_kernel::memory_stats().cached_bytes == 0);
  CHECK(g.to_vector() == values);
  // a different bucket needs a fresh block
  const auto big = GpuF::empty({1 << 20});
  CHECK(big.numel() == 1 << 20);
  CHECK(cuda_kernel::memory_stats().device_allocations > after.device_allocations);
}

TEST_CASE("cuda: strided copies and element conversion (float64, bf16, f16, int64)") {
  Generator gen(1);
  const CpuF c = randn<float>({3, 4, 5}, gen);
  const GpuF g = gpu(c);
  // transposed, sliced with a step, broadcast
  CHECK(rel_err(g.permute({2, 0, 1}).contiguous(), c.permute({2, 0, 1}).contiguous()) == 0);
  CHECK(rel_err(g.slice(2, 1, 5, 2).contiguous(), c.slice(2, 1, 5, 2).contiguous()) == 0);
  CHECK(rel_err(g.slice(1, 0, 1).expand({3, 6, 5}).contiguous(), c.slice(1, 0, 1).expand({3, 6, 5}).contiguous()) == 0);
  const auto gc = GpuF::zeros({5, 3, 4});
  copy_(gc.permute({1, 2, 0}), g);  // strided destination
  CHECK(rel_err(gc, c.permute({2, 0, 1}).contiguous()) == 0);

  CHECK(rel_err(g.to<double>(), c.to<double>()) == 0);
  // the half types: identical bits on both back ends, including rounding ties, NaN, infinities and
  // subnormals
  std::vector<float> special{0.f, -0.f, 1.f, 1.00390625f, 1.01171875f, 65504.f, 65520.f, 1e-7f, 6e-8f, 3e-8f,
                             -2.5e-40f, 1e30f, -1e-30f, 3.3895314e38f,
                             std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN()};
  const auto more = randn<float>({200}, gen, 0, 1000).to_vector();
  special.insert(special.end(), more.begin(), more.end());
  const CpuF s = CpuF::from_vector({index_t(special.size())}, special);
  const GpuF sg = gpu(s);
  CHECK(bits_of(sg.to<bf16>().to_vector()) == bits_of(s.to<bf16>().to_vector()));
  CHECK(bits_of(sg.to<f16>().to_vector()) == bits_of(s.to<f16>().to_vector()));
  CHECK(rel_err(sg.to<bf16>().to<float>(), s.to<bf16>().to<float>()) == 0);
  CHECK(rel_err(sg.to<f16>().to<float>(), s.to<f16>().to<float>()) == 0);
  CHECK(bits_of(sg.to<bf16>().to<f16>().to_vector()) == bits_of(s.to<bf16>().to<f16>().to_vector()));
  CHECK(bits_of(gpu(s.to<double>()).to<bf16>().to_vector()) == bits_of(s.to<double>().to<bf16>().to_vector()));
  // bf16 tensors move between devices unchanged, and copy through strided views
  const auto hb = c.to<bf16>();
  CHECK(bits_of(gpu(hb).to<cpu>().to_vector()) == bits_of(hb.to_vector()));
  CHECK(bits_of(gpu(hb).transpose(0, 2).contiguous().to_vector()) == bits_of(hb.transpose(0, 2).contiguous().to_vector()));
  // integers
  const Ids ids = Ids::from_vector({4}, {-5, 0, 7, 1 << 20});
  CHECK(rel_err(gpu(ids).to<float>(), ids.to<float>()) == 0);
  CHECK(gpu(ids).to<double>().to<std::int64_t>().to_vector() == ids.to_vector());

  // more strided dimensions than a kernel takes (after merging) is a ShapeError, not a wrong answer
  const auto nine = GpuF::zeros({2, 2, 2, 2, 2, 2, 2, 2, 2});
  CHECK_THROWS_AS(nine.permute({8, 7, 6, 5, 4, 3, 2, 1, 0}).contiguous(), ShapeError);
  // ... while many dimensions that merge are fine
  CHECK(nine.clone().to_vector() == std::vector<float>(512, 0.f));
}

TEST_CASE("cuda: elementwise ops, broadcasting, in-place updates") {
  Generator gen(2);
  const CpuF x = randn<float>({4, 33}, gen);
  const CpuF pos = rand<float>({4, 33}, gen, 0.1, 3.0);
  const GpuF gx = gpu(x), gp = gpu(pos);
  const std::vector<std::pair<UnaryOp, const char*>> on_x{
      {UnaryOp::neg, "neg"},           {UnaryOp::exp, "exp"},         {UnaryOp::tanh, "tanh"},
      {UnaryOp::relu, "relu"},         {UnaryOp::gelu_erf, "gelu"},   {UnaryOp::gelu_tanh, "gelu_tanh"},
      {UnaryOp::silu, "silu"},         {UnaryOp::sigmoid, "sigmoid"}, {UnaryOp::square, "square"},
      {UnaryOp::abs, "abs"},           {UnaryOp::add_scalar, "add"},  {UnaryOp::mul_scalar, "mul"},
      {UnaryOp::clamp_min, "clamp_min"}};
  for (const auto& entry : on_x) {
    const UnaryOp op = entry.first;
    const char* name = entry.second;
    INFO(name);
    CHECK_CLOSE(unary(op, gx, 0.3f), unary(op, x, 0.3f), 1e-5);
  }
  for (const auto& entry : std::vector<std::pair<UnaryOp, const char*>>{
           {UnaryOp::log, "log"}, {UnaryOp::sqrt, "sqrt"}, {UnaryOp::rsqrt, "rsqrt"}, {UnaryOp::pow_scalar, "pow"}}) {
    const UnaryOp op = entry.first;
    const char* name = entry.second;
    INFO(name);
    CHECK_CLOSE(unary(op, gp, 1.7f), unary(op, pos, 1.7f), 1e-5);
  }

  // broadcasting: row, column, scalar-like, and a transposed (non-contiguous) operand
  const CpuF row = randn<float>({33}, gen), col = randn<float>({4, 1}, gen), one = randn<float>({1}, gen);
  const CpuF xt = randn<float>({33, 4}, gen);
  for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div}) {
    INFO("binary op " << int(op));
    CHECK_CLOSE(binary(op, gx, gpu(row)), binary(op, x, row), 1e-6);
    CHECK_CLOSE(binary(op, gpu(col), gx), binary(op, col, x), 1e-6);
    CHECK_CLOSE(binary(op, gx, gpu(one)), binary(op, x, one), 1e-6);
    CHECK_CLOSE(binary(op, gx, gpu(xt).transpose(0, 1)), binary(op, x, xt.transpose(0, 1)), 1e-6);
  }
  const CpuF a3 = randn<float>({2, 1, 5}, gen), b3 = randn<float>({3, 1}, gen);
  CHECK_CLOSE(gpu(a3) * gpu(b3), a3 * b3, 1e-6);  // [2, 3, 5]
  CHECK(rel_err(binary(BinaryOp::eq, gx, gx), binary(BinaryOp::eq, x, x)) == 0);
  CHECK_CLOSE((gx * 2.f + 1.f) / 4.f - 0.5f, (x * 2.f + 1.f) / 4.f - 0.5f, 1e-6);

  // in place: add_ with broadcasting, copy_ into a strided view
  const GpuF acc = gx.clone();
  const CpuF acc_c = x.clone();
  add_(acc, gpu(row));
  add_(acc_c, row);
  CHECK_CLOSE(acc, acc_c, 1e-6);

  // beyond one grid of the grid-stride loops (65536 blocks x 256 threads)
  const index_t n = (index_t(1) << 24) + 12345;
  const CpuF big = rand<float>({n}, gen, -2, 2);
  CHECK_CLOSE(tanh(gpu(big)), tanh(big), 1e-5);
}

TEST_CASE("cuda: reductions") {
  Generator gen(3);
  const CpuF x = randn<float>({3, 70, 5}, gen);
  const GpuF g = gpu(x);
  CHECK_CLOSE(sum(g), sum(x), 1e-5);
  for (index_t axis : {0, 1, 2}) {
    INFO("axis " << axis);
    CHECK_CLOSE(sum(g, {axis}), sum(x, {axis}), 1e-5);
    CHECK_CLOSE(mean(g, {axis}, true), mean(x, {axis}, true), 1e-5);
    CHECK(rel_err(max(g, {axis}), max(x, {axis})) == 0);
  }
  CHECK_CLOSE(sum(g, {0, 2}), sum(x, {0, 2}), 1e-5);
  CHECK(rel_err(max(g), max(x)) == 0);
  // long rows (block reduction over many threads), many rows (beyond one grid of blocks)
  const CpuF wide = randn<float>({3, 100000}, gen);
  CHECK_CLOSE(sum(gpu(wide), {1}), sum(wide, {1}), 1e-4);
  CHECK(rel_err(max(gpu(wide), {1}), max(wide, {1})) == 0);
  const CpuF tall = randn<float>({70000, 3}, gen);
  CHECK_CLOSE(sum(gpu(tall), {1}), sum(tall, {1}), 1e-5);
  CHECK_CLOSE(sum(gpu(tall), {0}), sum(tall, {0}), 1e-3);
}

TEST_CASE("cuda: matmul and linear (cuBLAS), transposed views, batches, broadcasting") {
  Generator gen(4);
  const CpuF a = randn<float>({3, 5, 7}, gen), b = randn<float>({3, 7, 4}, gen);
  CHECK_CLOSE(matmul(gpu(a), gpu(b)), matmul(a, b), 1e-5);
  const CpuF bt = randn<float>({3, 4, 7}, gen);  // read transposed, in place
  CHECK_CLOSE(matmul(gpu(a), gpu(bt).transpose(1, 2)), matmul(a, bt.transpose(1, 2)), 1e-5);
  const CpuF at = randn<float>({3, 7, 5}, gen);
  CHECK_CLOSE(matmul(gpu(at).transpose(1, 2), gpu(bt).transpose(1, 2)), matmul(at.transpose(1, 2), bt.transpose(1, 2)),
              1e-5);
  const CpuF b2 = randn<float>({7, 4}, gen);  // broadcast over the batch (stride 0)
  CHECK_CLOSE(matmul(gpu(a), gpu(b2)), matmul(a, b2), 1e-5);
  const CpuF a4 = randn<float>({2, 1, 5, 7}, gen), b4 = randn<float>({3, 7, 6}, gen);  // [2, 3, 5, 6]
  CHECK_CLOSE(matmul(gpu(a4), gpu(b4)), matmul(a4, b4), 1e-5);
  // linear: x W^T + b, with and without bias, on a size where the GEMM tiles
  const CpuF x = randn<float>({67, 130}, gen), w = randn<float>({90, 130}, gen), bias = randn<float>({90}, gen);
  CHECK_CLOSE(linear(gpu(x), gpu(w)), linear(x, w), 1e-4);
  CHECK_CLOSE(linear(gpu(x).reshape({67, 1, 130}), gpu(w), gpu(bias)), linear(x.reshape({67, 1, 130}), w, bias), 1e-4);
  // vectors as matrices, and K == 0 (a zero product)
  const CpuF v = randn<float>({1, 7}, gen);
  CHECK_CLOSE(matmul(gpu(v), gpu(b2)), matmul(v, b2), 1e-5);
  CHECK_CLOSE(matmul(GpuF::zeros({3, 0}), GpuF::zeros({0, 4})), CpuF::zeros({3, 4}), 0);
  // float64 runs in float64
  const auto ad = a.to<double>(), bd = b.to<double>();
  CHECK(rel_err(matmul(gpu(ad), gpu(bd)), matmul(ad, bd)) < 1e-13);
}

TEST_CASE("cuda: bf16 / f16 GEMM with float32 accumulation") {
  Generator gen(5);
  const index_t M = 37, N = 45, K = 64, batch = 2;
  const CpuF a = randn<float>({batch, M, K}, gen), b = randn<float>({batch, N, K}, gen);
  // reference: the float32 product of the values the half types can hold
  const CpuF ref_bf = matmul(a.to<bf16>().to<float>(), b.to<bf16>().to<float>().transpose(1, 2));
  const auto abf = gpu(a.to<bf16>()), bbf = gpu(b.to<bf16>());
  auto out = GpuF::empty({batch, M, N});
  Backend<cuda>::gemm_batched_mixed(false, true, M, N, K, 1.f, abf.data(), K, M * K, bbf.data(), K, N * K, 0.f,
                                    out.data(), N, M * N, batch);
  CHECK_CLOSE(out, ref_bf, 1e-4);
  // f16 operands, f16 result
  const CpuF ref_h = matmul(a.to<f16>().to<float>(), b.to<f16>().to<float>().transpose(1, 2));
  const auto ah = gpu(a.to<f16>()), bh = gpu(b.to<f16>());
  auto out_h = Tensor<f16, cuda>::empty({batch, M, N});
  Backend<cuda>::gemm_batched_mixed(false, true, M, N, K, 1.f, ah.data(), K, M * K, bh.data(), K, N * K, 0.f,
                                    out_h.data(), N, M * N, batch);
  CHECK_CLOSE(out_h.to<float>(), ref_h, 2e-3);
  // float32 A times a bf16 / f16 B (activations times half-precision weights, the CPU's contract too):
  // B converted a block of columns at a time (two blocks at K = 16384), batched A, B transposed or not
  const index_t M2 = 3, N2 = 1500, K2 = 16384;
  const CpuF x = randn<float>({2, M2, K2}, gen), w = randn<float>({N2, K2}, gen), bias = randn<float>({N2}, gen);
  const auto wb = w.to<bf16>();
  auto out2 = GpuF::empty({2, M2, N2});
  const auto xg = gpu(x);
  const auto wbg = gpu(wb);
  Backend<cuda>::gemm_batched_mixed(false, true, M2, N2, K2, 1.f, xg.data(), K2, M2 * K2, wbg.data(), K2, 0, 0.f,
                                    out2.data(), N2, M2 * N2, 2);
  // (sums of 16384 products: the two devices' float32 sums differ by about sqrt(K) eps |c|, ~1e-3)
  CHECK_CLOSE(out2, matmul(x, wb.to<float>().transpose(0, 1)), 2e-3);
  const CpuF bk = randn<float>({70, 45}, gen), xk = randn<float>({5, 70}, gen);
  const auto bkh = gpu(bk.to<f16>());
  auto out3 = GpuF::empty({5, 45});
  Backend<cuda>::gemm_batched_mixed(false, false, 5, 45, 70, 1.f, gpu(xk).data(), 70, 0, bkh.data(), 45, 0, 0.f,
                                    out3.data(), 45, 0, 1);
  CHECK_CLOSE(out3, matmul(xk, bk.to<f16>().to<float>()), 1e-4);
  // linear() with half weights runs the same code on both devices
  CHECK_CLOSE(linear(xg, wbg, gpu(bias)), linear(x, wb, bias), 2e-3);
}

TEST_CASE("cuda: softmax and log-softmax with masks, fully masked rows, backward") {
  Generator gen(6);
  const float ninf = -std::numeric_limits<float>::infinity();
  const CpuF x = randn<float>({2, 3, 9}, gen);
  std::vector<float> m(3 * 9, 0.f);
  for (int j = 0; j < 9; ++j) m[std::size_t(0 * 9 + j)] = ninf;  // row 0: every entry masked
  for (int j = 5; j < 9; ++j) m[std::size_t(1 * 9 + j)] = -1e30f;  // row 1: partly masked (finfo.min style)
  const CpuF mask = CpuF::from_vector({3, 9}, m);
  const auto ys = softmax(gpu(x), gpu(mask));
  CHECK_CLOSE(ys, softmax(x, mask), 1e-6);
  CHECK_CLOSE(log_softmax(gpu(x), gpu(mask)), log_softmax(x, mask), 1e-5);
  const auto v = ys.to_vector();
  for (int j = 0; j < 9; ++j) CHECK(v[std::size_t(j)] == 0.f);  // fully masked: zeros, never NaN
  CHECK_CLOSE(softmax(gpu(x)), softmax(x), 1e-6);
  // wide rows (several warps) and many rows (beyond one grid)
  const CpuF wide = randn<float>({5, 3000}, gen, 0, 4);
  CHECK_CLOSE(softmax(gpu(wide)), softmax(wide), 1e-6);
  CHECK_CLOSE(log_softmax(gpu(wide)), log_softmax(wide), 1e-5);
  const CpuF tall = randn<float>({70000, 3}, gen);
  CHECK_CLOSE(softmax(gpu(tall)), softmax(tall), 1e-6);

  // backward, through the masked rows too
  for (bool log : {false, true}) {
    INFO("log " << log);
    const CpuF w = randn<float>({2, 3, 9}, gen);
    CpuF xc = x.clone();
    xc.requires_grad_();
    GpuF xg = gpu(x);
    xg.requires_grad_();
    auto f = [&](auto& t, const auto& wt, const auto& mk) {
      return sum((log ? log_softmax(t, mk) : softmax(t, mk)) * wt);
    };
    f(xc, w, mask).backward();
    f(xg, gpu(w), gpu(mask)).backward();
    CHECK_CLOSE(xg.grad(), xc.grad(), 1e-5);
  }
}

TEST_CASE("cuda: layer norm and RMS norm, forward and backward") {
  Generator gen(7);
  for (index_t cols : {index_t(16), index_t(1000)}) {
    INFO("cols " << cols);
    const index_t rows = 37;
    const CpuF x = randn<float>({rows, cols}, gen, 0.5, 2.0), w = randn<float>({cols}, gen), b = randn<float>({cols}, gen);
    const CpuF wy = randn<float>({rows, cols}, gen);
    CHECK_CLOSE(layer_norm(gpu(x), gpu(w), gpu(b)), layer_norm(x, w, b), 1e-5);
    CHECK_CLOSE(layer_norm(gpu(x), GpuF(), GpuF()), layer_norm(x, CpuF(), CpuF()), 1e-5);
    CHECK_CLOSE(rms_norm(gpu(x), gpu(w)), rms_norm(x, w), 1e-5);
    CHECK_CLOSE(rms_norm(gpu(x), GpuF()), rms_norm(x, CpuF()), 1e-5);

    CpuF xc = x.clone(), wc = w.clone(), bc = b.clone();
    GpuF xg = gpu(x), wg = gpu(w), bg = gpu(b);
    for (auto* t : {&xc, &wc, &bc}) t->requires_grad_();
    for (auto* t : {&xg, &wg, &bg}) t->requires_grad_();
    sum(layer_norm(xc, wc, bc) * wy).backward();
    sum(layer_norm(xg, wg, bg) * gpu(wy)).backward();
    CHECK_CLOSE(xg.grad(), xc.grad(), 1e-4);
    CHECK_CLOSE(wg.grad(), wc.grad(), 1e-4);
    CHECK_CLOSE(bg.grad(), bc.grad(), 1e-4);
    // RMS norm accumulates into the same leaves
    sum(rms_norm(xc, wc) * wy).backward();
    sum(rms_norm(xg, wg) * gpu(wy)).backward();
    CHECK_CLOSE(xg.grad(), xc.grad(), 1e-4);
    CHECK_CLOSE(wg.grad(), wc.grad(), 1e-4);
  }
}

TEST_CASE("cuda: embedding, index_select and their backward (repeated ids accumulate)") {
  Generator gen(8);
  const CpuF table = randn<float>({10, 6}, gen);
  const Ids ids = Ids::from_vector({2, 4}, {3, 1, 3, 9, 0, 3, 1, 2});
  CpuF tc = table.clone();
  tc.requires_grad_();
  GpuF tg = gpu(table);
  tg.requires_grad_();
  const auto ec = embedding(tc, ids);
  const auto eg = embedding(tg, gpu(ids));
  CHECK(rel_err(eg, ec) == 0);
  const CpuF w = randn<float>({2, 4, 6}, gen);
  sum(ec * w).backward();
  sum(eg * gpu(w)).backward();
  CHECK_CLOSE(tg.grad(), tc.grad(), 1e-6);
  // along a middle axis
  const CpuF x = randn<float>({3, 5, 4}, gen);
  const Ids pick = Ids::from_vector({3}, {4, 0, 4});
  CHECK(rel_err(index_select(gpu(x), 1, gpu(pick)), index_select(x, 1, pick)) == 0);
  // an id outside the table is a ValueError naming it and its position
  const Ids bad = Ids::from_vector({3}, {1, 10, -1});
  CHECK_THROWS_WITH_AS(embedding(tg, gpu(bad)), doctest::Contains("token id 10 at position 1"), ValueError);
}

TEST_CASE("cuda: cross-entropy with ignore_index and label smoothing") {
  Generator gen(9);
  const CpuF logits = randn<float>({4, 3, 11}, gen);
  const Ids targets = Ids::from_vector({4, 3}, {0, 10, -100, 5, 5, 2, -100, 7, 1, 3, 9, 4});
  for (double smoothing : {0.0, 0.1}) {
    INFO("label smoothing " << smoothing);
    CpuF lc = logits.clone();
    lc.requires_grad_();
    GpuF lg = gpu(logits);
    lg.requires_grad_();
    const auto loss_c = cross_entropy(lc, targets, {-100, smoothing});
    const auto loss_g = cross_entropy(lg, gpu(targets), {-100, smoothing});
    CHECK_CLOSE(loss_g, loss_c, 1e-6);
    loss_c.backward();
    loss_g.backward();
    CHECK_CLOSE(lg.grad(), lc.grad(), 1e-6);
  }
}

TEST_CASE("cuda: attention, a small network's backward, AdamW") {
  Generator gen(10);
  const CpuF q = randn<float>({2, 3, 5, 8}, gen), k = randn<float>({2, 3, 7, 8}, gen), v = randn<float>({2, 3, 7, 8}, gen);
  std::vector<float> pad(2 * 7, 0.f);
  for (int j = 4; j < 7; ++j) pad[std::size_t(7 + j)] = -std::numeric_limits<float>::infinity();
  const CpuF mask = CpuF::from_vector({2, 1, 1, 7}, pad);
  AttentionOptions causal;
  causal.causal = true;
  CHECK_CLOSE(scaled_dot_product_attention(gpu(q), gpu(k), gpu(v), gpu(mask), causal),
              scaled_dot_product_attention(q, k, v, mask, causal), 1e-5);

  // a two-layer network with attention-style mixing, trained one AdamW step on both devices
  const CpuF x = randn<float>({6, 16}, gen);
  const Ids y = Ids::from_vector({6}, {0, 1, 2, 3, 4, 0});
  CpuF w1 = randn<float>({32, 16}, gen, 0, 0.3), b1 = randn<float>({32}, gen, 0, 0.1), w2 = randn<float>({5, 32}, gen, 0, 0.3);
  GpuF g1 = gpu(w1), c1 = gpu(b1), g2 = gpu(w2);
  for (auto* t : {&w1, &b1, &w2}) t->requires_grad_();
  for (auto* t : {&g1, &c1, &g2}) t->requires_grad_();
  auto net = [](const auto& in, const auto& ids, const auto& a, const auto& b, const auto& c) {
    const auto h = gelu(linear(in, a, b));
    const auto mixed = matmul(softmax(matmul(h, h.transpose(0, 1)) * 0.1f), h);
    return cross_entropy(linear(layer_norm(mixed, std::decay_t<decltype(a)>(), std::decay_t<decltype(a)>()), c), ids);
  };
  // eps well above float rounding of the gradients: with eps = 1e-8 a gradient component near zero
  // whose sign differs in the last bits between the devices would move by +-lr instead of ~0
  AdamWOptions adam;
  adam.lr = 1e-2;
  adam.eps = 1e-3;
  AdamW<float, cpu> opt_c({w1, b1, w2}, adam);
  AdamW<float, cuda> opt_g({g1, c1, g2}, adam);
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    opt_c.zero_grad();
    opt_g.zero_grad();
    const auto lc = net(x, y, w1, b1, w2);
    const auto lg = net(gpu(x), gpu(y), g1, c1, g2);
    CHECK_CLOSE(lg, lc, 1e-5);
    lc.backward();
    lg.backward();
    CHECK_CLOSE(g1.grad(), w1.grad(), 1e-4);
    CHECK_CLOSE(c1.grad(), b1.grad(), 1e-4);
    CHECK_CLOSE(g2.grad(), w2.grad(), 1e-4);
    opt_c.step();
    opt_g.step();
    CHECK_CLOSE(g1.detach(), w1.detach(), 1e-5);
    CHECK_CLOSE(g2.detach(), w2.detach(), 1e-5);
  }
}

TEST_CASE("cuda: random fills follow the CPU's counter-based generator") {
  // dropout masks are identical, element for element
  Generator gc(1234), gg(1234);
  const CpuF ones = CpuF::ones({1000, 37});
  const auto dc = dropout(ones, 0.3, gc);
  const auto dg = dropout(gpu(ones), 0.3, gg);
  CHECK(dg.to_vector() == dc.to_vector());
  // the generators advanced alike, so the next draws agree too
  CHECK(dropout(gpu(ones), 0.5, gg).to_vector() == dropout(ones, 0.5, gc).to_vector());
  // uniform and normal initialisation (normal through the device's log and cos: last-bit differences)
  Generator uc(99), ug(99);
  CHECK_CLOSE((rand<float, cuda>({5000}, ug, -2, 3)), (rand<float, cpu>({5000}, uc, -2, 3)), 1e-6);
  CHECK_CLOSE((randn<float, cuda>({5000}, ug, 1, 2)), (randn<float, cpu>({5000}, uc, 1, 2)), 1e-6);
  CHECK_CLOSE((randn<double, cuda>({5000}, ug)), (randn<double, cpu>({5000}, uc)), 1e-12);
}

TEST_CASE("cuda: the fused AdamW update on identical inputs") {
  Generator gen(11);
  const index_t n = 100003;
  const CpuF p = randn<float>({n}, gen), g = randn<float>({n}, gen), m = randn<float>({n}, gen, 0, 0.1);
  const CpuF v = rand<float>({n}, gen, 0, 0.01);
  std::vector<CpuF> cs{p.clone(), m.clone(), v.clone()};
  std::vector<GpuF> gs{gpu(p), gpu(m), gpu(v)};
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, bc1 = 0.271f, bc2s = 0.0773f;
  Backend<cpu>::adamw_step(cs[0].data(), g.data(), cs[1].data(), cs[2].data(), n, lr, b1, b2, eps, wd, bc1, bc2s);
  const GpuF gg = gpu(g);
  Backend<cuda>::adamw_step(gs[0].data(), gg.data(), gs[1].data(), gs[2].data(), n, lr, b1, b2, eps, wd, bc1, bc2s);
  CHECK_CLOSE(gs[0], cs[0], 1e-6);
  CHECK_CLOSE(gs[1], cs[1], 1e-6);
  CHECK_CLOSE(gs[2], cs[2], 1e-6);
}
