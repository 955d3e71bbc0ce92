#pragma once
// Element types: float32/float64 compute types, float16/bfloat16 storage types (exact
// round-to-nearest-even conversion, computed in float32 on the CPU), int32/int64 for ids and masks.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

namespace blip2 {

namespace detail {
inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

// bfloat16: the upper 16 bits of a float32, rounded to nearest even.
struct bf16 {
  std::uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return detail::bits_float(std::uint32_t(bits) << 16); }
  static bf16 from_bits(std::uint16_t b) {
    bf16 h;
    h.bits = b;
    return h;
  }
  static std::uint16_t from_float(float f) {
    std::uint32_t u = detail::float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
  }
};

// IEEE binary16.
struct f16 {
  std::uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  static f16 from_bits(std::uint16_t b) {
    f16 h;
    h.bits = b;
    return h;
  }
  static std::uint16_t from_float(float f) {
    std::uint32_t x = detail::float_bits(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return std::uint16_t(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (x >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to infinity
    std::uint32_t r, rem, half;
    if (x < 0x38800000u) {  // half subnormal (or zero): value / 2^-24, rounded
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
    if (rem > half || (rem == half && (r & 1u))) ++r;  // carry into the exponent is correct
    return std::uint16_t(sign | r);
  }
  static float to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
      const float v = float(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
      return sign ? -v : v;
    }
    if (e == 31) return detail::bits_float(sign | 0x7f800000u | (m << 13));
    return detail::bits_float(sign | ((e + 112u) << 23) | (m << 13));
  }
};

enum class DType { f32, f64, f16, bf16, i32, i64, u8 };

template <class T> struct dtype_traits;
template <> struct dtype_traits<float> { static constexpr DType id = DType::f32; static constexpr std::string_view name = "float32"; };
template <> struct dtype_traits<double> { static constexpr DType id = DType::f64; static constexpr std::string_view name = "float64"; };
template <> struct dtype_traits<f16> { static constexpr DType id = DType::f16; static constexpr std::string_view name = "float16"; };
template <> struct dtype_traits<bf16> { static constexpr DType id = DType::bf16; static constexpr std::string_view name = "bfloat16"; };
template <> struct dtype_traits<std::int32_t> { static constexpr DType id = DType::i32; static constexpr std::string_view name = "int32"; };
template <> struct dtype_traits<std::int64_t> { static constexpr DType id = DType::i64; static constexpr std::string_view name = "int64"; };
template <> struct dtype_traits<std::uint8_t> { static constexpr DType id = DType::u8; static constexpr std::string_view name = "uint8"; };

template <class T> inline constexpr std::string_view dtype_name = dtype_traits<T>::name;
template <class T> inline constexpr bool is_half_v = std::is_same_v<T, f16> || std::is_same_v<T, bf16>;
// Types that ops compute in (and that autograd differentiates).
template <class T> inline constexpr bool is_compute_v = std::is_same_v<T, float> || std::is_same_v<T, double>;
template <class T> inline constexpr bool is_floating_v = is_compute_v<T> || is_half_v<T>;
// Operand types of Backend<D>::gemm_batched_mixed (float32 accumulation on every device): B is bf16
// or f16; A is float32 (activations times half-precision weights) or B's type; C is float32, or B's
// type when A is too.
template <class TA, class TB, class TC>
inline constexpr bool is_mixed_gemm_v = is_half_v<TB> && (std::is_same_v<TA, float> || std::is_same_v<TA, TB>) &&
                                        (std::is_same_v<TC, float> || (std::is_same_v<TC, TB> && std::is_same_v<TA, TB>));
// The type arithmetic on T is done in.
template <class T> using compute_t = std::conditional_t<is_half_v<T>, float, T>;

inline std::string_view name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
  }
  return "?";
}

// Element conversion, through float for the half types. Floating point to an integer type
// saturates (NaN gives 0) where a plain cast would be undefined: values read from a file, e.g. a
// float tensor loaded as int64, may lie outside the integer's range.
template <class To, class From>
inline To convert_scalar(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (is_half_v<From>) {
    return convert_scalar<To>(float(v));
  } else if constexpr (is_half_v<To>) {
    return To(float(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    // The integer limits as From: for int64 in float the maximum rounds up to 2^63, so compare with >=.
    constexpr From lo = From(std::numeric_limits<To>::min()), hi = From(std::numeric_limits<To>::max());
    if (!(v == v)) return To(0);
    if (v <= lo) return std::numeric_limits<To>::min();
    if (v >= hi) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace blip2
