#pragma once
// Tensors filled with seeded random values or ranges.
#include "../core/random.hpp"
#include "convert.hpp"

namespace blip2 {

template <class T, class D = cpu>
Tensor<T, D> randn(const Shape& shape, Generator& gen, double mean = 0.0, double stddev = 1.0) {
  auto t = Tensor<compute_t<T>, D>::empty(shape);
  Backend<D>::fill_normal(t.data(), t.numel(), gen.seed(), gen.next_block(std::uint64_t(t.numel())), mean, stddev);
  if constexpr (std::is_same_v<T, compute_t<T>>) return t;
  else return t.template to<T>();
}

template <class T, class D = cpu>
Tensor<T, D> rand(const Shape& shape, Generator& gen, double lo = 0.0, double hi = 1.0) {
  auto t = Tensor<compute_t<T>, D>::empty(shape);
  Backend<D>::fill_uniform(t.data(), t.numel(), gen.seed(), gen.next_block(std::uint64_t(t.numel())), lo, hi);
  if constexpr (std::is_same_v<T, compute_t<T>>) return t;
  else return t.template to<T>();
}

// 0, 1, ..., n-1.
template <class T, class D = cpu>
Tensor<T, D> arange(index_t n) {
  std::vector<T> v(std::size_t(std::max<index_t>(n, 0)));
  for (index_t i = 0; i < n; ++i) v[std::size_t(i)] = convert_scalar<T>(i);
  return Tensor<T, D>::from_vector({index_t(v.size())}, v);
}

}  // namespace blip2
