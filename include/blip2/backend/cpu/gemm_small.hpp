#pragma once
// Float32 products with few rows (decode: x W^T with M = 1) or few columns. They are bound by
// reading the large operand once, so there is no packing: each thread takes a block of the output
// columns and streams its part of the weights straight from memory. W may be stored as bf16 or f16
// (half-precision weights): it is converted in registers as it is read, which halves the traffic.
//
//   C(m, n) = alpha * sum_k X(m, k) W(n, k) + beta * C(m, n),   m < M (small), n < N
// X has contiguous rows (x[m*ldx + k]). W is either row-major [N, K] (the HF weight layout: dot
// products along k, four rows of W at a time) or given as [K, N] (w[k*ldw + n]: scaled row sums,
// four rows of it at a time, accumulating a block of columns). C(m, n) is at c[m*rs + n*cs], so the
// same code serves the transposed problem (few columns) too.
#include <algorithm>
#include <type_traits>

#include "half_load.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel::gemm_detail {

// Up to how many rows of X this path beats packing (measured at K = 768..2560): the dot products
// over W [N, K] stay ahead of the packed GEMM up to 16 rows, the row sums over W [K, N] up to 8.
inline constexpr index_t kSmallRows = 16;
inline index_t small_rows_limit(bool w_kn) { return w_kn ? 8 : kSmallRows; }
inline constexpr index_t kLineBytes = 64, kPrefetchBytes = 1024;

template <class TW>
struct SmallArgs {
  index_t M, N, K;
  float alpha;
  const float* x;
  index_t ldx;
  const TW* w;
  index_t ldw;
  bool w_kn;  // false: W(n, k) = w[n*ldw + k]; true: W(n, k) = w[k*ldw + n]
  float beta;
  float* c;
  index_t rs, cs;
};

template <class S>
void small_store(const S& s, float* c, float v) {
  *c = s.beta == 0.0f ? s.alpha * v : s.alpha * v + s.beta * *c;  // beta == 0: C is never read
}

// Rows n in [n0, n1) of W against MB rows of X (W row-major [N, K]): four rows of W at a time.
template <int MB, class TW>
void small_dot4(const SmallArgs<TW>& s, const float* x, float* c, index_t n) {
  using V = simd<float>;
  constexpr index_t W = simd_width<float>;
  const index_t K = s.K, kv = K / W * W;
  const TW* w0 = s.w + n * s.ldw;
  const TW* w1 = w0 + s.ldw;
  const TW* w2 = w1 + s.ldw;
  const TW* w3 = w2 + s.ldw;
  V acc[MB][4];
  for (int m = 0; m < MB; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = V(0.0f);
  auto step = [&](index_t k) {
    const V a0 = load_float(w0 + k), a1 = load_float(w1 + k), a2 = load_float(w2 + k), a3 = load_float(w3 + k);
    for (int m = 0; m < MB; ++m) {
      const V xv = V::load_unaligned(x + m * s.ldx + k);
      acc[m][0] = xsimd::fma(xv, a0, acc[m][0]);
      acc[m][1] = xsimd::fma(xv, a1, acc[m][1]);
      acc[m][2] = xsimd::fma(xv, a2, acc[m][2]);
      acc[m][3] = xsimd::fma(xv, a3, acc[m][3]);
    }
  };
  // One cache line of each row per iteration, with its line kPrefetchBytes ahead requested: a half-precision
  // line takes twice the instructions of a float32 one, which leaves fewer lines in flight from the
  // out-of-order window alone (measured: bf16 10-11 -> 12-13.5 GB/s on one core, float32 unchanged).
  constexpr index_t L = kLineBytes / index_t(sizeof(TW)), D = kPrefetchBytes / index_t(sizeof(TW));
  index_t k = 0;
  for (; k + L <= kv; k += L) {
    for (const TW* w : {w0, w1, w2, w3}) __builtin_prefetch(w + k + D);
    for (index_t u = 0; u < L; u += W) step(k + u);
  }
  for (; k < kv; k += W) step(k);
  for (int m = 0; m < MB; ++m) {
    const float* xm = x + m * s.ldx;
    float r[4] = {xsimd::hadd(acc[m][0]), xsimd::hadd(acc[m][1]), xsimd::hadd(acc[m][2]), xsimd::hadd(acc[m][3])};
    for (index_t k = kv; k < K; ++k) {
      r[0] += xm[k] * float(w0[k]);
      r[1] += xm[k] * float(w1[k]);
      r[2] += xm[k] * float(w2[k]);
      r[3] += xm[k] * float(w3[k]);
    }
    for (int j = 0; j < 4; ++j) small_store(s, c + m * s.rs + (n + j) * s.cs, r[j]);
  }
}

template <int MB, class TW>
void small_dot1(const SmallArgs<TW>& s, const float* x, float* c, index_t n) {
  using V = simd<float>;
  constexpr index_t W = simd_width<float>;
  const index_t K = s.K, kv = K / W * W;
  const TW* w0 = s.w + n * s.ldw;
  V acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = V(0.0f);
  for (index_t k = 0; k < kv; k += W) {
    const V a0 = load_float(w0 + k);
    for (int m = 0; m < MB; ++m) acc[m] = xsimd::fma(V::load_unaligned(x + m * s.ldx + k), a0, acc[m]);
  }
  for (int m = 0; m < MB; ++m) {
    float r = xsimd::hadd(acc[m]);
    for (index_t k = kv; k < K; ++k) r += x[m * s.ldx + k] * float(w0[k]);
    small_store(s, c + m * s.rs + n * s.cs, r);
  }
}

// Calls f(integral_constant<int, MB>, x, c) for the rows of X in groups of MB <= 4.
template <int MB, class S, class F>
void for_row_groups_impl(const S& s, index_t m, F& f) {
  f(std::integral_constant<int, MB>{}, s.x + m * s.ldx, s.c + m * s.rs);
}
template <class S, class F>
void for_row_groups(const S& s, F&& f) {
  for (index_t m = 0; m < s.M; m += 4) {
    switch (std::min<index_t>(4, s.M - m)) {
      case 1: for_row_groups_impl<1>(s, m, f); break;
      case 2: for_row_groups_impl<2>(s, m, f); break;
      case 3: for_row_groups_impl<3>(s, m, f); break;
      default: for_row_groups_impl<4>(s, m, f); break;
    }
  }
}

// W row-major [N, K]: each block of four rows of W is read from memory once and used by every row
// of X while it sits in L1.
template <class TW>
void small_dot(const SmallArgs<TW>& s, index_t n0, index_t n1) {
  index_t n = n0;
  for (; n + 4 <= n1; n += 4)
    for_row_groups(s, [&](auto mb, const float* x, float* c) { small_dot4<decltype(mb)::value>(s, x, c, n); });
  for (; n < n1; ++n)
    for_row_groups(s, [&](auto mb, const float* x, float* c) { small_dot1<decltype(mb)::value>(s, x, c, n); });
}

// Columns n in [n0, n1) with W given as [K, N]: a block of CB columns for every row of X accumulates
// in L1 while four rows of w stream past it (each read from memory once).
template <class TW>
void small_axpy(const SmallArgs<TW>& s, index_t n0, index_t n1) {
  using V = simd<float>;
  constexpr index_t W = simd_width<float>, CB = 256;
  alignas(64) float acc[kSmallRows][CB];
  for (index_t j0 = n0; j0 < n1; j0 += CB) {
    const index_t cb = std::min(CB, n1 - j0), cv = cb / W * W;
    for (index_t m = 0; m < s.M; ++m) std::fill(acc[m], acc[m] + cb, 0.0f);
    index_t k = 0;
    for (; k + 4 <= s.K; k += 4) {
      const TW* b0 = s.w + k * s.ldw + j0;
      const TW* b1 = b0 + s.ldw;
      const TW* b2 = b1 + s.ldw;
      const TW* b3 = b2 + s.ldw;
      for (index_t m = 0; m < s.M; ++m) {
        const float* xm = s.x + m * s.ldx + k;
        const V x0(xm[0]), x1(xm[1]), x2(xm[2]), x3(xm[3]);
        float* am = acc[m];
        index_t j = 0;
        for (; j < cv; j += W) {
          V a = V::load_aligned(am + j);
          a = xsimd::fma(x0, load_float(b0 + j), a);
          a = xsimd::fma(x1, load_float(b1 + j), a);
          a = xsimd::fma(x2, load_float(b2 + j), a);
          a = xsimd::fma(x3, load_float(b3 + j), a);
          a.store_aligned(am + j);
        }
        for (; j < cb; ++j)
          am[j] += xm[0] * float(b0[j]) + xm[1] * float(b1[j]) + xm[2] * float(b2[j]) + xm[3] * float(b3[j]);
      }
    }
    for (; k < s.K; ++k) {
      const TW* b0 = s.w + k * s.ldw + j0;
      for (index_t m = 0; m < s.M; ++m) {
        const float xk = s.x[m * s.ldx + k];
        for (index_t j = 0; j < cb; ++j) acc[m][j] += xk * float(b0[j]);
      }
    }
    for (index_t m = 0; m < s.M; ++m) {
      float* cm = s.c + m * s.rs + j0 * s.cs;
      for (index_t j = 0; j < cb; ++j) small_store(s, cm + j * s.cs, acc[m][j]);
    }
  }
}

// Threads split the N columns (units of 16 so that blocks start on vector boundaries).
template <class TW>
void gemm_small(const SmallArgs<TW>& s) {
  constexpr index_t unit = 16;
  const index_t units = (s.N + unit - 1) / unit;
  const index_t grain = std::max<index_t>(1, (index_t(1) << 16) / std::max<index_t>(1, s.M * s.K * unit));
  parallel_for(units, grain, [&](index_t lo, index_t hi) {
    const index_t n0 = lo * unit, n1 = std::min(s.N, hi * unit);
    if (s.w_kn) small_axpy(s, n0, n1);
    else small_dot(s, n0, n1);
  });
}

}  // namespace blip2::cpu_kernel::gemm_detail
