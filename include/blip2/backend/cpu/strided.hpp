#pragma once
// Iteration over K strided operands of one shape: dimensions that are contiguous for every operand
// are merged, then f(offsets, n, inner_strides) is called once per innermost row, rows in parallel.
#include <array>

#include "../../core/shape.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

template <std::size_t K, class F>
void for_each_strided(const Shape& shape, const std::array<Strides, K>& strides, F&& f) {
  Shape s;
  std::array<Strides, K> st;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) return;
    if (shape[i] == 1) continue;
    bool merge = !s.empty();
    for (std::size_t k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][i] * shape[i];
    if (merge) {
      s.back() *= shape[i];
      for (std::size_t k = 0; k < K; ++k) st[k].back() = strides[k][i];
    } else {
      s.push_back(shape[i]);
      for (std::size_t k = 0; k < K; ++k) st[k].push_back(strides[k][i]);
    }
  }
  std::array<index_t, K> inner_stride{};
  if (s.empty()) {  // a single element
    f(std::array<index_t, K>{}, index_t(1), inner_stride);
    return;
  }
  const index_t inner = s.back();
  for (std::size_t k = 0; k < K; ++k) inner_stride[k] = st[k].back();
  const std::size_t outer_dims = s.size() - 1;
  index_t rows = 1;
  for (std::size_t i = 0; i < outer_dims; ++i) rows *= s[i];
  parallel_for(rows, std::max<index_t>(1, 32768 / inner), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      std::array<index_t, K> off{};
      index_t rem = r;
      for (std::size_t i = outer_dims; i-- > 0;) {
        const index_t c = rem % s[i];
        rem /= s[i];
        for (std::size_t k = 0; k < K; ++k) off[k] += c * st[k][i];
      }
      f(off, inner, inner_stride);
    }
  });
}

}  // namespace blip2::cpu_kernel
