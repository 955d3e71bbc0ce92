#pragma once
// Reductions over the middle axis of a contiguous [outer, len, inner] block into [outer, inner],
// and the warp / block reductions the row kernels (softmax, norms) share.
#include <limits>

#include "launch.cuh"

namespace blip2::cuda_kernel {

struct SumOp {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {  // as the CPU back end: a NaN candidate never replaces the running maximum
  template <class T> __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

template <class T, class Op>
__device__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. Safe to call repeatedly in one kernel.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, warps = int(blockDim.x + 31) >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // the previous call's readers are done with partial[]
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? partial[lane] : identity;
    v = warp_reduce(v, op);
    if (lane == 0) partial[0] = v;
  }
  __syncthreads();
  return partial[0];
}

// Rows (inner == 1): one block per row.
template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* x, T* y, index_t outer, index_t len) {
  const bool is_max = op == ReduceOp::max;
  const T init = is_max ? -std::numeric_limits<T>::infinity() : T(0);
  for (index_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const T* row = x + r * len;
    T acc = init;
    for (index_t i = threadIdx.x; i < len; i += blockDim.x) acc = is_max ? MaxOp()(acc, row[i]) : acc + row[i];
    acc = is_max ? block_reduce(acc, MaxOp(), init) : block_reduce(acc, SumOp(), init);
    if (threadIdx.x == 0) y[r] = acc;
  }
}

template <class T>
void reduce(ReduceOp op, const T* x, T* y, index_t outer, index_t len, index_t inner) {
  if (outer * inner <= 0) return;
  if (inner == 1) {
    const int threads = row_threads(len);
    reduce_rows_kernel<<<grid_rows(outer), threads, 0, stream()>>>(op, x, y, outer, len);
    BLIP2_CUDA_CHECK_LAUNCH("reduce_rows");
    return;
  }
  // columns: one thread per output element, adjacent threads read adjacent memory
  for_each(
      outer * inner,
      [=] __device__(index_t k) {
        const bool is_max = op == ReduceOp::max;
        const index_t o = k / inner, c = k % inner;
        const T* p = x + o * len * inner + c;
        T acc = is_max ? -std::numeric_limits<T>::infinity() : T(0);
        for (index_t l = 0; l < len; ++l) acc = is_max ? MaxOp()(acc, p[l * inner]) : acc + p[l * inner];
        y[k] = acc;
      },
      "reduce_columns");
}

}  // namespace blip2::cuda_kernel
