#pragma once
// Backend<cpu>: the kernel set every device implements, on the host. The ops in ops/ are written once
// against this interface; backend/cuda/backend.hpp implements the same members for the GPU.
#include <cstring>

#include "../../core/device.hpp"
#include "../../fwd.hpp"
#include "elementwise.hpp"
#include "gemm.hpp"
#include "gemm_mixed.hpp"
#include "index.hpp"
#include "memory.hpp"
#include "norm.hpp"
#include "optim.hpp"
#include "random.hpp"
#include "reduce.hpp"
#include "softmax.hpp"

namespace blip2 {

template <>
struct Backend<cpu> {
  static bool available() { return true; }

  // memory
  template <class T> static std::shared_ptr<T> allocate(index_t n) { return cpu_kernel::allocate<T>(n); }
  template <class T> static void copy_from_host(T* dst, const T* src, index_t n) {
    if (n) std::memcpy(dst, src, std::size_t(n) * sizeof(T));
  }
  template <class T> static void copy_to_host(T* dst, const T* src, index_t n) {
    if (n) std::memcpy(dst, src, std::size_t(n) * sizeof(T));
  }

  // elementwise
  template <class T> static void fill(T* dst, index_t n, T v) { cpu_kernel::fill(dst, n, v); }
  template <class S, class T>
  static void copy(const S* src, const Strides& ss, T* dst, const Strides& ds, const Shape& shape) {
    cpu_kernel::copy(src, ss, dst, ds, shape);
  }
  template <class T> static void unary(UnaryOp op, const T* x, T* y, index_t n, T a) {
    cpu_kernel::unary_contiguous(op, x, y, n, a);
  }
  template <class T>
  static void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, index_t n, T a) {
    cpu_kernel::unary_backward(op, x, y, gy, gx, n, a);
  }
  template <class T>
  static void binary(BinaryOp op, const T* a, const Strides& sa, const T* b, const Strides& sb, T* out,
                     const Shape& shape) {
    cpu_kernel::binary(op, a, sa, b, sb, out, shape);
  }
  template <class T> static void reduce(ReduceOp op, const T* x, T* y, index_t outer, index_t len, index_t inner) {
    cpu_kernel::reduce(op, x, y, outer, len, inner);
  }

  // linear algebra
  template <class T>
  static void gemm_batched(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                           index_t sa, const T* B, index_t ldb, index_t sb, T beta, T* C, index_t ldc, index_t sc,
                           index_t batch) {
    cpu_kernel::gemm_batched(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
  }
  // bf16 / f16 B with float32 accumulation; A float32 or B's type, C float32 or A's (is_mixed_gemm_v).
  template <class TA, class TB, class TC>
  static void gemm_batched_mixed(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const TA* A,
                                 index_t lda, index_t sa, const TB* B, index_t ldb, index_t sb, float beta, TC* C,
                                 index_t ldc, index_t sc, index_t batch) {
    cpu_kernel::gemm_batched_mixed(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
  }

  // rows
  template <class T> static void softmax(const T* x, T* y, index_t rows, index_t cols, bool log) {
    cpu_kernel::softmax(x, y, rows, cols, log);
  }
  template <class T>
  static void softmax_backward(const T* y, const T* gy, T* gx, index_t rows, index_t cols, bool log) {
    cpu_kernel::softmax_backward(y, gy, gx, rows, cols, log);
  }
  template <class T>
  static void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, index_t rows, index_t cols, T eps) {
    cpu_kernel::layer_norm(x, w, b, y, mean, rstd, rows, cols, eps);
  }
  template <class T>
  static void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw,
                                  T* gb, index_t rows, index_t cols) {
    cpu_kernel::layer_norm_backward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
  }
  template <class T>
  static void rms_norm(const T* x, const T* w, T* y, T* rstd, index_t rows, index_t cols, T eps) {
    cpu_kernel::rms_norm(x, w, y, rstd, rows, cols, eps);
  }
  template <class T>
  static void rms_norm_backward(const T* x, const T* w, const T* rstd, const T* gy, T* gx, T* gw, index_t rows,
                                index_t cols) {
    cpu_kernel::rms_norm_backward(x, w, rstd, gy, gx, gw, rows, cols);
  }

  // indexing (indices live on this device)
  static index_t find_out_of_range(const std::int64_t* idx, index_t n, index_t len) {
    return cpu_kernel::find_out_of_range(idx, n, len);
  }
  template <class T>
  static void index_select(const T* src, const std::int64_t* idx, index_t n, T* out, index_t outer, index_t len,
                           index_t inner) {
    cpu_kernel::index_select(src, idx, n, out, outer, len, inner);
  }
  template <class T>
  static void index_add(T* dst, const std::int64_t* idx, index_t n, const T* src, index_t outer, index_t len,
                        index_t inner) {
    cpu_kernel::index_add(dst, idx, n, src, outer, len, inner);
  }

  // optimizers
  template <class T>
  static void adamw_step(T* p, const T* g, T* m, T* v, index_t n, T lr, T b1, T b2, T eps, T wd, T bc1, T bc2_sqrt) {
    cpu_kernel::adamw_step(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2_sqrt);
  }

  // random
  template <class T>
  static void fill_uniform(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double lo, double hi) {
    cpu_kernel::fill_uniform(d, n, seed, first, lo, hi);
  }
  template <class T>
  static void fill_normal(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double mean, double sd) {
    cpu_kernel::fill_normal(d, n, seed, first, mean, sd);
  }
  template <class T>
  static void fill_dropout_mask(T* d, index_t n, std::uint64_t seed, std::uint64_t first, double p) {
    cpu_kernel::fill_dropout_mask(d, n, seed, first, p);
  }
};

}  // namespace blip2
