#pragma once
// CPU elementwise kernels: fill, strided copy with conversion, unary ops and their backward,
// broadcasting binary ops. Contiguous rows run through xsimd; everything splits over OpenMP.
#include <cstring>
#include <type_traits>

#include "../../core/dtype.hpp"
#include "../kernel_ops.hpp"
#include "simd.hpp"
#include "strided.hpp"

namespace blip2::cpu_kernel {

inline constexpr index_t kElementGrain = 16384;

template <class T>
void fill(T* dst, index_t n, T value) {
  parallel_for(n, kElementGrain, [&](index_t lo, index_t hi) { std::fill(dst + lo, dst + hi, value); });
}

// dst[...] = convert(src[...]) over `shape`, each side with its own strides.
template <class S, class T>
void copy(const S* src, const Strides& src_strides, T* dst, const Strides& dst_strides, const Shape& shape) {
  for_each_strided<2>(shape, {src_strides, dst_strides}, [&](auto off, index_t n, auto inc) {
    const S* s = src + off[0];
    T* d = dst + off[1];
    if constexpr (std::is_same_v<S, T>) {
      if (inc[0] == 1 && inc[1] == 1) {
        std::memcpy(d, s, std::size_t(n) * sizeof(T));
        return;
      }
    }
    for (index_t i = 0; i < n; ++i) d[i * inc[1]] = convert_scalar<T>(s[i * inc[0]]);
  });
}

// Vector form of the hot unary ops; nullptr-free fallback to the scalar definition for the rest.
template <class T>
void unary_contiguous(UnaryOp op, const T* x, T* y, index_t n, T a) {
  using V = simd<T>;
  auto scalar = [op, a](T v) { return kernel::unary(op, v, a); };
  auto run = [&](auto vf) {
    parallel_for(n, kElementGrain, [&](index_t lo, index_t hi) { map1(hi - lo, x + lo, y + lo, vf, scalar); });
  };
  switch (op) {
    case UnaryOp::neg: return run([](V v) { return -v; });
    case UnaryOp::exp: return run([](V v) { return xsimd::exp(v); });
    case UnaryOp::tanh: return run([](V v) { return xsimd::tanh(v); });
    case UnaryOp::relu: return run([](V v) { return xsimd::max(v, V(T(0))); });
    case UnaryOp::gelu_erf:
      return run([](V v) { return V(T(0.5)) * v * (V(T(1)) + xsimd::erf(v * V(T(0.7071067811865476)))); });
    case UnaryOp::gelu_tanh:
      return run([](V v) {
        const V inner = V(kernel::kSqrt2OverPi<T>) * (v + V(kernel::kGeluCubic<T>) * v * v * v);
        return V(T(0.5)) * v * (V(T(1)) + xsimd::tanh(inner));
      });
    case UnaryOp::silu: return run([](V v) { return v / (V(T(1)) + xsimd::exp(-v)); });
    case UnaryOp::sigmoid: return run([](V v) { return V(T(1)) / (V(T(1)) + xsimd::exp(-v)); });
    case UnaryOp::square: return run([](V v) { return v * v; });
    case UnaryOp::add_scalar: return run([a](V v) { return v + V(a); });
    case UnaryOp::mul_scalar: return run([a](V v) { return v * V(a); });
    default:
      parallel_for(n, kElementGrain, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) y[i] = scalar(x[i]);
      });
  }
}

// gx = gy * f'(x) (y is f(x), used by ops whose derivative is cheaper from the output).
// GELU's derivative (an erf and an exp per element) runs vectorised: scalar, it was a tenth of a
// small ViT's training step.
template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, index_t n, T a) {
  if constexpr (std::is_floating_point_v<T>) {
    if (op == UnaryOp::gelu_erf) {
      using V = simd<T>;
      constexpr index_t W = simd_width<T>;
      parallel_for(n, kElementGrain, [&](index_t lo, index_t hi) {
        index_t i = lo;
        for (; i + W <= hi; i += W) {
          const V v = V::load_unaligned(x + i);
          const V d = V(T(0.5)) * (V(T(1)) + xsimd::erf(v * V(T(0.7071067811865476)))) +
                      v * V(T(0.3989422804014327)) * xsimd::exp(V(T(-0.5)) * v * v);
          (V::load_unaligned(gy + i) * d).store_unaligned(gx + i);
        }
        for (; i < hi; ++i) gx[i] = gy[i] * kernel::unary_derivative(op, x[i], y[i], a);
      });
      return;
    }
  }
  parallel_for(n, kElementGrain, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) gx[i] = gy[i] * kernel::unary_derivative(op, x[i], y[i], a);
  });
}

// out (contiguous, `shape`) = a op b, with a and b read through (broadcast) strides.
template <class T>
void binary(BinaryOp op, const T* a, const Strides& sa, const T* b, const Strides& sb, T* out, const Shape& shape) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  for_each_strided<3>(shape, {sa, sb, contiguous_strides(shape)}, [&](auto off, index_t n, auto inc) {
    const T* pa = a + off[0];
    const T* pb = b + off[1];
    T* po = out + off[2];
    auto loop = [&](auto vop) {
      index_t i = 0;
      if (inc[2] == 1 && (inc[0] == 1 || inc[0] == 0) && (inc[1] == 1 || inc[1] == 0)) {
        const V sa0(*pa), sb0(*pb);
        for (; i + W <= n; i += W) {
          const V va = inc[0] ? V::load_unaligned(pa + i) : sa0;
          const V vb = inc[1] ? V::load_unaligned(pb + i) : sb0;
          vop(va, vb).store_unaligned(po + i);
        }
      }
      for (; i < n; ++i) po[i * inc[2]] = kernel::binary(op, pa[i * inc[0]], pb[i * inc[1]]);
    };
    switch (op) {
      case BinaryOp::add: return loop([](V x, V y) { return x + y; });
      case BinaryOp::sub: return loop([](V x, V y) { return x - y; });
      case BinaryOp::mul: return loop([](V x, V y) { return x * y; });
      case BinaryOp::div: return loop([](V x, V y) { return x / y; });
      case BinaryOp::eq: return loop([](V x, V y) { return xsimd::select(x == y, V(T(1)), V(T(0))); });
    }
  });
}

}  // namespace blip2::cpu_kernel
