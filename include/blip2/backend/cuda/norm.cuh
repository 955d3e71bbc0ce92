#pragma once
// Layer norm and RMS norm over the last axis (rows x cols), forward and backward, one block per row.
// Parameter gradients are column sums over all rows, computed by a separate deterministic kernel
// (no atomics) and added into gw / gb, as the CPU back end accumulates.
#include <cmath>

#include "reduce.cuh"

namespace blip2::cuda_kernel {

// w, b may be null; mean, rstd (per row) may be null.
template <class T>
__global__ void layer_norm_kernel(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, index_t rows,
                                  index_t cols, T eps) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
    const T mu = block_reduce(s, SumOp(), T(0)) / T(cols);
    T v = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) v += (xr[i] - mu) * (xr[i] - mu);
    const T rs = T(1) / std::sqrt(block_reduce(v, SumOp(), T(0)) / T(cols) + eps);
    if (threadIdx.x == 0) {
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
    }
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x)
      yr[i] = (xr[i] - mu) * rs * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
  }
}

template <class T>
__global__ void layer_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx,
                                           index_t rows, index_t cols) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* gr = gy + r * cols;
    const T mu = mean[r], rs = rstd[r];
    T sg = 0, sgx = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const T g = gr[i] * (w ? w[i] : T(1));
      sg += g;
      sgx += g * (xr[i] - mu) * rs;
    }
    const T mg = block_reduce(sg, SumOp(), T(0)) / T(cols), mgx = block_reduce(sgx, SumOp(), T(0)) / T(cols);
    T* out = gx + r * cols;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const T xhat = (xr[i] - mu) * rs;
      out[i] = rs * (gr[i] * (w ? w[i] : T(1)) - mg - xhat * mgx);
    }
  }
}

template <class T>
__global__ void rms_norm_kernel(const T* x, const T* w, T* y, T* rstd, index_t rows, index_t cols, T eps) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i] * xr[i];
    const T rs = T(1) / std::sqrt(block_reduce(s, SumOp(), T(0)) / T(cols) + eps);
    if (threadIdx.x == 0 && rstd) rstd[r] = rs;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = xr[i] * rs * (w ? w[i] : T(1));
  }
}

template <class T>
__global__ void rms_norm_backward_kernel(const T* x, const T* w, const T* rstd, const T* gy, T* gx, index_t rows,
                                         index_t cols) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* gr = gy + r * cols;
    const T rs = rstd[r];
    T d = 0;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) d += gr[i] * (w ? w[i] : T(1)) * xr[i] * rs;
    const T m = block_reduce(d, SumOp(), T(0)) / T(cols);
    T* out = gx + r * cols;
    for (index_t i = threadIdx.x; i < cols; i += blockDim.x) out[i] = rs * (gr[i] * (w ? w[i] : T(1)) - xr[i] * rs * m);
  }
}

// out[c] += sum over rows of f(r, c). Blocks of 32 columns x 16 row lanes; the 16 partial sums of a
// column are added in a fixed order, so the result does not depend on scheduling.
inline constexpr int kColumnLanes = 16;

template <class T, class F>
__global__ void column_sum_kernel(index_t rows, index_t cols, F f, T* out) {
  __shared__ T partial[kColumnLanes][33];
  const index_t c = index_t(blockIdx.x) * 32 + threadIdx.x;
  T acc = 0;
  if (c < cols)
    for (index_t r = threadIdx.y; r < rows; r += kColumnLanes) acc += f(r, c);
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T s = 0;
    for (int k = 0; k < kColumnLanes; ++k) s += partial[k][threadIdx.x];
    out[c] += s;
  }
}

template <class T, class F>
void column_sum_add(index_t rows, index_t cols, F f, T* out, const char* name) {
  if (cols <= 0) return;
  const index_t blocks = (cols + 31) / 32;
  BLIP2_CHECK(blocks <= 0x7fffffff, ShapeError, name, " (cuda): ", cols, " columns is too many");
  column_sum_kernel<<<unsigned(blocks), dim3(32, kColumnLanes), 0, stream()>>>(rows, cols, f, out);
  check_launch(name, __FILE__, __LINE__);
}

template <class T>
void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, index_t rows, index_t cols, T eps) {
  if (rows <= 0 || cols <= 0) return;
  layer_norm_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(x, w, b, y, mean, rstd, rows, cols, eps);
  BLIP2_CUDA_CHECK_LAUNCH("layer_norm");
}

// gx (may be null) = d/dx; gw, gb (may be null) += d/dw, d/db.
template <class T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                         index_t rows, index_t cols) {
  if (rows <= 0 || cols <= 0) return;
  if (gx) {
    layer_norm_backward_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(x, w, mean, rstd, gy, gx, rows,
                                                                                     cols);
    BLIP2_CUDA_CHECK_LAUNCH("layer_norm_backward");
  }
  if (gw)
    column_sum_add(
        rows, cols,
        [=] __device__(index_t r, index_t c) { return gy[r * cols + c] * (x[r * cols + c] - mean[r]) * rstd[r]; }, gw,
        "layer_norm_backward (weight)");
  if (gb)
    column_sum_add(rows, cols, [=] __device__(index_t r, index_t c) { return gy[r * cols + c]; }, gb,
                   "layer_norm_backward (bias)");
}

template <class T>
void rms_norm(const T* x, const T* w, T* y, T* rstd, index_t rows, index_t cols, T eps) {
  if (rows <= 0 || cols <= 0) return;
  rms_norm_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(x, w, y, rstd, rows, cols, eps);
  BLIP2_CUDA_CHECK_LAUNCH("rms_norm");
}

template <class T>
void rms_norm_backward(const T* x, const T* w, const T* rstd, const T* gy, T* gx, T* gw, index_t rows, index_t cols) {
  if (rows <= 0 || cols <= 0) return;
  if (gx) {
    rms_norm_backward_kernel<<<grid_rows(rows), row_threads(cols), 0, stream()>>>(x, w, rstd, gy, gx, rows, cols);
    BLIP2_CUDA_CHECK_LAUNCH("rms_norm_backward");
  }
  if (gw)
    column_sum_add(
        rows, cols, [=] __device__(index_t r, index_t c) { return gy[r * cols + c] * x[r * cols + c] * rstd[r]; }, gw,
        "rms_norm_backward (weight)");
}

}  // namespace blip2::cuda_kernel
