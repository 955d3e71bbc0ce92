// Every op's backward against central finite differences in float64, and the autograd semantics.
#include "support.hpp"

#include <algorithm>
#include <limits>

using namespace blip2;
using blip2::testing::gradcheck;
using blip2::testing::tensor;
using V = std::vector<Tensor<double>>;

namespace {
Tensor<double> rnd(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn<double>(s, g);
}
}  // namespace

TEST_CASE("gradients: elementwise with broadcasting") {
  gradcheck("add", {rnd({2, 3}, 1), rnd({3}, 2)}, [](const V& x) { return x[0] + x[1]; });
  gradcheck("sub", {rnd({2, 1}, 1), rnd({1, 3}, 2)}, [](const V& x) { return x[0] - x[1]; });
  gradcheck("mul", {rnd({2, 3, 4}, 1), rnd({3, 1}, 2)}, [](const V& x) { return x[0] * x[1]; });
  gradcheck("div", {rnd({2, 3}, 1), rnd({2, 3}, 2) * 0.1 + 2.0},
            [](const V& x) { return x[0] / x[1]; });
  gradcheck("scalar ops", {rnd({4}, 3)}, [](const V& x) { return (x[0] * 3.0 + 1.0) / 2.0 - 0.5; });
  const Tensor<double> positive = abs(rnd({5}, 4)) + 0.5;
  for (auto [name, op] : std::vector<std::pair<const char*, UnaryOp>>{
           {"neg", UnaryOp::neg}, {"exp", UnaryOp::exp}, {"tanh", UnaryOp::tanh}, {"gelu", UnaryOp::gelu_erf},
           {"gelu_tanh", UnaryOp::gelu_tanh}, {"silu", UnaryOp::silu}, {"sigmoid", UnaryOp::sigmoid},
           {"square", UnaryOp::square}, {"relu", UnaryOp::relu}, {"abs", UnaryOp::abs}}) {
    // 19 elements: whole SIMD vectors and a scalar tail, where a kernel has both.
    gradcheck(name, {rnd({19}, 5) + 0.01}, [op = op](const V& x) { return unary(op, x[0]); });
  }
  gradcheck("log", {positive.clone()}, [](const V& x) { return log(x[0]); });
  gradcheck("sqrt", {positive.clone()}, [](const V& x) { return sqrt(x[0]); });
  gradcheck("rsqrt", {positive.clone()}, [](const V& x) { return rsqrt(x[0]); });
  gradcheck("pow", {positive.clone()}, [](const V& x) { return pow(x[0], 1.7); });
  gradcheck("clamp_min", {rnd({6}, 6)}, [](const V& x) { return clamp_min(x[0], 0.1); });
}

TEST_CASE("gradients: views on non-contiguous tensors") {
  gradcheck("transpose+reshape", {rnd({2, 3, 4}, 1)},
            [](const V& x) { return x[0].transpose(0, 2).reshape({4, 6}) * rnd({4, 6}, 9); });
  gradcheck("permute", {rnd({2, 3, 4}, 1)}, [](const V& x) { return x[0].permute({1, 2, 0}) * rnd({3, 4, 2}, 8); });
  gradcheck("slice with step", {rnd({5, 4}, 2)}, [](const V& x) { return x[0].slice(0, 1, 5, 2).slice(1, 1, 3); });
  gradcheck("expand", {rnd({3, 1}, 3)}, [](const V& x) { return x[0].expand({2, 3, 4}) * rnd({2, 3, 4}, 7); });
  gradcheck("concat/split", {rnd({2, 2}, 4), rnd({2, 3}, 5)}, [](const V& x) {
    auto c = concat<double, cpu>({x[0], x[1], x[0]}, 1);
    return split(c, {3, 4}, 1)[1] * 2.0;
  });
  gradcheck("unsqueeze/squeeze/contiguous", {rnd({3, 2}, 6)},
            [](const V& x) { return x[0].unsqueeze(1).transpose(0, 2).contiguous().squeeze(1); });
}

TEST_CASE("gradients: reductions") {
  gradcheck("sum all", {rnd({3, 4}, 1)}, [](const V& x) { return sum(x[0]); });
  gradcheck("sum axes", {rnd({2, 3, 4}, 2)}, [](const V& x) { return sum(x[0], {0, 2}, true); });
  gradcheck("mean", {rnd({2, 3, 4}, 3)}, [](const V& x) { return mean(x[0], {-1}); });
  gradcheck("max", {rnd({3, 5}, 4)}, [](const V& x) { return max(x[0], {1}); });
  gradcheck("max of transposed", {rnd({3, 5}, 5)}, [](const V& x) { return max(x[0].transpose(0, 1), {0}); });
}

TEST_CASE("gradients: products") {
  gradcheck("matmul batched", {rnd({2, 3, 4}, 1), rnd({2, 4, 5}, 2)}, [](const V& x) { return matmul(x[0], x[1]); });
  gradcheck("matmul broadcast", {rnd({2, 3, 4}, 1), rnd({4, 2}, 2)}, [](const V& x) { return matmul(x[0], x[1]); });
  gradcheck("matmul transposed views", {rnd({4, 3}, 1), rnd({5, 4}, 2)},
            [](const V& x) { return matmul(x[0].transpose(0, 1), x[1].transpose(0, 1)); });
  gradcheck("linear", {rnd({2, 3, 4}, 3), rnd({5, 4}, 4), rnd({5}, 5)},
            [](const V& x) { return linear(x[0], x[1], x[2]); });
  gradcheck("patch_embed", {rnd({2, 2, 5, 4}, 6), rnd({3, 2, 2, 2}, 7), rnd({3}, 8)},
            [](const V& x) { return patch_embed(x[0], x[1], x[2]); });
}

TEST_CASE("gradients: softmax, norms, attention, losses") {
  const double inf = std::numeric_limits<double>::infinity();
  const auto mask = tensor<double>({3, 1, 4}, {0, 0, -inf, 0, 0, -inf, -inf, -inf, -inf, -inf, -inf, 0});
  gradcheck("softmax", {rnd({3, 5}, 1)}, [](const V& x) { return softmax(x[0]); });
  gradcheck("masked softmax incl. a fully masked row", {rnd({3, 2, 4}, 2)},
            [&](const V& x) { return softmax(x[0], mask); });
  // log-softmax is -inf at masked entries, so only whole rows are masked here (they give zeros)
  const auto row_mask = tensor<double>({2, 1}, {0, -inf});
  gradcheck("log_softmax with a fully masked row", {rnd({2, 4}, 3)}, [&](const V& x) { return log_softmax(x[0], row_mask); });
  gradcheck("layer_norm", {rnd({3, 6}, 4), rnd({6}, 5), rnd({6}, 6)},
            [](const V& x) { return layer_norm(x[0], x[1], x[2], 1e-5); });
  gradcheck("layer_norm no affine, transposed input", {rnd({6, 3}, 7)},
            [](const V& x) { return layer_norm(x[0].transpose(0, 1), Tensor<double>(), Tensor<double>(), 1e-5); });
  gradcheck("rms_norm", {rnd({4, 5}, 8), rnd({5}, 9)}, [](const V& x) { return rms_norm(x[0], x[1], 1e-6); });
  gradcheck("l2_normalize", {rnd({3, 4}, 10)}, [](const V& x) { return l2_normalize(x[0]); });
  gradcheck("attention causal + padding mask", {rnd({2, 2, 3, 4}, 11), rnd({2, 2, 3, 4}, 12), rnd({2, 2, 3, 2}, 13)},
            [](const V& x) {
              auto pad = Tensor<double>::zeros({2, 1, 1, 3});
              pad.data()[4] = -std::numeric_limits<double>::infinity();
              AttentionOptions opt;
              opt.causal = true;
              return scaled_dot_product_attention(x[0], x[1], x[2], pad, opt);
            });
  gradcheck("attention unscaled (T5)", {rnd({2, 3, 4}, 14), rnd({2, 5, 4}, 15), rnd({2, 5, 3}, 16)}, [](const V& x) {
    AttentionOptions opt;
    opt.scale = 1.0;
    return scaled_dot_product_attention(x[0], x[1], x[2], Tensor<double>(), opt);
  });
  const auto targets = Tensor<std::int64_t>::from_vector({2, 3}, {1, -100, 4, 0, 2, 2});
  gradcheck("cross_entropy ignore_index + smoothing", {rnd({2, 3, 5}, 17)},
            [&](const V& x) { return cross_entropy(x[0], targets, {-100, 0.1}); });
  const auto ids = Tensor<std::int64_t>::from_vector({2, 3}, {1, 3, 1, 0, 1, 2});
  gradcheck("embedding with repeated ids", {rnd({4, 3}, 18)}, [&](const V& x) { return embedding(x[0], ids); });
  gradcheck("index_select axis 1", {rnd({3, 4, 2}, 19)}, [](const V& x) {
    return index_select(x[0], 1, Tensor<std::int64_t>::from_vector({3}, {3, 0, 3}));
  });
  gradcheck("dropout", {rnd({20}, 20)}, [](const V& x) {
    Generator g(5);
    return dropout(x[0], 0.3, g);
  });
}

TEST_CASE("autograd semantics") {
  auto w = Tensor<double>::from_vector({2}, {1, 2}).requires_grad_();
  auto frozen = Tensor<double>::from_vector({2}, {3, 4});
  sum(w * frozen).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{3, 4});
  CHECK(!frozen.grad().defined());
  sum(w * frozen).backward();  // gradients accumulate
  CHECK(w.grad().to_vector() == std::vector<double>{6, 8});
  w.zero_grad();
  CHECK(!w.grad().defined());
  {
    NoGrad no_grad;
    auto y = w * frozen;
    CHECK(!y.requires_grad());
    CHECK(!y.grad_fn());
  }
  // the same tensor used twice: gradients from both uses add up
  auto y = w * w + w;
  sum(y).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{3, 5});
  CHECK_THROWS_AS((w * frozen).backward(), AutogradError);     // not a scalar
  CHECK_THROWS_AS(sum(frozen).backward(), AutogradError);      // no graph
  CHECK_THROWS_AS((w * frozen).requires_grad_(), AutogradError);  // not a leaf
  CHECK_THROWS_AS(w.to<float>(), AutogradError);               // not differentiable
  // frozen inputs record no graph at all
  auto f = linear(frozen.unsqueeze(0), Tensor<double>::ones({3, 2}));
  CHECK(!f.grad_fn());
  // gradients reach inputs through a frozen linear without touching the weight
  auto x = Tensor<double>::from_vector({1, 2}, {1, 1}).requires_grad_();
  auto wf = Tensor<double>::from_vector({1, 2}, {5, 7});
  sum(linear(x, wf)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5, 7});
  CHECK(!wf.grad().defined());
}

// ---- gradient checkpointing (autograd/checkpoint.hpp) ----
namespace {
using Fn = std::function<Tensor<double>(const V&)>;

// Parameters of a 2-layer MLP 4 -> 5 -> 3, leaves that require grad.
struct Mlp {
  Tensor<double> w1 = rnd({5, 4}, 31).requires_grad_(), b1 = rnd({5}, 32).requires_grad_();
  Tensor<double> w2 = rnd({3, 5}, 33).requires_grad_(), b2 = rnd({3}, 34).requires_grad_();
  V params() const { return {w1, b1, w2, b2}; }
  // Captures the parameters, as a model block's forward does.
  Fn block() const {
    return [*this](const V& x) { return linear(tanh(linear(x[0], w1, b1)), w2, b2); };
  }
  void zero_grad() const {
    for (const auto& p : params()) p.zero_grad();
  }
};

// Runs sum(loss(tensors) * fixed weights) backward and returns the gradients of `wrt` (cleared after).
V grads_of(const std::function<Tensor<double>()>& loss, const V& wrt) {
  const Tensor<double> out = loss();
  sum(out * rnd(out.shape(), 99)).backward();
  V g;
  for (const auto& t : wrt) {
    g.push_back(t.grad());
    t.zero_grad();
  }
  return g;
}

void check_same_grads(const V& a, const V& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("tensor " << i);
    REQUIRE(a[i].defined());
    REQUIRE(b[i].defined());
    CHECK(blip2::testing::max_abs_diff(a[i], b[i]) <= 1e-12);
  }
}
}  // namespace

TEST_CASE("checkpoint: MLP with captured parameters matches no checkpointing") {
  const Mlp mlp;
  const Fn f = mlp.block();
  const auto x = rnd({2, 4}, 30).requires_grad_();
  V wrt = mlp.params();
  wrt.push_back(x);
  const V plain = grads_of([&] { return f({x}); }, wrt);
  const V ckpt = grads_of(
      [&] {
        auto y = checkpoint(f, {x});
        CHECK(y.grad_fn());
        CHECK(std::string(y.grad_fn()->op) == "checkpoint");
        return y;
      },
      wrt);
  check_same_grads(plain, ckpt);
  // finite differences through checkpoint: inputs only, and parameters passed as inputs
  gradcheck("checkpoint(mlp)", {rnd({2, 4}, 35)}, [&](const V& in) { return checkpoint(f, in); });
  gradcheck("checkpoint(mlp) w.r.t. its weights", {rnd({2, 4}, 36), rnd({5, 4}, 37), rnd({5}, 38), rnd({3, 5}, 39)},
            [](const V& in) {
              return checkpoint<double, cpu>(
                  [](const V& a) { return linear(tanh(linear(a[0], a[1], a[2])), a[3]); }, in);
            });
  mlp.zero_grad();
  // f runs once without a graph, then once more with one during backward
  std::vector<bool> grad_mode_per_call;
  const Fn spy = [&](const V& in) {
    grad_mode_per_call.push_back(GradMode::enabled());
    return f(in);
  };
  auto z = checkpoint(spy, {x});
  CHECK(grad_mode_per_call == std::vector<bool>{false});
  sum(z).backward();
  CHECK(grad_mode_per_call == std::vector<bool>{false, true});
  CHECK(GradMode::enabled());  // EnableGrad and the nested backward's NoGrad both restore it
  mlp.zero_grad();
  // undefined entries in the input list get no gradient
  const auto x2 = rnd({2, 4}, 40).requires_grad_();
  auto y = checkpoint<double, cpu>([&](const V& in) { return f({in[0]}); }, {x2, Tensor<double>()});
  sum(y).backward();
  CHECK(x2.grad().defined());
  CHECK(mlp.w1.grad().defined());
}

TEST_CASE("OnLeafGradientReady: each leaf once, with its whole gradient; not inside a checkpointed segment") {
  const Mlp mlp;
  const auto x = rnd({2, 4}, 30).requires_grad_();
  const auto shared = rnd({3}, 42).requires_grad_();  // used twice: reported after both edges
  std::vector<std::pair<const void*, std::vector<double>>> reported;
  auto loss = [&](bool checkpointed) {
    const Fn f = mlp.block();
    const auto y = checkpointed ? checkpoint(f, {x}) : f({x});
    return sum((y + shared) * shared) + sum(exp(shared));
  };
  {
    autograd::OnLeafGradientReady<double, cpu> hook(
        [&](const Tensor<double>& leaf) { reported.push_back({&leaf.impl(), leaf.grad().to_vector()}); });
    loss(false).backward();
  }
  std::vector<const void*> order;
  for (const auto& [id, g] : reported) order.push_back(id);
  for (const auto& t : {mlp.w1, mlp.b1, mlp.w2, mlp.b2, x, shared}) {
    INFO(to_string(t.shape()));
    CHECK(std::count(order.begin(), order.end(), &t.impl()) == 1);
    for (const auto& [id, g] : reported)
      if (id == &t.impl()) CHECK(g == t.grad().to_vector());  // nothing was added after the report
  }
  CHECK(reported.size() == 6);
  // The last layer's weight is complete before the first layer's: the order an exchange can use.
  CHECK(std::find(order.begin(), order.end(), &mlp.w2.impl()) < std::find(order.begin(), order.end(), &mlp.w1.impl()));
  // Checkpointed: the segment's parameters get their gradient in a nested pass and are not reported;
  // no hook installed: nothing is reported.
  mlp.zero_grad();
  reported.clear();
  {
    autograd::OnLeafGradientReady<double, cpu> hook([&](const Tensor<double>& leaf) { reported.push_back({&leaf.impl(), {}}); });
    loss(true).backward();
  }
  CHECK(reported.size() == 2);  // x and shared
  loss(false).backward();
  CHECK(reported.size() == 2);
}

TEST_CASE("checkpoint: nested and chained checkpoints match no checkpointing") {
  const Mlp a, b, c;
  const Fn fa = a.block(), fb = b.block(), fc = c.block();
  // blocks map 4 -> 3; pad back to 4 features so they chain
  const auto pad = rnd({3, 4}, 41);
  auto chain = [&](const Fn& g) { return [g, pad](const V& x) { return matmul(g(x), pad); }; };
  const Fn ga = chain(fa), gb = chain(fb), gc = chain(fc);
  const auto x = rnd({2, 4}, 42).requires_grad_();
  V wrt = {x};
  for (const Mlp* m : {&a, &b, &c})
    for (const auto& p : m->params()) wrt.push_back(p);

  const V plain = grads_of([&] { return gc({gb({ga({x})})}); }, wrt);
  SUBCASE("a chain of three checkpointed blocks") {
    const V ckpt = grads_of([&] { return checkpoint(gc, {checkpoint(gb, {checkpoint(ga, {x})})}); }, wrt);
    check_same_grads(plain, ckpt);
  }
  SUBCASE("a checkpoint whose function uses checkpoints") {
    const Fn outer = [&](const V& in) { return checkpoint(gc, {gb({checkpoint(ga, in)})}); };
    const V ckpt = grads_of([&] { return checkpoint(outer, {x}); }, wrt);
    check_same_grads(plain, ckpt);
  }
}

TEST_CASE("checkpoint: an input used inside and outside accumulates both contributions") {
  const Mlp mlp;
  const Fn f = mlp.block();
  const auto x = rnd({2, 4}, 43).requires_grad_();
  const auto proj = rnd({4, 3}, 44);
  V wrt = mlp.params();
  wrt.push_back(x);
  const V plain = grads_of([&] { return f({x}) + matmul(x * x, proj); }, wrt);
  const V ckpt = grads_of([&] { return checkpoint(f, {x}) + matmul(x * x, proj); }, wrt);
  check_same_grads(plain, ckpt);
  // the same tensor twice in the input list
  const Fn twice = [&](const V& in) { return f({in[0] * in[1]}); };
  const V plain2 = grads_of([&] { return twice({x, x}); }, wrt);
  const V ckpt2 = grads_of([&] { return checkpoint(twice, {x, x}); }, wrt);
  check_same_grads(plain2, ckpt2);
}

TEST_CASE("checkpoint: under NoGrad it only runs f") {
  const Mlp mlp;
  const Fn f = mlp.block();
  const auto x = rnd({2, 4}, 45).requires_grad_();
  NoGrad no_grad;
  const auto y = checkpoint(f, {x});
  CHECK(!y.grad_fn());
  CHECK(!y.requires_grad());
  CHECK(blip2::testing::max_abs_diff(y, f({x})) == 0);
}

TEST_CASE("checkpoint: captured parameters get gradients when no input requires grad") {
  const Mlp mlp;
  const Fn f = mlp.block();
  const auto x = rnd({2, 4}, 46);  // frozen input, e.g. embeddings of a frozen encoder
  const V plain = grads_of([&] { return f({x}); }, mlp.params());
  const V ckpt = grads_of(
      [&] {
        auto y = checkpoint(f, {x});
        CHECK(y.requires_grad());
        return y;
      },
      mlp.params());
  check_same_grads(plain, ckpt);
  CHECK(!x.grad().defined());
  // nothing at all needs a gradient: the node is there, but backward sends nothing and the
  // parameters stay untouched
  const auto frozen = rnd({4, 4}, 47);
  auto y = checkpoint<double, cpu>([&](const V& in) { return matmul(in[0], frozen); }, {x});
  sum(y).backward();
  CHECK(!x.grad().defined());
  CHECK(!frozen.grad().defined());
  // f returning its input unchanged leaves that input as it was (the node sits on a new handle)
  const auto w = rnd({3}, 48).requires_grad_();
  auto same = checkpoint<double, cpu>([](const V& in) { return in[0]; }, {w});
  CHECK(!w.grad_fn());
  sum(same * 2.0).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{2, 2, 2});
}
