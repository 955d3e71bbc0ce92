#pragma once
// Gather and scatter-add of slices along one axis of a contiguous [outer, len, inner] block
// (index_select / embedding lookup, and their backward), and the index range check.
#include <cstdint>

#include "launch.cuh"
#include "memory.hpp"

namespace blip2::cuda_kernel {

// out[o, j, :] = src[o, idx[j], :]. Indices must already be validated.
template <class T>
void index_select(const T* src, const std::int64_t* idx, index_t n, T* out, index_t outer, index_t len, index_t inner) {
  for_each(
      outer * n * inner,
      [=] __device__(index_t k) {
        const index_t c = k % inner, oj = k / inner, j = oj % n, o = oj / n;
        out[k] = src[(o * len + idx[j]) * inner + c];
      },
      "index_select");
}

// dst[o, idx[j], :] += src[o, j, :]. Repeated indices accumulate through atomicAdd, so the order of
// the additions (and the last bits of a sum of many float32 values) is not fixed.
template <class T>
void index_add(T* dst, const std::int64_t* idx, index_t n, const T* src, index_t outer, index_t len, index_t inner) {
  for_each(
      outer * n * inner,
      [=] __device__(index_t k) {
        const index_t c = k % inner, oj = k / inner, j = oj % n, o = oj / n;
        atomicAdd(dst + (o * len + idx[j]) * inner + c, src[k]);
      },
      "index_add");
}

// First index outside [0, len), or -1 when all are valid (waits for the device).
inline index_t find_out_of_range(const std::int64_t* idx, index_t n, index_t len) {
  if (n <= 0) return -1;
  auto first = allocate<unsigned long long>(1);
  unsigned long long* f = first.get();
  const unsigned long long none = static_cast<unsigned long long>(n);
  for_each(1, [=] __device__(index_t) { *f = none; }, "find_out_of_range (init)");
  for_each(
      n,
      [=] __device__(index_t j) {
        if (idx[j] < 0 || idx[j] >= len) atomicMin(f, static_cast<unsigned long long>(j));
      },
      "find_out_of_range");
  unsigned long long host = none;
  BLIP2_CUDA_CHECK(cudaMemcpy(&host, f, sizeof(host), cudaMemcpyDeviceToHost));
  return host == none ? index_t(-1) : index_t(host);
}

}  // namespace blip2::cuda_kernel
