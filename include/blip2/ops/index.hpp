#pragma once
// Gathering along an axis: index_select and embedding lookup, whose backward scatter-adds (repeated
// ids accumulate).
#include "view.hpp"

namespace blip2 {

using IdTensor = Tensor<std::int64_t, cpu>;

namespace detail {
template <class D>
void check_indices(const Tensor<std::int64_t, D>& idx, index_t len, const char* op, const char* what) {
  const index_t bad = Backend<D>::find_out_of_range(idx.data(), idx.numel(), len);
  if (bad < 0) return;
  std::int64_t value = 0;
  Backend<D>::copy_to_host(&value, idx.data() + bad, 1);
  throw ValueError(detail::cat(op, ": ", what, " ", value, " at position ", bad, " is outside [0, ", len, ")"));
}
}  // namespace detail

// out = x.index_select(axis, idx): out.shape[axis] = idx.numel().
template <class T, class D>
Tensor<T, D> index_select(const Tensor<T, D>& x, index_t axis_in, const Tensor<std::int64_t, D>& idx) {
  const std::size_t axis = normalize_axis(axis_in, x.shape().size(), "index_select");
  BLIP2_CHECK(idx.dim() <= 1, ShapeError, "index_select: indices must be 1-d, got ", to_string(idx.shape()));
  const Tensor<std::int64_t, D> ic = idx.contiguous();
  const Shape& s = x.shape();
  detail::check_indices(ic, s[axis], "index_select", "index");
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  Shape out_shape = s;
  out_shape[axis] = ic.numel();
  const Tensor<T, D> xc = x.contiguous();
  auto out = Tensor<T, D>::empty(out_shape);
  Backend<D>::index_select(xc.data(), ic.data(), ic.numel(), out.data(), outer, s[axis], inner);
  if (!autograd::needs_grad<T, D>({&x})) return out;
  return autograd::record<T, D>("index_select", out, {x}, [s, ic, outer, inner, axis](const Tensor<T, D>& g) {
    const Tensor<T, D> gc = g.contiguous();
    auto gx = Tensor<T, D>::zeros(s);
    Backend<D>::index_add(gx.data(), ic.data(), ic.numel(), gc.data(), outer, s[axis], inner);
    return std::vector<Tensor<T, D>>{gx};
  });
}

// Rows of `table` [vocab, dim] for every id: ids [...] -> [..., dim]. An id outside the vocabulary is
// a ValueError naming the id and its position.
template <class T, class D>
Tensor<T, D> embedding(const Tensor<T, D>& table, const Tensor<std::int64_t, D>& ids) {
  BLIP2_CHECK(table.dim() == 2, ShapeError, "embedding: table must be [vocab, dim], got ", to_string(table.shape()));
  const Tensor<std::int64_t, D> flat = ids.contiguous().reshape({ids.numel()});
  detail::check_indices(flat, table.shape()[0], "embedding", "token id");
  Shape out_shape = ids.shape();
  out_shape.push_back(table.shape()[1]);
  return index_select(table, 0, flat).reshape(out_shape);
}

}  // namespace blip2
