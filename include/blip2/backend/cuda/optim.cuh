#pragma once
// Fused optimizer updates on the device, in the CPU back end's order of operations.
#include <cmath>

#include "launch.cuh"

namespace blip2::cuda_kernel {

// torch.optim.AdamW's single-tensor update (see backend/cpu/optim.hpp).
template <class T>
void adamw_step(T* p, const T* g, T* m, T* v, index_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                T bias_correction1, T bias_correction2_sqrt) {
  const T decay = T(1) - lr * weight_decay, step_size = lr / bias_correction1;
  for_each(
      n,
      [=] __device__(index_t i) {
        T pi = p[i] * decay;
        const T gi = g[i];
        const T mi = m[i] + (T(1) - beta1) * (gi - m[i]);
        const T vi = v[i] * beta2 + (T(1) - beta2) * gi * gi;
        pi -= step_size * (mi / (std::sqrt(vi) / bias_correction2_sqrt + eps));
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
      },
      "adamw_step");
}

}  // namespace blip2::cuda_kernel
