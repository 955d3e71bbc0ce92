#pragma once
// Row softmax / log-softmax over the last axis. Entries at or below kernel::kMaskedBelow count as
// masked; a row with every entry masked gives zeros (never NaN).
#include <cmath>
#include <limits>

#include "../kernel_ops.hpp"
#include "simd.hpp"

namespace blip2::cpu_kernel {

template <class T>
void softmax(const T* x, T* y, index_t rows, index_t cols, bool log) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  parallel_for(rows, std::max<index_t>(1, 8192 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      V vmax(-std::numeric_limits<T>::infinity());
      index_t i = 0;
      for (; i + W <= cols; i += W) vmax = xsimd::max(vmax, V::load_unaligned(xr + i));
      T m = hmax(vmax);
      for (; i < cols; ++i) m = xr[i] > m ? xr[i] : m;
      if (!(m > kernel::kMaskedBelow<T>)) {
        std::fill(yr, yr + cols, T(0));
        continue;
      }
      V vsum(T(0));
      const V vm(m);
      for (i = 0; i + W <= cols; i += W) {
        const V e = xsimd::exp(V::load_unaligned(xr + i) - vm);
        if (!log) e.store_unaligned(yr + i);
        vsum += e;
      }
      T sum = xsimd::hadd(vsum);
      for (; i < cols; ++i) {
        const T e = std::exp(xr[i] - m);
        if (!log) yr[i] = e;
        sum += e;
      }
      if (log) {
        const T shift = m + std::log(sum);
        for (i = 0; i < cols; ++i) yr[i] = xr[i] - shift;
      } else {
        const T inv = T(1) / sum;
        for (i = 0; i < cols; ++i) yr[i] *= inv;
      }
    }
  });
}

// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy).
// Fully masked rows (y all zero for softmax) get zero gradient either way.
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, index_t rows, index_t cols, bool log) {
  parallel_for(rows, std::max<index_t>(1, 8192 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* yr = y + r * cols;
      const T* gr = gy + r * cols;
      T* out = gx + r * cols;
      T dot = 0;
      bool all_zero = true;
      for (index_t i = 0; i < cols; ++i) {
        dot += log ? gr[i] : gr[i] * yr[i];
        all_zero = all_zero && yr[i] == T(0);
      }
      if (log && all_zero) {
        std::fill(out, out + cols, T(0));
        continue;
      }
      for (index_t i = 0; i < cols; ++i) out[i] = log ? gr[i] - std::exp(yr[i]) * dot : yr[i] * (gr[i] - dot);
    }
  });
}

}  // namespace blip2::cpu_kernel
