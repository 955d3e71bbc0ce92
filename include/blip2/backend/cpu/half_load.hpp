#pragma once
// Loads of float32, bf16 or f16 elements as float32 vectors, for the kernels that read half-precision
// weights directly (gemm_small.hpp, gemm_pack.hpp) instead of converting whole matrices first.
// bf16 -> float32 is a widening and a 16-bit shift; f16 uses the F16C / AVX-512 conversion, else the
// scalar conversion of core/dtype.hpp.
#include <type_traits>

#include "../../core/dtype.hpp"
#include "simd.hpp"

#if defined(__AVX2__) || defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace blip2::cpu_kernel {

// One simd<float> from simd_width<float> consecutive elements of p.
template <class T>
inline simd<float> load_float(const T* p) {
  using V = simd<float>;
  if constexpr (std::is_same_v<T, float>) {
    return V::load_unaligned(p);
  } else {
    static_assert(is_half_v<T>, "load_float: float32, bf16 or f16");
    constexpr index_t W = simd_width<float>;
#if defined(__AVX512F__)
    if constexpr (W == 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      if constexpr (std::is_same_v<T, bf16>) return V(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
      else return V(_mm512_cvtph_ps(h));
    }
#endif
#if defined(__AVX2__)
    if constexpr (W == 8 && std::is_same_v<T, bf16>) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return V(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    }
#endif
#if defined(__F16C__)
    if constexpr (W == 8 && std::is_same_v<T, f16>)
      return V(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
    alignas(64) float lanes[W];
    for (index_t i = 0; i < W; ++i) lanes[i] = float(p[i]);
    return V::load_aligned(lanes);
  }
}

// bf16 rows read as pairs (AVX-512): one 64-byte load holds 2W values; the even-indexed ones are the
// low halves of its 32-bit lanes (a shift makes them floats), the odd-indexed ones the high halves (a
// mask). No widening shuffles: fewer instructions per cache line, so more lines in flight and about
// 10 % more bandwidth in the decode GEMV. The other operand is split the same way (split_pairs).
#if defined(__AVX512F__)
inline constexpr bool kBf16Pairs = simd_width<float> == 16;
#else
inline constexpr bool kBf16Pairs = false;
#endif

template <class V>
inline void load_bf16_pairs(const bf16* p, V& even, V& odd) {
#if defined(__AVX512F__)
  const __m512i v = _mm512_loadu_si512(p);
  even = V(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
  odd = V(_mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xFFFF0000u)))));
#else
  (void)p, (void)even, (void)odd;
#endif
}

// out = x[0..n) with every whole block of 2W values reordered as its W even-indexed values, then its W
// odd-indexed ones (the order load_bf16_pairs produces); the rest copied as it is.
inline void split_pairs(const float* x, index_t n, float* out) {
  constexpr index_t W = simd_width<float>;
  index_t k = 0;
  for (; k + 2 * W <= n; k += 2 * W)
    for (index_t i = 0; i < W; ++i) out[k + i] = x[k + 2 * i], out[k + W + i] = x[k + 2 * i + 1];
  for (; k < n; ++k) out[k] = x[k];
}

#if defined(__AVX512F__)
// The first n <= 16 elements of p as float32 lanes, the rest zero; nothing past p + n is read.
template <class T>
inline __m512 load16_float(const T* p, index_t n) {
  const __mmask16 m = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    static_assert(is_half_v<T>, "load16_float: float32, bf16 or f16");
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
#else
    alignas(32) std::uint16_t bits[16] = {};
    for (index_t i = 0; i < n && i < 16; ++i) bits[i] = p[i].bits;
    const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(bits));
#endif
    if constexpr (std::is_same_v<T, bf16>) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}
#endif

}  // namespace blip2::cpu_kernel
