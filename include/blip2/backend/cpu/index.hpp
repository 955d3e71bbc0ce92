#pragma once
// Gather and scatter-add of slices along one axis of a contiguous [outer, len, inner] block
// (index_select / embedding lookup, and their backward).
#include <cstring>

#include "../../core/error.hpp"
#include "../../core/shape.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

// out[o, j, :] = src[o, idx[j], :]. Indices must already be validated (see ops/index.hpp).
template <class T>
void index_select(const T* src, const std::int64_t* idx, index_t n, T* out, index_t outer, index_t len, index_t inner) {
  parallel_for(outer * n, std::max<index_t>(1, 16384 / std::max<index_t>(inner, 1)), [&](index_t lo, index_t hi) {
    for (index_t k = lo; k < hi; ++k) {
      const index_t o = k / n, j = k % n;
      std::memcpy(out + k * inner, src + (o * len + idx[j]) * inner, std::size_t(inner) * sizeof(T));
    }
  });
  (void)len;
}

// dst[o, idx[j], :] += src[o, j, :]. Repeated indices accumulate; threads split the inner axis so
// no two write the same element.
template <class T>
void index_add(T* dst, const std::int64_t* idx, index_t n, const T* src, index_t outer, index_t len, index_t inner) {
  parallel_for(inner, 256, [&](index_t lo, index_t hi) {
    for (index_t o = 0; o < outer; ++o)
      for (index_t j = 0; j < n; ++j) {
        T* d = dst + (o * len + idx[j]) * inner;
        const T* s = src + (o * n + j) * inner;
        for (index_t c = lo; c < hi; ++c) d[c] += s[c];
      }
  });
}

// First index outside [0, len), or -1 when all are valid.
inline index_t find_out_of_range(const std::int64_t* idx, index_t n, index_t len) {
  for (index_t j = 0; j < n; ++j)
    if (idx[j] < 0 || idx[j] >= len) return j;
  return -1;
}

}  // namespace blip2::cpu_kernel
