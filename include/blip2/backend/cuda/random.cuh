#pragma once
// Counter-based random fills on the device: value i depends only on (seed, first + i), computed by
// the same functions as core/random.hpp's Generator, so CPU and GPU draw the same numbers. Uniform
// values and dropout masks are bit-identical to the CPU's; normal values go through the device's
// log and cos, which may differ from the host's in the last bit of the float64 intermediate.
#include <cmath>
#include <cstdint>

#include "../../core/random.hpp"
#include "convert.cuh"
#include "launch.cuh"

namespace blip2::cuda_kernel {

// Generator::uniform(seed, c).
BLIP2_HD inline double uniform01(std::uint64_t seed, std::uint64_t c) {
  return double(::blip2::detail::splitmix64(seed ^ ::blip2::detail::splitmix64(c)) >> 11) * 0x1.0p-53;
}

// Generator::normal(seed, c).
BLIP2_HD inline double normal01(std::uint64_t seed, std::uint64_t c) {
  const double u1 = uniform01(seed, 2 * c) + 0x1.0p-54, u2 = uniform01(seed, 2 * c + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// a + b * c rounded twice, as the host computes it without contraction (no fused multiply-add).
__device__ inline double add_mul_rn(double a, double b, double c) { return __dadd_rn(a, __dmul_rn(b, c)); }

template <class T>
void fill_uniform(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double lo, double hi) {
  for_each(
      n,
      [=] __device__(index_t i) { d[i] = convert<T>(add_mul_rn(lo, hi - lo, uniform01(seed, first + std::uint64_t(i)))); },
      "fill_uniform");
}

template <class T>
void fill_normal(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double mean, double sd) {
  for_each(
      n,
      [=] __device__(index_t i) { d[i] = convert<T>(add_mul_rn(mean, sd, normal01(seed, first + std::uint64_t(i)))); },
      "fill_normal");
}

// Dropout mask: 0 with probability p, else 1/(1-p).
template <class T>
void fill_dropout_mask(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double p) {
  const T keep = convert<T>(1.0 / (1.0 - p));
  const T zero = convert<T>(0.0);
  for_each(
      n, [=] __device__(index_t i) { d[i] = uniform01(seed, first + std::uint64_t(i)) < p ? zero : keep; },
      "fill_dropout_mask");
}

}  // namespace blip2::cuda_kernel
