#pragma once
// Sums a gradient down to the shape it was broadcast from (the backward of broadcasting). No graph.
#include "convert.hpp"

namespace blip2::detail {

// Sums `t` over axis (kept as size 1); t need not be contiguous.
template <class T, class D>
Tensor<T, D> reduce_axis(ReduceOp op, const Tensor<T, D>& t, std::size_t axis) {
  const Tensor<T, D> c = t.contiguous();
  const Shape& s = c.shape();
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  Shape out_shape = s;
  out_shape[axis] = 1;
  auto out = Tensor<T, D>::empty(out_shape);
  Backend<D>::reduce(op, c.data(), out.data(), outer, s[axis], inner);
  return out;
}

template <class T, class D>
Tensor<T, D> sum_to(const Tensor<T, D>& g, const Shape& target) {
  if (g.shape() == target) return g;
  Tensor<T, D> r = g;
  const std::size_t lead = g.shape().size() - target.size();
  for (std::size_t i = 0; i < g.shape().size(); ++i) {
    const bool broadcast = i < lead || (target[i - lead] == 1 && g.shape()[i] != 1);
    if (broadcast) r = reduce_axis(ReduceOp::sum, r, i);
  }
  return r.contiguous().reshape(target);
}

}  // namespace blip2::detail
