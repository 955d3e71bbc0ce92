#pragma once
// Products with half-precision operands and float32 accumulation: the CPU side of
// Backend<D>::gemm_batched_mixed (operand types: is_mixed_gemm_v in core/dtype.hpp). The case that
// matters, float32 activations times bf16 / f16 weights, goes straight to gemm.hpp, whose kernels read
// the half-precision B directly. A half-precision A or C (the all-half product cuBLAS runs) is
// converted to float32 around that product.
#include <algorithm>
#include <vector>

#include "../../core/dtype.hpp"
#include "gemm.hpp"

namespace blip2::cpu_kernel {

template <class TA, class TB, class TC>
void gemm_batched_mixed(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const TA* A,
                        index_t lda, index_t stride_a, const TB* B, index_t ldb, index_t stride_b, float beta, TC* C,
                        index_t ldc, index_t stride_c, index_t batch) {
  static_assert(is_mixed_gemm_v<TA, TB, TC>, "gemm_batched_mixed: B bf16 / f16, A float32 or B's type, C float32 or A's type");
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if constexpr (is_half_v<TC>) {  // (then A is half too)
    std::vector<float> c(std::size_t(batch * M * N));
    auto each = [&](auto&& f) {
      for (index_t z = 0; z < batch; ++z)
        for (index_t i = 0; i < M; ++i)
          for (index_t j = 0; j < N; ++j) f(c[std::size_t((z * M + i) * N + j)], C[z * stride_c + i * ldc + j]);
    };
    if (beta != 0.0f) each([](float& f, const TC& h) { f = float(h); });
    gemm_batched_mixed(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, c.data(), N, M * N,
                       batch);
    each([](const float& f, TC& h) { h = TC(f); });
  } else if constexpr (is_half_v<TA>) {
    // each stored A (rows x cols, as laid out in memory) to contiguous float32
    const index_t rows = trans_a ? K : M, cols = trans_a ? M : K, items = stride_a == 0 ? 1 : batch;
    std::vector<float> a(std::size_t(items * rows * cols));
    for (index_t z = 0; z < items; ++z)
      for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) a[std::size_t((z * rows + r) * cols + c)] = float(A[z * stride_a + r * lda + c]);
    gemm_batched_mixed(trans_a, trans_b, M, N, K, alpha, a.data(), cols, stride_a == 0 ? 0 : rows * cols, B, ldb,
                       stride_b, beta, C, ldc, stride_c, batch);
  } else {
    gemm_batched(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch);
  }
}

}  // namespace blip2::cpu_kernel
