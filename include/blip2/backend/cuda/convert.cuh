#pragma once
// Element conversion usable in device code. blip2::bf16 and blip2::f16 are host structs holding the
// bits; these functions repeat the bit-level conversions of core/dtype.hpp (round to nearest even,
// NaN kept quiet, f16 subnormals exact) so both back ends convert identically.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../core/dtype.hpp"
#include "../kernel_ops.hpp"

namespace blip2::cuda_kernel {

BLIP2_HD inline float bits_to_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

BLIP2_HD inline std::uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

BLIP2_HD inline std::uint16_t bf16_bits_from_float(float f) {
  std::uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

BLIP2_HD inline float bf16_bits_to_float(std::uint16_t b) { return bits_to_float(std::uint32_t(b) << 16); }

BLIP2_HD inline std::uint16_t f16_bits_from_float(float f) {
  std::uint32_t x = float_to_bits(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return std::uint16_t(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (x >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);
  std::uint32_t r, rem, half;
  if (x < 0x38800000u) {
    if (x < 0x33000000u) return std::uint16_t(sign);
    const std::uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u, shift = 126u - e;
    r = m >> shift;
    rem = m & ((1u << shift) - 1u);
    half = 1u << (shift - 1u);
  } else {
    r = (((x >> 23) - 112u) << 10) | ((x & 0x7fffffu) >> 13);
    rem = x & 0x1fffu;
    half = 0x1000u;
  }
  if (rem > half || (rem == half && (r & 1u))) ++r;
  return std::uint16_t(sign | r);
}

BLIP2_HD inline float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = float(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (e == 31) return bits_to_float(sign | 0x7f800000u | (m << 13));
  return bits_to_float(sign | ((e + 112u) << 23) | (m << 13));
}

template <class H>
BLIP2_HD inline float half_to_float(H h) {
  if constexpr (std::is_same_v<H, bf16>) return bf16_bits_to_float(h.bits);
  else return f16_bits_to_float(h.bits);
}

template <class H>
BLIP2_HD inline H float_to_half(float f) {
  H h;
  if constexpr (std::is_same_v<H, bf16>) h.bits = bf16_bits_from_float(f);
  else h.bits = f16_bits_from_float(f);
  return h;
}

// convert_scalar (core/dtype.hpp) for host and device: through float for the half types.
template <class To, class From>
BLIP2_HD inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) return v;
  else if constexpr (is_half_v<From>) return convert<To>(half_to_float(v));
  else if constexpr (is_half_v<To>) return float_to_half<To>(float(v));
  else return static_cast<To>(v);
}

}  // namespace blip2::cuda_kernel
