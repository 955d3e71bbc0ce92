#pragma once
// Gathering along an axis: index_select and embedding lookup, whose backward scatter-adds (repeated
// ids accumulate).
#include "elementwise.hpp"

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

namespace detail {
// index_select whose backward ignores positions holding `skip` (an embedding's padding_idx).
template <class T, class D>
Tensor<T, D> index_select_impl(const Tensor<T, D>& x, index_t axis_in, const Tensor<std::int64_t, D>& idx,
                               std::int64_t skip) {
  const std::size_t axis = normalize_axis(axis_in, x.shape().size(), "index_select");
  BLIP2_CHECK(idx.dim() <= 1, ShapeError, "index_select: indices must be 1-d, got ", to_string(idx.shape()));
  const Tensor<std::int64_t, D> ic = idx.contiguous();
  const Shape& s = x.shape();
  check_indices(ic, s[axis], "index_select", "index");
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  Shape out_shape = s;
  out_shape[axis] = ic.numel();
  const Tensor<T, D> xc = x.contiguous();
  auto out = Tensor<T, D>::empty(out_shape);
  Backend<D>::index_select(xc.data(), ic.data(), ic.numel(), out.data(), outer, s[axis], inner);
  if constexpr (is_compute_v<T>) {
    if (!autograd::needs_grad<T, D>({&x})) return out;
    Tensor<T, D> keep;  // [1, n, 1]: 0 where the index is `skip`
    if (skip >= 0) {
      const auto iv = ic.template to<cpu>().to_vector();
      std::vector<T> k(iv.size());
      for (std::size_t j = 0; j < iv.size(); ++j) k[j] = iv[j] == skip ? T(0) : T(1);
      keep = Tensor<T, D>::from_vector({1, ic.numel(), 1}, k);
    }
    return autograd::record<T, D>("index_select", out, {x}, [s, ic, outer, inner, axis, keep](const Tensor<T, D>& g) {
      Tensor<T, D> gc = g.contiguous();
      if (keep.defined()) gc = binary_raw(BinaryOp::mul, gc.reshape({outer, ic.numel(), inner}), keep, "index_select");
      auto gx = Tensor<T, D>::zeros(s);
      Backend<D>::index_add(gx.data(), ic.data(), ic.numel(), gc.data(), outer, s[axis], inner);
      return std::vector<Tensor<T, D>>{gx};
    });
  } else {
    (void)skip;
    return out;  // storage types (bf16/f16 tables) take no gradient
  }
}
}  // namespace detail

// out = x.index_select(axis, idx): out.shape[axis] = idx.numel().
template <class T, class D>
Tensor<T, D> index_select(const Tensor<T, D>& x, index_t axis, const Tensor<std::int64_t, D>& idx) {
  return detail::index_select_impl(x, axis, idx, -1);
}

// Rows of `table` [vocab, dim] for every id: ids [...] -> [..., dim]. An id outside the vocabulary is
// a ValueError naming the id and its position. Lookups of `padding_idx` (if >= 0) send no gradient
// to the table, as torch.nn.Embedding(padding_idx=...) does.
template <class T, class D>
Tensor<T, D> embedding(const Tensor<T, D>& table, const Tensor<std::int64_t, D>& ids, std::int64_t padding_idx = -1) {
  BLIP2_CHECK(table.dim() == 2, ShapeError, "embedding: table must be [vocab, dim], got ", to_string(table.shape()));
  const Tensor<std::int64_t, D> flat = ids.contiguous().reshape({ids.numel()});
  detail::check_indices(flat, table.shape()[0], "embedding", "token id");
  Shape out_shape = ids.shape();
  out_shape.push_back(table.shape()[1]);
  return detail::index_select_impl(table, 0, flat, padding_idx).reshape(out_shape);
}

}  // namespace blip2
