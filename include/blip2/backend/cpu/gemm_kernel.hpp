#pragma once
// Register-blocked float32 micro-kernels for the packed GEMM (gemm_packed.hpp).
//
// A kernel computes an MRU x NR tile of C from a packed A micro-panel (kc steps of MR floats: one
// value per row, broadcast) and a packed B micro-panel (kc steps of NR floats: the vector direction,
// along the rows of C, so C is written with contiguous stores). Only the first MRU <= MR rows are
// computed, so edge tiles in M cost no wasted flops; columns past `nvalid` are computed but never
// stored. The update is C = alpha * acc + beta * C, and beta == 0 never reads C (it may hold NaN).
//
// Two policies with the same interface: Avx512Kernel (intrinsics, 14 x 32: 28 accumulators of the 32
// zmm registers), compiled only with __AVX512F__, and XsimdKernel (any xsimd architecture, 6 x 2W).
#include <array>
#include <utility>

#include "simd.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace blip2::cpu_kernel::gemm_detail {

using KernelFn = void (*)(index_t kc, const float* a, const float* b, float* c, index_t ldc, index_t nvalid,
                          float alpha, float beta);

// Table of the MRU = 1..MR instantiations, indexed by MRU - 1.
template <class K, std::size_t... I>
constexpr std::array<KernelFn, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {{&K::template run<int(I) + 1>...}};
}

#if defined(__AVX512F__)
struct Avx512Kernel {
  static constexpr int MR = 14, NR = 32;

  template <int MRU>
  static void run(index_t kc, const float* a, const float* b, float* c, index_t ldc, index_t nvalid, float alpha,
                  float beta) {
    __m512 acc0[MRU], acc1[MRU];
#pragma GCC unroll 16
    for (int i = 0; i < MRU; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (index_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
      for (int i = 0; i < MRU; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);  // folds into the FMA as an embedded broadcast
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
      }
      a += MR;
      b += NR;
    }
    const __mmask16 m0 = nvalid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nvalid) - 1);
    const __mmask16 m1 = nvalid >= 32 ? __mmask16(0xFFFF) : nvalid <= 16 ? __mmask16(0) : __mmask16((1u << (nvalid - 16)) - 1);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MRU; ++i) {
      float* row = c + i * ldc;
      __m512 r0 = _mm512_mul_ps(va, acc0[i]), r1 = _mm512_mul_ps(va, acc1[i]);
      if (beta != 0.0f) {  // masked loads never touch (or fault on) the columns past nvalid
        r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
        r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
      }
      _mm512_mask_storeu_ps(row, m0, r0);
      _mm512_mask_storeu_ps(row + 16, m1, r1);
    }
  }

  static KernelFn get(int mru) {
    static constexpr auto table = kernel_table<Avx512Kernel>(std::make_index_sequence<MR>{});
    return table[std::size_t(mru - 1)];
  }
};
#endif

// Portable kernel over xsimd batches: MR = 6 rows, two vectors per row (12 accumulators fit the 16
// registers of AVX2; with wider registers it is simply smaller than the best tile).
struct XsimdKernel {
  using V = simd<float>;
  static constexpr int W = int(V::size);
  static constexpr int MR = 6, NR = 2 * W;

  template <int MRU>
  static void run(index_t kc, const float* a, const float* b, float* c, index_t ldc, index_t nvalid, float alpha,
                  float beta) {
    V acc0[MRU], acc1[MRU];
    for (int i = 0; i < MRU; ++i) acc0[i] = acc1[i] = V(0.0f);
    for (index_t k = 0; k < kc; ++k) {
      const V b0 = V::load_aligned(b), b1 = V::load_aligned(b + W);
      for (int i = 0; i < MRU; ++i) {
        const V ai(a[i]);
        acc0[i] = xsimd::fma(ai, b0, acc0[i]);
        acc1[i] = xsimd::fma(ai, b1, acc1[i]);
      }
      a += MR;
      b += NR;
    }
    for (int i = 0; i < MRU; ++i) {
      float* row = c + i * ldc;
      if (nvalid >= NR) {
        V r0 = V(alpha) * acc0[i], r1 = V(alpha) * acc1[i];
        if (beta != 0.0f) {
          r0 = xsimd::fma(V(beta), V::load_unaligned(row), r0);
          r1 = xsimd::fma(V(beta), V::load_unaligned(row + W), r1);
        }
        r0.store_unaligned(row);
        r1.store_unaligned(row + W);
      } else {  // edge tile: spill the accumulators and copy the valid columns
        alignas(64) float tmp[NR];
        acc0[i].store_aligned(tmp);
        acc1[i].store_aligned(tmp + W);
        for (index_t j = 0; j < nvalid; ++j) row[j] = beta != 0.0f ? alpha * tmp[j] + beta * row[j] : alpha * tmp[j];
      }
    }
  }

  static KernelFn get(int mru) {
    static constexpr auto table = kernel_table<XsimdKernel>(std::make_index_sequence<MR>{});
    return table[std::size_t(mru - 1)];
  }
};

#if defined(__AVX512F__)
using DefaultKernel = Avx512Kernel;
#else
using DefaultKernel = XsimdKernel;
#endif

}  // namespace blip2::cpu_kernel::gemm_detail
