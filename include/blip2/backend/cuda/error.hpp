#pragma once
// Error checks for the CUDA runtime and cuBLAS: a failing call throws blip2::DeviceError naming the
// call, where it was made, and the runtime's own description of the error.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../../core/error.hpp"

namespace blip2::cuda_kernel {

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so later calls do not report it again
  throw DeviceError(::blip2::detail::cat("CUDA error in ", call, " at ", file, ":", line, ": ", cudaGetErrorName(e), ": ",
                                cudaGetErrorString(e)));
}

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw DeviceError(::blip2::detail::cat("cuBLAS error in ", call, " at ", file, ":", line, ": ", cublasGetStatusName(s), ": ",
                                cublasGetStatusString(s)));
}

// After a kernel launch: reports launch failures (bad configuration, no device, no kernel image for
// this GPU) under the kernel's name. Errors raised while the kernel runs surface at the next
// synchronising call (a copy to the host).
inline void check_launch(const char* kernel, const char* file, int line) {
  check_cuda(cudaGetLastError(), kernel, file, line);
}

}  // namespace blip2::cuda_kernel

#define BLIP2_CUDA_CHECK(call) ::blip2::cuda_kernel::check_cuda((call), #call, __FILE__, __LINE__)
#define BLIP2_CUBLAS_CHECK(call) ::blip2::cuda_kernel::check_cublas((call), #call, __FILE__, __LINE__)
#define BLIP2_CUDA_CHECK_LAUNCH(name) ::blip2::cuda_kernel::check_launch("kernel " name, __FILE__, __LINE__)
