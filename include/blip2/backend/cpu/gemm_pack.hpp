#pragma once
// Packing for the float32 GEMM: copies a block of op(A) or op(B) into the order the micro-kernel
// reads it, so the kernel streams contiguous, aligned memory whatever the transposes and strides.
//
//   A block (mc x kc) -> micro-panels of MR rows: panel p holds, for k = 0..kc-1, the MR values
//                        A(p*MR + i, k); rows past mc are left unset (the kernel never reads them).
//   B block (kc x nc) -> micro-panels of NR columns: panel q holds, for k = 0..kc-1, the NR values
//                        B(k, q*NR + j); columns past nc are zero.
// The weight layout [N, K] used as op(B) = W^T (trans_b) needs a transpose while packing; with
// AVX-512 it is done 16 x 16 in registers, which keeps the packing cost well under the product's.
// B may be bf16 or f16 (half-precision weights): it is converted while packing, so the float32
// kernel runs unchanged and no float32 copy of the whole matrix is ever made.
#include <algorithm>

#include "half_load.hpp"

namespace blip2::cpu_kernel::gemm_detail {

// Element (i, k) of op(A) is a[i*lda + k] (no transpose) or a[k*lda + i] (transposed); the same
// accessor serves op(B)(k, j) with the roles swapped.
template <int MR>
void pack_a(bool trans, const float* a, index_t lda, index_t mc, index_t kc, float* out) {
  for (index_t p = 0; p < mc; p += MR) {
    const index_t mr = std::min<index_t>(MR, mc - p);
    float* dst = out + p * kc;
    if (trans) {  // op(A)(i, k) = a[k*lda + i]: MR contiguous values per k
      for (index_t k = 0; k < kc; ++k) {
        const float* src = a + k * lda + p;
        for (index_t i = 0; i < mr; ++i) dst[k * MR + i] = src[i];
      }
    } else {  // rows are contiguous in k: write them interleaved
      for (index_t i = 0; i < mr; ++i) {
        const float* src = a + (p + i) * lda;
        for (index_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
      }
    }
  }
}

#if defined(__AVX512F__)
// Transposes the 16 x 16 block r[0..15] in place (row i becomes column i).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

// dst[k*NR + j] = w[j*ldw + k] for j < rows (<= 16), k < kc; lanes j >= rows are zero.
template <int NR, class TB>
void pack_transposed16(const TB* w, index_t ldw, index_t rows, index_t kc, float* dst) {
  __m512 r[16];
  for (index_t k = 0; k < kc; k += 16) {
    const index_t kr = std::min<index_t>(16, kc - k);
    for (index_t j = 0; j < 16; ++j) r[j] = j < rows ? load16_float(w + j * ldw + k, kr) : _mm512_setzero_ps();
    transpose16(r);
    for (index_t i = 0; i < kr; ++i) _mm512_store_ps(dst + (k + i) * NR, r[i]);
  }
}
#endif

template <int NR, class TB>
void pack_b(bool trans, const TB* b, index_t ldb, index_t kc, index_t nc, float* out) {
  for (index_t q = 0; q < nc; q += NR) {
    const index_t nr = std::min<index_t>(NR, nc - q);
    float* dst = out + q * kc;
    if (!trans) {  // op(B)(k, j) = b[k*ldb + j]: NR contiguous values per k
      for (index_t k = 0; k < kc; ++k) {
        const TB* src = b + k * ldb + q;
        float* d = dst + k * NR;
        index_t j = 0;
        for (; j < nr; ++j) d[j] = float(src[j]);
        for (; j < NR; ++j) d[j] = 0.0f;
      }
      continue;
    }
#if defined(__AVX512F__)
    if constexpr (NR % 16 == 0) {
      for (index_t h = 0; h < NR; h += 16)
        pack_transposed16<NR>(b + (q + h) * ldb, ldb, std::max<index_t>(0, std::min<index_t>(16, nr - h)), kc, dst + h);
      continue;
    }
#endif
    // op(B)(k, j) = b[j*ldb + k]: read the rows of W along k, write them interleaved
    for (index_t j = 0; j < NR; ++j) {
      float* d = dst + j;
      if (j < nr) {
        const TB* src = b + (q + j) * ldb;
        for (index_t k = 0; k < kc; ++k) d[k * NR] = float(src[k]);
      } else {
        for (index_t k = 0; k < kc; ++k) d[k * NR] = 0.0f;
      }
    }
  }
}

}  // namespace blip2::cpu_kernel::gemm_detail
