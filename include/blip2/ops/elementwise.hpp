#pragma once
// Elementwise ops with autograd: unary functions, scalar arithmetic, and broadcasting binary
// arithmetic (+ - * /), plus the in-place updates optimizers use (no graph).
#include "view.hpp"

namespace blip2 {

namespace detail {
template <class T, class D>
Tensor<T, D> unary_raw(UnaryOp op, const Tensor<T, D>& x, T a) {
  static_assert(is_compute_v<T>, "elementwise ops compute in float32/float64; convert with to<float>() first");
  const Tensor<T, D> c = x.contiguous();
  auto y = Tensor<T, D>::empty(x.shape());
  Backend<D>::unary(op, c.data(), y.data(), c.numel(), a);
  return y;
}

template <class T, class D>
Tensor<T, D> binary_raw(BinaryOp op, const Tensor<T, D>& a, const Tensor<T, D>& b, const char* name) {
  static_assert(is_compute_v<T>, "elementwise ops compute in float32/float64; convert with to<float>() first");
  const Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  auto out = Tensor<T, D>::empty(s);
  Backend<D>::binary(op, a.data(), broadcast_strides(a.shape(), a.strides(), s), b.data(),
                     broadcast_strides(b.shape(), b.strides(), s), out.data(), s);
  return out;
}
}  // namespace detail

// y = op(x; a), differentiable.
template <class T, class D>
Tensor<T, D> unary(UnaryOp op, const Tensor<T, D>& x, T a = T(0)) {
  Tensor<T, D> y = detail::unary_raw(op, x, a);
  if (!autograd::needs_grad<T, D>({&x})) return y;
  const Tensor<T, D> xs = x.contiguous().detach(), ys = y.detach();
  return autograd::record<T, D>("unary", y, {x}, [op, a, xs, ys](const Tensor<T, D>& g) {
    const Tensor<T, D> gc = g.contiguous();
    auto gx = Tensor<T, D>::empty(xs.shape());
    Backend<D>::unary_backward(op, xs.data(), ys.data(), gc.data(), gx.data(), xs.numel(), a);
    return std::vector<Tensor<T, D>>{gx};
  });
}

template <class T, class D> Tensor<T, D> neg(const Tensor<T, D>& x) { return unary(UnaryOp::neg, x); }
template <class T, class D> Tensor<T, D> exp(const Tensor<T, D>& x) { return unary(UnaryOp::exp, x); }
template <class T, class D> Tensor<T, D> log(const Tensor<T, D>& x) { return unary(UnaryOp::log, x); }
template <class T, class D> Tensor<T, D> tanh(const Tensor<T, D>& x) { return unary(UnaryOp::tanh, x); }
template <class T, class D> Tensor<T, D> relu(const Tensor<T, D>& x) { return unary(UnaryOp::relu, x); }
// GELU with the exact erf form (BERT, ViT, Flan-T5 "gelu").
template <class T, class D> Tensor<T, D> gelu(const Tensor<T, D>& x) { return unary(UnaryOp::gelu_erf, x); }
// GELU with the tanh approximation ("gelu_new", "gelu_pytorch_tanh").
template <class T, class D> Tensor<T, D> gelu_tanh(const Tensor<T, D>& x) { return unary(UnaryOp::gelu_tanh, x); }
template <class T, class D> Tensor<T, D> silu(const Tensor<T, D>& x) { return unary(UnaryOp::silu, x); }
template <class T, class D> Tensor<T, D> sigmoid(const Tensor<T, D>& x) { return unary(UnaryOp::sigmoid, x); }
template <class T, class D> Tensor<T, D> sqrt(const Tensor<T, D>& x) { return unary(UnaryOp::sqrt, x); }
template <class T, class D> Tensor<T, D> rsqrt(const Tensor<T, D>& x) { return unary(UnaryOp::rsqrt, x); }
template <class T, class D> Tensor<T, D> square(const Tensor<T, D>& x) { return unary(UnaryOp::square, x); }
template <class T, class D> Tensor<T, D> abs(const Tensor<T, D>& x) { return unary(UnaryOp::abs, x); }
template <class T, class D> Tensor<T, D> pow(const Tensor<T, D>& x, T p) { return unary(UnaryOp::pow_scalar, x, p); }
template <class T, class D> Tensor<T, D> clamp_min(const Tensor<T, D>& x, T lo) { return unary(UnaryOp::clamp_min, x, lo); }

// Broadcasting a op b, differentiable in both.
template <class T, class D>
Tensor<T, D> binary(BinaryOp op, const Tensor<T, D>& a, const Tensor<T, D>& b) {
  static const char* names[] = {"add", "sub", "mul", "div", "eq"};
  Tensor<T, D> out = detail::binary_raw(op, a, b, names[int(op)]);
  if (op == BinaryOp::eq || !autograd::needs_grad<T, D>({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  // Keep only what the backward reads: a product needs the other factor, a quotient both.
  const Tensor<T, D> as = (op == BinaryOp::mul && gb) || (op == BinaryOp::div && gb) ? a.detach() : Tensor<T, D>();
  const Tensor<T, D> bs = (op == BinaryOp::mul && ga) || op == BinaryOp::div ? b.detach() : Tensor<T, D>();
  const Shape sa = a.shape(), sb = b.shape();
  return autograd::record<T, D>(names[int(op)], out, {a, b}, [op, ga, gb, as, bs, sa, sb](const Tensor<T, D>& g) {
    Tensor<T, D> da, db;
    switch (op) {
      case BinaryOp::add:
        if (ga) da = g;
        if (gb) db = g;
        break;
      case BinaryOp::sub:
        if (ga) da = g;
        if (gb) db = neg(g);
        break;
      case BinaryOp::mul:
        if (ga) da = detail::binary_raw(BinaryOp::mul, g, bs, "mul");
        if (gb) db = detail::binary_raw(BinaryOp::mul, g, as, "mul");
        break;
      case BinaryOp::div:
        if (ga) da = detail::binary_raw(BinaryOp::div, g, bs, "div");
        if (gb) {  // -g * a / b^2
          const auto q = detail::binary_raw(BinaryOp::div, detail::binary_raw(BinaryOp::mul, g, as, "mul"), bs, "div");
          db = neg(detail::binary_raw(BinaryOp::div, q, bs, "div"));
        }
        break;
      case BinaryOp::eq: break;
    }
    return std::vector<Tensor<T, D>>{da.defined() ? detail::sum_to(da, sa) : da,
                                     db.defined() ? detail::sum_to(db, sb) : db};
  });
}

template <class T, class D> Tensor<T, D> add(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(BinaryOp::add, a, b); }
template <class T, class D> Tensor<T, D> sub(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(BinaryOp::sub, a, b); }
template <class T, class D> Tensor<T, D> mul(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(BinaryOp::mul, a, b); }
template <class T, class D> Tensor<T, D> div(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(BinaryOp::div, a, b); }

template <class T, class D> Tensor<T, D> operator+(const Tensor<T, D>& a, const Tensor<T, D>& b) { return add(a, b); }
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& a, const Tensor<T, D>& b) { return sub(a, b); }
template <class T, class D> Tensor<T, D> operator*(const Tensor<T, D>& a, const Tensor<T, D>& b) { return mul(a, b); }
template <class T, class D> Tensor<T, D> operator/(const Tensor<T, D>& a, const Tensor<T, D>& b) { return div(a, b); }
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& x) { return neg(x); }
template <class T, class D> Tensor<T, D> operator+(const Tensor<T, D>& x, T s) { return unary(UnaryOp::add_scalar, x, s); }
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& x, T s) { return unary(UnaryOp::add_scalar, x, T(-s)); }
template <class T, class D> Tensor<T, D> operator*(const Tensor<T, D>& x, T s) { return unary(UnaryOp::mul_scalar, x, s); }
template <class T, class D> Tensor<T, D> operator/(const Tensor<T, D>& x, T s) { return unary(UnaryOp::mul_scalar, x, T(T(1) / s)); }
template <class T, class D> Tensor<T, D> operator*(T s, const Tensor<T, D>& x) { return x * s; }
template <class T, class D> Tensor<T, D> operator+(T s, const Tensor<T, D>& x) { return x + s; }

// ---- in place, outside autograd (optimizers, gradient accumulation) ----

// dst += src (src broadcast to dst's shape); dst must be contiguous.
template <class T, class D>
void add_(const Tensor<T, D>& dst, const Tensor<T, D>& src) {
  BLIP2_CHECK(dst.is_contiguous(), ValueError, "add_: destination of shape ", to_string(dst.shape()), " is not contiguous");
  BLIP2_CHECK(broadcast_shapes(dst.shape(), src.shape(), "add_") == dst.shape(), ShapeError, "add_: cannot add ",
              to_string(src.shape()), " into ", to_string(dst.shape()));
  Backend<D>::binary(BinaryOp::add, dst.data(), dst.strides(), src.data(),
                     broadcast_strides(src.shape(), src.strides(), dst.shape()), dst.data(), dst.shape());
}

// dst = src (broadcast to dst's shape), any strides.
template <class T, class D>
void copy_(const Tensor<T, D>& dst, const Tensor<T, D>& src) {
  BLIP2_CHECK(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(), ShapeError, "copy_: cannot copy ",
              to_string(src.shape()), " into ", to_string(dst.shape()));
  Backend<D>::copy(src.data(), broadcast_strides(src.shape(), src.strides(), dst.shape()), dst.data(), dst.strides(),
                   dst.shape());
}

}  // namespace blip2

// Tensor::backward() is defined by the engine, which needs add(); every op header reaches it here.
#include "../autograd/engine.hpp"
