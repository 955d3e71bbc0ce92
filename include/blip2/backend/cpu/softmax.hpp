#pragma once
// Row softmax / log-softmax over the last axis. Entries at or below kernel::kMaskedBelow count as
// masked; a row with every entry masked gives zeros (never NaN).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "../kernel_ops.hpp"
#include "parallel.hpp"
#include "simd.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace blip2::cpu_kernel {

#if defined(__AVX512F__)
namespace detail {
// exp for float32 in AVX-512 (Cephes' expf polynomial, within 2 ulp), about twice as fast as the
// generic xsimd::exp. Inputs below -87.3 (and -inf) give exactly 0 through a mask rather than by
// underflow: a denormal result would cost a microcode assist on every masked entry. NaN stays NaN.
inline __m512 exp_avx512(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33f), _CMP_NLT_UQ);
  x = _mm512_max_ps(_mm512_set1_ps(-87.33f), _mm512_min_ps(_mm512_set1_ps(88.7228f), x));  // NaN passes
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_scalef_ps(keep, p, n);  // p * 2^n
}

// One float row. The tail is read with a masked load that fills -inf (no effect on max or sum) and
// written with a masked store, so short rows (42 keys) cost no scalar work.
inline void softmax_row_avx512(const float* x, float* y, index_t cols, bool log) {
  const index_t cv = cols / 16 * 16;
  const __mmask16 tm = __mmask16((1u << (cols - cv)) - 1);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 vmax = ninf;
  for (index_t i = 0; i < cv; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
  if (tm) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(ninf, tm, x + cv));
  const float m = _mm512_reduce_max_ps(vmax);
  if (!(m > kernel::kMaskedBelow<float>)) {
    std::fill(y, y + cols, 0.0f);
    return;
  }
  const __m512 vm = _mm512_set1_ps(m);
  __m512 vsum = _mm512_setzero_ps();
  for (index_t i = 0; i < cv; i += 16) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    if (!log) _mm512_storeu_ps(y + i, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (tm) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, tm, x + cv), vm));
    if (!log) _mm512_mask_storeu_ps(y + cv, tm, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  const float sum = _mm512_reduce_add_ps(vsum);
  if (log) {
    const __m512 vs = _mm512_set1_ps(m + std::log(sum));
    for (index_t i = 0; i < cv; i += 16) _mm512_storeu_ps(y + i, _mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
    if (tm) _mm512_mask_storeu_ps(y + cv, tm, _mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + cv), vs));
  } else {
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (index_t i = 0; i < cv; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (tm) _mm512_mask_storeu_ps(y + cv, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, y + cv), inv));
  }
}

// Rows of at most 64 entries (attention over a short prompt or a KV cache: 42, 43 keys) held whole in
// registers, four rows at a time: the four rows' max / exp / sum chains are independent, so their
// latencies overlap instead of adding up row after row (about twice the throughput of one row at a
// time at 42 columns).
template <int NV>
void softmax_short_rows_avx512(const float* x, float* y, index_t rows, index_t cols, bool log) {
  constexpr int G = 4;
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) {
    const index_t n = std::min<index_t>(16, cols - 16 * j);
    mask[j] = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  }
  index_t r = 0;
  for (; r + G <= rows; r += G) {
    __m512 v[G][NV], e[G][NV];
    float m[G], sum[G];
    for (int i = 0; i < G; ++i) {
      __m512 vmax = ninf;
      for (int j = 0; j < NV; ++j) {
        v[i][j] = _mm512_mask_loadu_ps(ninf, mask[j], x + (r + i) * cols + 16 * j);
        vmax = _mm512_max_ps(vmax, v[i][j]);
      }
      m[i] = _mm512_reduce_max_ps(vmax);
    }
    bool all_live = true;
    for (int i = 0; i < G; ++i) all_live = all_live && m[i] > kernel::kMaskedBelow<float>;
    if (!all_live) {  // a fully masked row in the group: take the general path for these rows
      for (int i = 0; i < G; ++i) softmax_row_avx512(x + (r + i) * cols, y + (r + i) * cols, cols, log);
      continue;
    }
    for (int i = 0; i < G; ++i) {
      const __m512 vm = _mm512_set1_ps(m[i]);
      __m512 vsum = _mm512_setzero_ps();
      for (int j = 0; j < NV; ++j) {
        e[i][j] = exp_avx512(_mm512_sub_ps(v[i][j], vm));
        vsum = _mm512_add_ps(vsum, e[i][j]);
      }
      sum[i] = _mm512_reduce_add_ps(vsum);
    }
    for (int i = 0; i < G; ++i) {
      float* yr = y + (r + i) * cols;
      if (log) {
        const __m512 vs = _mm512_set1_ps(m[i] + std::log(sum[i]));
        for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(yr + 16 * j, mask[j], _mm512_sub_ps(v[i][j], vs));
      } else {
        const __m512 inv = _mm512_set1_ps(1.0f / sum[i]);
        for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(yr + 16 * j, mask[j], _mm512_mul_ps(e[i][j], inv));
      }
    }
  }
  for (; r < rows; ++r) softmax_row_avx512(x + r * cols, y + r * cols, cols, log);
}

inline void softmax_rows_avx512(const float* x, float* y, index_t rows, index_t cols, bool log) {
  switch ((cols + 15) / 16) {
    case 1: return softmax_short_rows_avx512<1>(x, y, rows, cols, log);
    case 2: return softmax_short_rows_avx512<2>(x, y, rows, cols, log);
    case 3: return softmax_short_rows_avx512<3>(x, y, rows, cols, log);
    case 4: return softmax_short_rows_avx512<4>(x, y, rows, cols, log);
    default:
      for (index_t r = 0; r < rows; ++r) softmax_row_avx512(x + r * cols, y + r * cols, cols, log);
  }
}
}  // namespace detail
#endif

// Whole vectors throughout: a row's tail (cols % W entries) is loaded into a buffer padded with -inf,
// which changes neither the maximum nor the sum (exp(-inf) = 0), so no scalar exp is ever taken.
template <class T>
void softmax(const T* x, T* y, index_t rows, index_t cols, bool log) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    parallel_for(rows, std::max<index_t>(1, 8192 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
      detail::softmax_rows_avx512(x + lo * cols, y + lo * cols, hi - lo, cols, log);
    });
    return;
  }
#endif
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  const T ninf = -std::numeric_limits<T>::infinity();
  const index_t cv = cols / W * W, tail = cols - cv;
  parallel_for(rows, std::max<index_t>(1, 8192 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    alignas(64) T buf[W];
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      V vmax(ninf), vtail(ninf);
      for (index_t i = 0; i < cv; i += W) vmax = xsimd::max(vmax, V::load_unaligned(xr + i));
      if (tail) {
        std::fill(buf, buf + W, ninf);
        std::copy(xr + cv, xr + cols, buf);
        vtail = V::load_aligned(buf);
        vmax = xsimd::max(vmax, vtail);
      }
      const T m = hmax(vmax);
      if (!(m > kernel::kMaskedBelow<T>)) {
        std::fill(yr, yr + cols, T(0));
        continue;
      }
      const V vm(m);
      V vsum(T(0));
      for (index_t i = 0; i < cv; i += W) {
        const V e = xsimd::exp(V::load_unaligned(xr + i) - vm);
        if (!log) e.store_unaligned(yr + i);
        vsum += e;
      }
      if (tail) {
        const V e = xsimd::exp(vtail - vm);
        vsum += e;
        if (!log) e.store_aligned(buf);
      }
      const T sum = xsimd::hadd(vsum);
      if (log) {
        const T shift = m + std::log(sum);
        const V vs(shift);
        for (index_t i = 0; i < cv; i += W) (V::load_unaligned(xr + i) - vs).store_unaligned(yr + i);
        for (index_t i = cv; i < cols; ++i) yr[i] = xr[i] - shift;
      } else {
        const T inv = T(1) / sum;
        const V vinv(inv);
        for (index_t i = 0; i < cv; i += W) (V::load_unaligned(yr + i) * vinv).store_unaligned(yr + i);
        for (index_t i = 0; i < tail; ++i) yr[cv + i] = buf[i] * inv;
      }
    }
  });
}

// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy).
// Fully masked rows (y all zero for softmax) get zero gradient either way.
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, index_t rows, index_t cols, bool log) {
  parallel_for(rows, std::max<index_t>(1, 8192 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* yr = y + r * cols;
      const T* gr = gy + r * cols;
      T* out = gx + r * cols;
      T dot = 0;
      bool all_zero = true;
      for (index_t i = 0; i < cols; ++i) {
        dot += log ? gr[i] : gr[i] * yr[i];
        all_zero = all_zero && yr[i] == T(0);
      }
      if (log && all_zero) {
        std::fill(out, out + cols, T(0));
        continue;
      }
      for (index_t i = 0; i < cols; ++i) out[i] = log ? gr[i] - std::exp(yr[i]) * dot : yr[i] * (gr[i] - dot);
    }
  });
}

}  // namespace blip2::cpu_kernel
