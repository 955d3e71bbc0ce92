#pragma once
// Reductions over the middle axis of a contiguous [outer, len, inner] block into [outer, inner].
#include <limits>

#include "../kernel_ops.hpp"
#include "simd.hpp"

namespace blip2::cpu_kernel {

template <class T>
void reduce(ReduceOp op, const T* x, T* y, index_t outer, index_t len, index_t inner) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  const bool is_max = op == ReduceOp::max;
  const T init = is_max ? -std::numeric_limits<T>::infinity() : T(0);
  if (inner == 1) {  // rows: vector accumulate along the row
    parallel_for(outer, std::max<index_t>(1, 16384 / std::max<index_t>(len, 1)), [&](index_t lo, index_t hi) {
      for (index_t o = lo; o < hi; ++o) {
        const T* row = x + o * len;
        V acc(init);
        index_t i = 0;
        for (; i + W <= len; i += W) {
          const V v = V::load_unaligned(row + i);
          acc = is_max ? xsimd::max(acc, v) : acc + v;
        }
        T r = is_max ? hmax(acc) : xsimd::hadd(acc);
        for (; i < len; ++i) r = is_max ? (row[i] > r ? row[i] : r) : r + row[i];
        y[o] = r;
      }
    });
    return;
  }
  // columns: accumulate whole rows of `inner` elements
  parallel_for(outer * inner, 16384, [&](index_t lo, index_t hi) {
    for (index_t idx = lo; idx < hi;) {
      const index_t o = idx / inner, c0 = idx % inner, c1 = std::min(inner, c0 + (hi - idx));
      T* out = y + o * inner;
      for (index_t c = c0; c < c1; ++c) out[c] = init;
      for (index_t l = 0; l < len; ++l) {
        const T* row = x + (o * len + l) * inner;
        for (index_t c = c0; c < c1; ++c) out[c] = is_max ? (row[c] > out[c] ? row[c] : out[c]) : out[c] + row[c];
      }
      idx += c1 - c0;
    }
  });
}

}  // namespace blip2::cpu_kernel
