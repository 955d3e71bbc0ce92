#pragma once
// CUDA elementwise kernels: fill, strided copy with element conversion, unary ops and their
// backward, broadcasting binary ops. Scalar definitions come from backend/kernel_ops.hpp, the same
// ones the CPU back end uses.
#include <cstring>
#include <type_traits>

#include "convert.cuh"
#include "launch.cuh"

namespace blip2::cuda_kernel {

template <class T>
void fill(T* dst, index_t n, T v) {
  if (n <= 0) return;
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  if (std::all_of(bytes, bytes + sizeof(T), [](unsigned char b) { return b == 0; })) {
    BLIP2_CUDA_CHECK(cudaMemsetAsync(dst, 0, std::size_t(n) * sizeof(T), stream()));
    return;
  }
  for_each(n, [=] __device__(index_t i) { dst[i] = v; }, "fill");
}

// dst[...] = convert(src[...]) over `shape`, each side with its own strides.
template <class S, class T>
void copy(const S* src, const Strides& src_strides, T* dst, const Strides& dst_strides, const Shape& shape) {
  const index_t n = numel(shape);
  if (n <= 0) return;
  const auto g = make_geometry<2>(shape, {&src_strides, &dst_strides}, "copy");
  if constexpr (std::is_same_v<S, T>) {
    if (g.ndim == 0 || (g.ndim == 1 && g.stride[0][0] == 1 && g.stride[1][0] == 1)) {
      BLIP2_CUDA_CHECK(cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
      return;
    }
  }
  for_each(
      n,
      [=] __device__(index_t i) {
        index_t off[2];
        g.offsets(i, off);
        dst[off[1]] = convert<T>(src[off[0]]);
      },
      "copy");
}

template <class T>
void unary(UnaryOp op, const T* x, T* y, index_t n, T a) {
  for_each(n, [=] __device__(index_t i) { y[i] = kernel::unary(op, x[i], a); }, "unary");
}

template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, index_t n, T a) {
  for_each(
      n, [=] __device__(index_t i) { gx[i] = gy[i] * kernel::unary_derivative(op, x[i], y[i], a); }, "unary_backward");
}

// out (contiguous, `shape`) = a op b, with a and b read through (broadcast) strides. out may alias a
// or b when that operand is contiguous with the output's shape (in-place add_).
template <class T>
void binary(BinaryOp op, const T* a, const Strides& sa, const T* b, const Strides& sb, T* out, const Shape& shape) {
  const index_t n = numel(shape);
  if (n <= 0) return;
  const auto g = make_geometry<2>(shape, {&sa, &sb}, "binary");
  if (g.ndim == 1 && g.stride[0][0] == 1 && g.stride[1][0] == 1) {
    for_each(n, [=] __device__(index_t i) { out[i] = kernel::binary(op, a[i], b[i]); }, "binary");
    return;
  }
  for_each(
      n,
      [=] __device__(index_t i) {
        index_t off[2];
        g.offsets(i, off);
        out[i] = kernel::binary(op, a[off[0]], b[off[1]]);
      },
      "binary");
}

}  // namespace blip2::cuda_kernel
