#pragma once
// Reductions along axes: sum, mean, max (max sends its gradient to the maxima, split evenly among
// ties, as torch.amax does).
#include "elementwise.hpp"

namespace blip2 {

namespace detail {
inline std::vector<std::size_t> reduction_axes(const std::vector<index_t>& axes, std::size_t rank, const char* op) {
  std::vector<std::size_t> out;
  if (axes.empty())
    for (std::size_t i = 0; i < rank; ++i) out.push_back(i);
  for (index_t a : axes) out.push_back(normalize_axis(a, rank, op));
  std::sort(out.begin(), out.end());
  BLIP2_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), ValueError, op, ": repeated axis");
  return out;
}

inline Shape reduced_shape(const Shape& s, const std::vector<std::size_t>& axes, bool keepdim) {
  Shape out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

template <class T, class D>
Tensor<T, D> reduce_raw(ReduceOp op, const Tensor<T, D>& x, const std::vector<std::size_t>& axes) {
  Tensor<T, D> r = x;
  for (std::size_t a : axes) r = reduce_axis(op, r, a);
  return r;  // reduced axes kept with size 1
}
}  // namespace detail

// Sum over `axes` (all axes when empty).
template <class T, class D>
Tensor<T, D> sum(const Tensor<T, D>& x, const std::vector<index_t>& axes = {}, bool keepdim = false) {
  static_assert(is_compute_v<T>, "sum: compute in float32/float64");
  const auto ax = detail::reduction_axes(axes, x.shape().size(), "sum");
  const Shape kept = detail::reduced_shape(x.shape(), ax, true);
  Tensor<T, D> out = detail::reduce_raw(ReduceOp::sum, x, ax).reshape(detail::reduced_shape(x.shape(), ax, keepdim));
  if (!autograd::needs_grad<T, D>({&x})) return out;
  const Shape full = x.shape();
  return autograd::record<T, D>("sum", out, {x}, [kept, full](const Tensor<T, D>& g) {
    return std::vector<Tensor<T, D>>{g.reshape(kept).expand(full).contiguous()};
  });
}

template <class T, class D>
Tensor<T, D> mean(const Tensor<T, D>& x, const std::vector<index_t>& axes = {}, bool keepdim = false) {
  const auto ax = detail::reduction_axes(axes, x.shape().size(), "mean");
  index_t n = 1;
  for (std::size_t a : ax) n *= x.shape()[a];
  return sum(x, axes, keepdim) * T(T(1) / T(std::max<index_t>(n, 1)));
}

template <class T, class D>
Tensor<T, D> max(const Tensor<T, D>& x, const std::vector<index_t>& axes = {}, bool keepdim = false) {
  static_assert(is_compute_v<T>, "max: compute in float32/float64");
  BLIP2_CHECK(x.numel() > 0, ShapeError, "max: empty tensor of shape ", to_string(x.shape()));
  const auto ax = detail::reduction_axes(axes, x.shape().size(), "max");
  const Tensor<T, D> kept = detail::reduce_raw(ReduceOp::max, x, ax);
  Tensor<T, D> out = kept.reshape(detail::reduced_shape(x.shape(), ax, keepdim));
  if (!autograd::needs_grad<T, D>({&x})) return out;
  const Tensor<T, D> xs = x.detach(), ks = kept.detach();
  return autograd::record<T, D>("max", out, {x}, [xs, ks, ax](const Tensor<T, D>& g) {
    const auto hit = detail::binary_raw(BinaryOp::eq, xs, ks, "max");
    const auto count = detail::reduce_raw(ReduceOp::sum, hit, ax);
    const auto share = detail::binary_raw(BinaryOp::div, g.reshape(ks.shape()), count, "max");
    return std::vector<Tensor<T, D>>{detail::binary_raw(BinaryOp::mul, hit, share, "max")};
  });
}

}  // namespace blip2
