#pragma once
// Softmax and log-softmax over the last axis, with an optional additive mask broadcast to the input
// (0 keeps an entry; -inf or anything <= -1e30, such as finfo.min, masks it). Rows whose entries are
// all masked give zeros, never NaN.
#include "elementwise.hpp"

namespace blip2 {

namespace detail {
template <class T, class D>
Tensor<T, D> softmax_impl(const Tensor<T, D>& x, const Tensor<T, D>& mask, bool log) {
  static_assert(is_compute_v<T>, "softmax: compute in float32/float64");
  BLIP2_CHECK(x.dim() >= 1, ShapeError, "softmax: input must have at least one axis");
  Tensor<T, D> z = x;
  if (mask.defined()) {
    BLIP2_CHECK(broadcast_shapes(x.shape(), mask.shape(), "softmax mask") == x.shape(), ShapeError,
                "softmax: mask ", to_string(mask.shape()), " does not broadcast to scores ", to_string(x.shape()));
    z = add(x, mask);
  }
  const Tensor<T, D> zc = z.contiguous();
  auto y = Tensor<T, D>::empty(x.shape());
  const index_t cols = x.shape().back(), rows = cols ? x.numel() / cols : 0;
  Backend<D>::softmax(zc.data(), y.data(), rows, cols, log);
  if (!autograd::needs_grad<T, D>({&zc})) return y;
  const Tensor<T, D> ys = y.detach();
  return autograd::record<T, D>(log ? "log_softmax" : "softmax", y, {zc}, [ys, rows, cols, log](const Tensor<T, D>& g) {
    const Tensor<T, D> gc = g.contiguous();
    auto gx = Tensor<T, D>::empty(ys.shape());
    Backend<D>::softmax_backward(ys.data(), gc.data(), gx.data(), rows, cols, log);
    return std::vector<Tensor<T, D>>{gx};
  });
}
}  // namespace detail

template <class T, class D>
Tensor<T, D> softmax(const Tensor<T, D>& x, const Tensor<T, D>& mask = Tensor<T, D>()) {
  return detail::softmax_impl(x, mask, false);
}
template <class T, class D>
Tensor<T, D> log_softmax(const Tensor<T, D>& x, const Tensor<T, D>& mask = Tensor<T, D>()) {
  return detail::softmax_impl(x, mask, true);
}

}  // namespace blip2
