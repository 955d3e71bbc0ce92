#pragma once
// Kernel launch helpers shared by the CUDA kernels: the stream, grid sizes for grid-stride loops,
// a generic "call f(i) for i in [0, n)" kernel, and the geometry of strided operands passed to
// kernels by value (at most kMaxDims dimensions after merging contiguous ones).
#include <algorithm>
#include <array>
#include <cstddef>

#include "../../core/shape.hpp"
#include "error.hpp"

namespace blip2::cuda_kernel {

// Every kernel and copy runs on the legacy default stream (see memory.hpp for why that matters).
inline cudaStream_t stream() { return nullptr; }

inline constexpr int kThreads = 256;
inline constexpr index_t kMaxBlocks = index_t(1) << 16;

// Blocks for a grid-stride loop over n items.
inline unsigned grid_for(index_t n, int threads = kThreads) {
  return unsigned(std::clamp<index_t>((n + threads - 1) / threads, 1, kMaxBlocks));
}
// Blocks for one-block-per-row kernels (the kernels loop when rows exceed it).
inline unsigned grid_rows(index_t rows) { return unsigned(std::clamp<index_t>(rows, 1, kMaxBlocks)); }
// Threads for a row kernel: a power of two covering the row, between one warp and 512.
inline int row_threads(index_t cols) {
  int t = 32;
  while (t < 512 && t < cols) t *= 2;
  return t;
}

#define BLIP2_GRID_STRIDE(i, n)                                                         \
  for (::blip2::index_t i = ::blip2::index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += ::blip2::index_t(blockDim.x) * gridDim.x)

template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  BLIP2_GRID_STRIDE(i, n) f(i);
}

// f(i) for every i in [0, n) on the device; f is a __device__ lambda or functor captured by value.
template <class F>
void for_each(index_t n, F f, const char* name) {
  if (n <= 0) return;
  for_each_kernel<<<grid_for(n), kThreads, 0, stream()>>>(n, f);
  check_launch(name, __FILE__, __LINE__);
}

inline constexpr int kMaxDims = 8;

// Shape and K sets of strides, dimensions of size 1 dropped and dimensions that are contiguous for
// every operand merged (as the CPU back end's for_each_strided does).
template <int K>
struct StridedGeometry {
  int ndim = 0;
  index_t size[kMaxDims] = {};
  index_t stride[K][kMaxDims] = {};

  // Offsets (in elements) of each operand for row-major position `linear` of the shape.
  __device__ void offsets(index_t linear, index_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    if (ndim == 1) {  // the common merged case: no division
      for (int k = 0; k < K; ++k) off[k] = linear * stride[k][0];
      return;
    }
    for (int d = ndim - 1; d >= 0; --d) {
      const index_t c = linear % size[d];
      linear /= size[d];
      for (int k = 0; k < K; ++k) off[k] += c * stride[k][d];
    }
  }
};

template <int K>
StridedGeometry<K> make_geometry(const Shape& shape, const std::array<const Strides*, K>& strides, const char* op) {
  StridedGeometry<K> g;
  Shape s;
  std::array<Strides, K> st;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    bool merge = !s.empty();
    for (int k = 0; k < K && merge; ++k) merge = st[k].back() == (*strides[k])[i] * shape[i];
    if (merge) {
      s.back() *= shape[i];
      for (int k = 0; k < K; ++k) st[k].back() = (*strides[k])[i];
    } else {
      s.push_back(shape[i]);
      for (int k = 0; k < K; ++k) st[k].push_back((*strides[k])[i]);
    }
  }
  BLIP2_CHECK(s.size() <= std::size_t(kMaxDims), ShapeError, op, " (cuda): shape ", to_string(shape), " needs ",
              s.size(), " strided dimensions after merging; the CUDA back end takes at most ", kMaxDims);
  g.ndim = int(s.size());
  for (std::size_t d = 0; d < s.size(); ++d) {
    g.size[d] = s[d];
    for (int k = 0; k < K; ++k) g.stride[k][d] = st[k][d];
  }
  return g;
}

}  // namespace blip2::cuda_kernel
