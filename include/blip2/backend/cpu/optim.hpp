#pragma once
// Fused optimizer updates (one pass over parameter, gradient and state).
#include <cmath>

#include "../../core/shape.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

// torch.optim.AdamW's single-tensor update, in the same order of operations:
// p *= 1 - lr*wd; m += (1-b1)(g - m); v = b2 v + (1-b2) g^2; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
template <class T>
void adamw_step(T* p, const T* g, T* m, T* v, index_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                T bias_correction1, T bias_correction2_sqrt) {
  const T decay = T(1) - lr * weight_decay, step_size = lr / bias_correction1;
  parallel_for(n, 16384, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      p[i] *= decay;
      m[i] += (T(1) - beta1) * (g[i] - m[i]);
      v[i] = v[i] * beta2 + (T(1) - beta2) * g[i] * g[i];
      p[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bias_correction2_sqrt + eps));
    }
  });
}

}  // namespace blip2::cpu_kernel
