#pragma once
// Dense matrix products on the CPU, row-major: C = alpha * op(A) op(B) + beta * C, where op(A) is
// M x K and op(B) is K x N; a transposed operand is read in place (the HF weight layout [out, in]
// is used as B with trans_b). beta == 0 never reads C.
//
// float: few rows or few columns (decode, M = 1; up to 8-16) -> gemm_small.hpp, no packing;
//        everything else -> gemm_packed.hpp, the cache-blocked, packed, register-blocked GEMM.
//        B may be bf16 / f16 (half-precision weights, A and C float32): both paths read it directly.
// double (and any other type): Eigen.
#include <Eigen/Core>
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/shape.hpp"
#include "gemm_packed.hpp"
#include "gemm_small.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

namespace gemm_detail {

inline void scale_rows(index_t M, index_t N, float beta, float* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) std::fill(c, c + N, 0.0f);
    else
      for (index_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

// The rows of a strided operand copied contiguous in float32: out(r, k) = p[r*rs + k*ks], r < rows, k < K.
template <class T>
std::vector<float> gather_rows(const T* p, index_t rows, index_t K, index_t rs, index_t ks) {
  std::vector<float> out(std::size_t(rows * K));
  for (index_t r = 0; r < rows; ++r)
    for (index_t k = 0; k < K; ++k) out[std::size_t(r * K + k)] = float(p[r * rs + k * ks]);
  return out;
}

// TB: float, bf16 or f16.
template <class TB>
void gemm_f32(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
              const TB* B, index_t ldb, float beta, float* C, index_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) return scale_rows(M, N, beta, C, ldc);
  if (M <= small_rows_limit(!trans_b)) {
    // X = op(A) (M rows of K), W(n, k) = op(B)(k, n)
    std::vector<float> xa;
    const float* x = A;
    index_t ldx = lda;
    if (trans_a) {
      xa = gather_rows(A, M, K, 1, lda);
      x = xa.data(), ldx = K;
    }
    return gemm_small(SmallArgs<TB>{M, N, K, alpha, x, ldx, B, ldb, !trans_b, beta, C, ldc, 1});
  }
  if (N <= small_rows_limit(trans_a)) {
    // The transposed problem C^T = op(B)^T op(A)^T: X(n, k) = op(B)(k, n), W(m, k) = op(A)(m, k)
    std::vector<float> xb;
    const float* x = nullptr;
    index_t ldx = K;
    if constexpr (std::is_same_v<TB, float>) {
      if (trans_b) x = B, ldx = ldb;
    }
    if (!x) {  // a half-precision B is small here: convert it
      xb = trans_b ? gather_rows(B, N, K, ldb, 1) : gather_rows(B, N, K, 1, ldb);
      x = xb.data();
    }
    return gemm_small(SmallArgs<float>{N, M, K, alpha, x, ldx, A, lda, trans_a, beta, C, 1, ldc});
  }
  gemm_packed(GemmArgs<TB>{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc});
}

}  // namespace gemm_detail

// The Eigen product (any element type; Eigen threads it itself outside parallel regions).
template <class T>
void gemm_eigen(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  MMap c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (beta == T(0)) c.setZero();
    else c *= beta;
    return;
  }
  const CMap a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  const CMap b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  auto product = [&](const auto& x, const auto& y) {
    if (beta == T(0)) c.noalias() = alpha * (x * y);  // C may hold garbage: never read it
    else {
      c *= beta;
      c.noalias() += alpha * (x * y);
    }
  };
  if (trans_a && trans_b) product(a.transpose(), b.transpose());
  else if (trans_a) product(a.transpose(), b);
  else if (trans_b) product(a, b.transpose());
  else product(a, b);
}

// TB is T, or bf16 / f16 when T is float.
template <class T, class TB>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const TB* B, index_t ldb, T beta, T* C, index_t ldc) {
  static_assert(std::is_same_v<TB, T> || (std::is_same_v<T, float> && is_half_v<TB>),
                "gemm (cpu): B is of A's type, or bf16 / f16 with float32 A and C");
  if constexpr (std::is_same_v<T, float>)
    gemm_detail::gemm_f32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm_eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// `batch` independent products; operand i starts at A + i*stride_a (a stride of 0 reuses the operand).
template <class T, class TB>
void gemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                  index_t stride_a, const TB* B, index_t ldb, index_t stride_b, T beta, T* C, index_t ldc,
                  index_t stride_c, index_t batch) {
  // Many small products: one per thread; few large ones: each product is threaded inside.
  const bool across = batch >= num_threads() && M * N * K < (index_t(1) << 24);
  if (across) {
    parallel_for(batch, 1, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i)
        gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta, C + i * stride_c, ldc);
    });
  } else {
    for (index_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta, C + i * stride_c, ldc);
  }
}

}  // namespace blip2::cpu_kernel
