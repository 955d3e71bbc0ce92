#pragma once
// Dense matrix products on the CPU, row-major: C = alpha * op(A) op(B) + beta * C, where op(A) is
// M x K and op(B) is K x N; a transposed operand is read in place (the HF weight layout [out, in]
// is used as B with trans_b). Eigen does the work.
#include <Eigen/Core>

#include "../../core/shape.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
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

// `batch` independent products; operand i starts at A + i*stride_a (a stride of 0 reuses the operand).
template <class T>
void gemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                  index_t stride_a, const T* B, index_t ldb, index_t stride_b, T beta, T* C, index_t ldc,
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
