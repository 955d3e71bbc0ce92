#pragma once
// Layer norm and RMS norm over the last axis (rows x cols), forward and backward. Forward saves the
// per-row statistics (mean and 1/std) the backward needs.
#include <cmath>
#include <vector>

#include "parallel.hpp"
#include "simd.hpp"

namespace blip2::cpu_kernel {

namespace detail {
// The row reductions keep four vector accumulators: one accumulator is a chain of dependent adds
// (4 cycles each), which made a 2560-wide row's reduction latency-bound rather than load-bound.
template <class T, class F>
T reduce4(index_t n, F&& term) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  V acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
  index_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    acc0 = term(acc0, i);
    acc1 = term(acc1, i + W);
    acc2 = term(acc2, i + 2 * W);
    acc3 = term(acc3, i + 3 * W);
  }
  for (; i + W <= n; i += W) acc0 = term(acc0, i);
  return xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
}
template <class T>
T dot(const T* a, const T* b, index_t n) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  T s = reduce4<T>(n, [&](const V& acc, index_t i) {
    return xsimd::fma(V::load_unaligned(a + i), V::load_unaligned(b + i), acc);
  });
  for (index_t i = n / W * W; i < n; ++i) s += a[i] * b[i];
  return s;
}
template <class T>
T sum(const T* a, index_t n) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  T s = reduce4<T>(n, [&](const V& acc, index_t i) { return acc + V::load_unaligned(a + i); });
  for (index_t i = n / W * W; i < n; ++i) s += a[i];
  return s;
}
// sum (a[i] - mu)^2
template <class T>
T centered_squares(const T* a, T mu, index_t n) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  const V vmu(mu);
  T s = reduce4<T>(n, [&](const V& acc, index_t i) {
    const V d = V::load_unaligned(a + i) - vmu;
    return xsimd::fma(d, d, acc);
  });
  for (index_t i = n / W * W; i < n; ++i) s += (a[i] - mu) * (a[i] - mu);
  return s;
}
// Per-chunk partial sums of parameter gradients, added into the outputs at the end.
template <class T>
struct PartialSums {
  PartialSums(index_t chunks, index_t cols, int count) : cols(cols), buf(std::size_t(chunks * cols * count), T(0)) {}
  T* at(index_t chunk, int which) { return buf.data() + (chunk * 2 + which) * cols; }
  index_t cols;
  std::vector<T> buf;
};
}  // namespace detail

// w, b may be null (no affine part).
template <class T>
void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, index_t rows, index_t cols, T eps) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  parallel_for(rows, std::max<index_t>(1, 4096 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      const T mu = detail::sum(xr, cols) / T(cols);
      const V vmu(mu);
      const T var = detail::centered_squares(xr, mu, cols);
      index_t i = 0;
      const T rs = T(1) / std::sqrt(var / T(cols) + eps);
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
      const V vrs(rs);
      for (i = 0; i + W <= cols; i += W) {
        V v = (V::load_unaligned(xr + i) - vmu) * vrs;
        if (w) v = v * V::load_unaligned(w + i);
        if (b) v = v + V::load_unaligned(b + i);
        v.store_unaligned(yr + i);
      }
      for (; i < cols; ++i) yr[i] = (xr[i] - mu) * rs * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
    }
  });
}

// gx (may be null) = d/dx; gw, gb (may be null) += d/dw, d/db.
template <class T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                         index_t rows, index_t cols) {
  detail::PartialSums<T> part(max_chunks(), cols, 2);
  parallel_chunks(rows, std::max<index_t>(1, 2048 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi, index_t c) {
    T* pw = part.at(c, 0);
    T* pb = part.at(c, 1);
    std::vector<T> xhat(std::size_t(cols), T(0)), g(std::size_t(cols), T(0));
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      T sum_g = 0, sum_gx = 0;
      for (index_t i = 0; i < cols; ++i) {
        xhat[i] = (xr[i] - mean[r]) * rstd[r];
        g[i] = gr[i] * (w ? w[i] : T(1));
        sum_g += g[i];
        sum_gx += g[i] * xhat[i];
        pw[i] += gr[i] * xhat[i];
        pb[i] += gr[i];
      }
      if (gx) {
        const T mg = sum_g / T(cols), mgx = sum_gx / T(cols);
        T* out = gx + r * cols;
        for (index_t i = 0; i < cols; ++i) out[i] = rstd[r] * (g[i] - mg - xhat[i] * mgx);
      }
    }
  });
  for (index_t c = 0; c < max_chunks(); ++c)
    for (index_t i = 0; i < cols; ++i) {
      if (gw) gw[i] += part.at(c, 0)[i];
      if (gb) gb[i] += part.at(c, 1)[i];
    }
}

// T5's RMS norm: y = x / sqrt(mean(x^2) + eps) * w (w may be null).
template <class T>
void rms_norm(const T* x, const T* w, T* y, T* rstd, index_t rows, index_t cols, T eps) {
  using V = simd<T>;
  constexpr index_t W = simd_width<T>;
  parallel_for(rows, std::max<index_t>(1, 4096 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      const T rs = T(1) / std::sqrt(detail::dot(xr, xr, cols) / T(cols) + eps);
      if (rstd) rstd[r] = rs;
      const V vrs(rs);
      index_t i = 0;
      for (; i + W <= cols; i += W) {
        V v = V::load_unaligned(xr + i) * vrs;
        if (w) v = v * V::load_unaligned(w + i);
        v.store_unaligned(yr + i);
      }
      for (; i < cols; ++i) yr[i] = xr[i] * rs * (w ? w[i] : T(1));
    }
  });
}

template <class T>
void rms_norm_backward(const T* x, const T* w, const T* rstd, const T* gy, T* gx, T* gw, index_t rows, index_t cols) {
  detail::PartialSums<T> part(max_chunks(), cols, 2);
  parallel_chunks(rows, std::max<index_t>(1, 2048 / std::max<index_t>(cols, 1)), [&](index_t lo, index_t hi, index_t c) {
    T* pw = part.at(c, 0);
    for (index_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      T dot = 0;
      for (index_t i = 0; i < cols; ++i) {
        const T xh = xr[i] * rstd[r];
        dot += gr[i] * (w ? w[i] : T(1)) * xh;
        pw[i] += gr[i] * xh;
      }
      if (gx) {
        const T m = dot / T(cols);
        T* out = gx + r * cols;
        for (index_t i = 0; i < cols; ++i) out[i] = rstd[r] * (gr[i] * (w ? w[i] : T(1)) - xr[i] * rstd[r] * m);
      }
    }
  });
  if (gw)
    for (index_t c = 0; c < max_chunks(); ++c)
      for (index_t i = 0; i < cols; ++i) gw[i] += part.at(c, 0)[i];
}

}  // namespace blip2::cpu_kernel
