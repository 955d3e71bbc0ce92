#pragma once
// xsimd helpers: vector loops with a scalar tail, and horizontal reductions.
#include <xsimd/xsimd.hpp>

#include "../../core/shape.hpp"

namespace blip2::cpu_kernel {

template <class T> using simd = xsimd::batch<T>;
template <class T> inline constexpr index_t simd_width = index_t(xsimd::batch<T>::size);

template <class T>
inline T hmax(const simd<T>& v) {
  alignas(64) T lanes[simd<T>::size];
  v.store_aligned(lanes);
  T m = lanes[0];
  for (std::size_t i = 1; i < simd<T>::size; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

// y[i] = vf(x[i]) over whole vectors, sf on the tail.
template <class T, class VF, class SF>
inline void map1(index_t n, const T* x, T* y, VF&& vf, SF&& sf) {
  constexpr index_t W = simd_width<T>;
  index_t i = 0;
  for (; i + W <= n; i += W) vf(simd<T>::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = sf(x[i]);
}

}  // namespace blip2::cpu_kernel
