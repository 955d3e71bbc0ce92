#pragma once
// Row softmax / log-softmax over the last axis, one block per row. Same masking rule as the CPU back
// end: entries at or below kernel::kMaskedBelow count as masked, and a row whose entries are all
// masked gives zeros (never NaN).
#include <limits>

#include "reduce.cuh"

namespace blip2::cuda_kernel {

template <class T>
__global__ void softmax_kernel(const T* x, T* y, index_t rows, index_t cols, bool log) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T m = -std::numeric_limits<T>::infinity();
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) m = MaxOp()(m, xr[i]);
    m = block_reduce(m, MaxOp(), -std::numeric_limits<T>::infinity());
    if (!(m > kernel::kMaskedBelow<T>)) {
      for (index_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = T(0);
      continue;
    }
    T s = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) s += std::exp(xr[i] - m);
    s = block_reduce(s, SumOp(), T(0));
    if (log) {
      const T shift = m + std::log(s);
      for (index_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = xr[i] - shift;
    } else {
      const T inv = T(1) / s;
      for (index_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = std::exp(xr[i] - m) * inv;
    }
  }
}

// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy), zero for a fully
// masked row (y all zero).
template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* gy, T* gx, index_t rows, index_t cols, bool log) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * cols;
    const T* gr = gy + r * cols;
    T* out = gx + r * cols;
    T dot = 0;
    int nonzero = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) {
      dot += log ? gr[i] : gr[i] * yr[i];
      nonzero |= yr[i] != T(0);
    }
    dot = block_reduce(dot, SumOp(), T(0));
    nonzero = block_reduce(nonzero, MaxOp(), 0);
    if (log && !nonzero) {
      for (index_t i = threadIdx.x; i < cols; i += blockDim.x) out[i] = T(0);
      continue;
    }
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x)
      out[i] = log ? gr[i] - std::exp(yr[i]) * dot : yr[i] * (gr[i] - dot);
  }
}

template <class T>
void softmax(const T* x, T* y, index_t rows, index_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  softmax_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(x, y, rows, cols, log);
  BLIP2_CUDA_CHECK_LAUNCH("softmax");
}

template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, index_t rows, index_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  softmax_backward_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(y, gy, gx, rows, cols, log);
  BLIP2_CUDA_CHECK_LAUNCH("softmax_backward");
}

}  // namespace blip2::cuda_kernel
