#pragma once
// Dense matrix products on the GPU with cuBLAS, row-major: C = alpha * op(A) op(B) + beta * C with
// op(A) M x K and op(B) K x N. cuBLAS is column-major, and a row-major matrix read column-major is
// its transpose, so the row-major product C = op(A) op(B) is computed as the column-major product
// C^T = op(B)^T op(A)^T: the operands swap places and M and N swap roles; the transpose flags stay.
//
// float32 runs in float32 (no TF32, so results match the CPU's to rounding), float64 in float64;
// gemm_batched_mixed takes a bf16 / f16 B and accumulates in float32 (operand types: is_mixed_gemm_v
// in core/dtype.hpp, the same contract as the CPU's). All-half products run on the tensor cores;
// cuBLAS has no float32 x half product, so a float32 A (activations times half-precision weights)
// meets B converted to float32 a block of columns at a time, never the whole matrix at once.
#include <climits>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../../core/dtype.hpp"
#include "elementwise.cuh"
#include "launch.cuh"
#include "memory.hpp"

namespace blip2::cuda_kernel {

// One cuBLAS handle per (thread, device). Handles are never destroyed (destroying them during
// process exit races the runtime's own teardown); a thread that ends gives its handles to a pool
// that the next new thread draws from, so the number of handles stays bounded by the number of
// threads alive at once.
class CublasHandles {
 public:
  static cublasHandle_t current() {
    int device = 0;
    BLIP2_CUDA_CHECK(cudaGetDevice(&device));
    thread_local ThreadHandles mine;
    auto it = mine.by_device.find(device);
    if (it != mine.by_device.end()) return it->second;
    cublasHandle_t h = pool().take(device);
    if (!h) BLIP2_CUBLAS_CHECK(cublasCreate(&h));
    BLIP2_CUBLAS_CHECK(cublasSetStream(h, stream()));
    mine.by_device.emplace(device, h);
    return h;
  }

 private:
  struct Pool {
    std::mutex mutex;
    std::unordered_map<int, std::vector<cublasHandle_t>> free;
    cublasHandle_t take(int device) {
      std::lock_guard<std::mutex> lock(mutex);
      auto& list = free[device];
      if (list.empty()) return nullptr;
      cublasHandle_t h = list.back();
      list.pop_back();
      return h;
    }
    void give(int device, cublasHandle_t h) {
      std::lock_guard<std::mutex> lock(mutex);
      free[device].push_back(h);
    }
  };
  static Pool& pool() {
    static Pool* p = new Pool();  // never destroyed, like the handles
    return *p;
  }
  struct ThreadHandles {
    std::unordered_map<int, cublasHandle_t> by_device;
    ~ThreadHandles() {
      for (auto& [device, h] : by_device) pool().give(device, h);
    }
  };
};

namespace gemm_detail {
inline int to_int(index_t v, const char* what) {
  BLIP2_CHECK(v >= 0 && v <= INT_MAX, ShapeError, "gemm (cuda): ", what, " = ", v, " does not fit cuBLAS's int");
  return int(v);
}

template <class T> constexpr cudaDataType_t cuda_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, double>) return CUDA_R_64F;
  else if constexpr (std::is_same_v<T, bf16>) return CUDA_R_16BF;
  else return CUDA_R_16F;
}

// C = beta * C for every matrix of the batch (the product with K == 0).
template <class T>
void scale_batched(index_t M, index_t N, T beta, T* C, index_t ldc, index_t stride_c, index_t batch) {
  for_each(
      batch * M * N,
      [=] __device__(index_t k) {
        const index_t j = k % N, i = (k / N) % M, z = k / (M * N);
        T& c = C[z * stride_c + i * ldc + j];
        c = beta == T(0) ? T(0) : beta * c;
      },
      "gemm (scale)");
}

// The strided-batched product through cublasGemmStridedBatchedEx (row-major, see the top).
template <class In, class Out, class Scalar>
void gemm_ex(bool ta, bool tb, index_t M, index_t N, index_t K, Scalar alpha, const In* A, index_t lda, index_t sa,
             const In* B, index_t ldb, index_t sb, Scalar beta, Out* C, index_t ldc, index_t sc, index_t batch,
             cublasComputeType_t compute) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const int m = to_int(N, "N"), n = to_int(M, "M"), k = to_int(K, "K"), nb = to_int(batch, "batch");
  const int la = to_int(lda, "lda"), lb = to_int(ldb, "ldb"), lc = to_int(ldc, "ldc");
  BLIP2_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      CublasHandles::current(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, B,
      cuda_type<In>(), lb, static_cast<long long>(sb), A, cuda_type<In>(), la, static_cast<long long>(sa), &beta, C,
      cuda_type<Out>(), lc, static_cast<long long>(sc), nb, compute, CUBLAS_GEMM_DEFAULT));
}
}  // namespace gemm_detail

// `batch` independent products; operand i starts at A + i*stride_a (a stride of 0 reuses the operand).
template <class T>
void gemm_batched(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, index_t sa,
                  const T* B, index_t ldb, index_t sb, T beta, T* C, index_t ldc, index_t sc, index_t batch) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "gemm_batched (cuda): float32 or float64; bf16/f16 operands go through gemm_batched_mixed");
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) return gemm_detail::scale_batched(M, N, beta, C, ldc, sc, batch);
  gemm_detail::gemm_ex(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch,
                  std::is_same_v<T, float> ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_64F);
}

// bf16 / f16 B, float32 accumulation; A float32 or B's type, C float32 or A's type.
template <class TA, class TB, class TC>
void gemm_batched_mixed(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const TA* A, index_t lda,
                        index_t sa, const TB* B, index_t ldb, index_t sb, float beta, TC* C, index_t ldc, index_t sc,
                        index_t batch) {
  static_assert(is_mixed_gemm_v<TA, TB, TC>,
                "gemm_batched_mixed (cuda): B bf16 / f16, A float32 or B's type, C float32 or A's type");
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if constexpr (std::is_same_v<TA, TB>) {
    BLIP2_CHECK(K > 0, ShapeError, "gemm_batched_mixed (cuda): K = 0 is not supported with half-precision A");
    gemm_detail::gemm_ex(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch, CUBLAS_COMPUTE_32F);
  } else {
    if (K <= 0) return gemm_detail::scale_batched(M, N, beta, C, ldc, sc, batch);
    // columns [n0, n0 + nb) of op(B): rows of B [N, K] (tb) or columns of B [K, N], to float32 [nb, K] or [K, nb]
    const index_t block = std::min(N, std::max<index_t>(64, (index_t(1) << 24) / K));
    const std::shared_ptr<float> tmp = allocate<float>(block * K);
    for (index_t z = 0; z < batch; ++z)
      for (index_t n0 = 0; n0 < N; n0 += block) {
        const index_t nb = std::min(block, N - n0);
        const TB* src = B + z * sb + (tb ? n0 * ldb : n0);
        if (tb) copy(src, Strides{ldb, 1}, tmp.get(), Strides{K, 1}, Shape{nb, K});
        else copy(src, Strides{ldb, 1}, tmp.get(), Strides{nb, 1}, Shape{K, nb});
        gemm_batched(ta, tb, M, nb, K, alpha, A + z * sa, lda, 0, static_cast<const float*>(tmp.get()), tb ? K : nb, 0,
                     beta, C + z * sc + n0, ldc, 0, index_t(1));
      }
  }
}

}  // namespace blip2::cuda_kernel
