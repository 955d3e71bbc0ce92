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
#include <vector>

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

// Whether X is given with split_pairs applied (bf16 W read as pairs, half_load.hpp).
template <class TW> inline constexpr bool kPairsOf = kBf16Pairs && std::is_same_v<TW, bf16>;

// R rows of W from row n against MB rows of X (W row-major [N, K]).
template <int MB, int R, class TW>
void small_dot_rows(const SmallArgs<TW>& s, const float* x, float* c, index_t n) {
  using V = simd<float>;
  constexpr index_t W = simd_width<float>;
  const index_t K = s.K, kv = K / W * W;
  const TW* w[R];
  for (int j = 0; j < R; ++j) w[j] = s.w + (n + j) * s.ldw;
  V acc[MB][R];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < R; ++j) acc[m][j] = V(0.0f);
  auto fma_rows = [&](index_t xk, const V (&wv)[R]) {  // acc += X(:, xk .. xk + W) * wv
    for (int m = 0; m < MB; ++m) {
      const V xv = V::load_unaligned(x + m * s.ldx + xk);
      for (int j = 0; j < R; ++j) acc[m][j] = xsimd::fma(xv, wv[j], acc[m][j]);
    }
  };
  auto step = [&](index_t k) {
    V wv[R];
    for (int j = 0; j < R; ++j) wv[j] = load_float(w[j] + k);
    fma_rows(k, wv);
  };
  // One cache line of each row per iteration, with its line kPrefetchBytes ahead requested: a half-precision
  // line takes more instructions than a float32 one, which leaves fewer lines in flight from the
  // out-of-order window alone (measured on one core: bf16 10-11 -> 12-14 GB/s, with pairs 15-16).
  constexpr index_t L = kLineBytes / index_t(sizeof(TW)), D = kPrefetchBytes / index_t(sizeof(TW));
  index_t k = 0;
  for (; k + L <= kv; k += L) {
    for (int j = 0; j < R; ++j) __builtin_prefetch(w[j] + k + D);
    if constexpr (kPairsOf<TW> && L == 2 * W) {
      V even[R], odd[R];
      for (int j = 0; j < R; ++j) load_bf16_pairs(w[j] + k, even[j], odd[j]);
      fma_rows(k, even);
      fma_rows(k + W, odd);
    } else {
      for (index_t u = 0; u < L; u += W) step(k + u);
    }
  }
  for (; k < kv; k += W) step(k);
  for (int m = 0; m < MB; ++m) {
    const float* xm = x + m * s.ldx;
    float r[R];
    for (int j = 0; j < R; ++j) r[j] = xsimd::hadd(acc[m][j]);
    for (index_t kk = kv; kk < K; ++kk)
      for (int j = 0; j < R; ++j) r[j] += xm[kk] * float(w[j][kk]);
    for (int j = 0; j < R; ++j) small_store(s, c + m * s.rs + (n + j) * s.cs, r[j]);
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
    for_row_groups(s, [&](auto mb, const float* x, float* c) { small_dot_rows<decltype(mb)::value, 4>(s, x, c, n); });
  for (; n < n1; ++n)
    for_row_groups(s, [&](auto mb, const float* x, float* c) { small_dot_rows<decltype(mb)::value, 1>(s, x, c, n); });
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
void gemm_small_split(const SmallArgs<TW>& s) {
  constexpr index_t unit = 16;
  const index_t units = (s.N + unit - 1) / unit;
  const index_t grain = std::max<index_t>(1, (index_t(1) << 16) / std::max<index_t>(1, s.M * s.K * unit));
  parallel_for(units, grain, [&](index_t lo, index_t hi) {
    const index_t n0 = lo * unit, n1 = std::min(s.N, hi * unit);
    if (s.w_kn) small_axpy(s, n0, n1);
    else small_dot(s, n0, n1);
  });
}

template <class TW>
void gemm_small(const SmallArgs<TW>& s) {
  if constexpr (kPairsOf<TW>) {
    if (!s.w_kn) {  // X (at most 16 rows) reordered once for small_dot_rows's pair loads
      std::vector<float> xs(std::size_t(s.M * s.K));
      for (index_t m = 0; m < s.M; ++m) split_pairs(s.x + m * s.ldx, s.K, xs.data() + m * s.K);
      SmallArgs<TW> t = s;
      t.x = xs.data(), t.ldx = s.K;
      return gemm_small_split(t);
    }
  }
  gemm_small_split(s);
}

}  // namespace blip2::cpu_kernel::gemm_detail
