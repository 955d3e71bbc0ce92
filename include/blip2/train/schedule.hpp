#pragma once
// Learning-rate schedule: linear warm-up from 0, then cosine decay to min_lr at total_steps.
#include <algorithm>
#include <cmath>

namespace blip2 {

struct CosineSchedule {
  double base_lr = 1e-4;
  long warmup_steps = 0;
  long total_steps = 1;
  double min_lr = 0.0;

  double lr(long step) const {
    if (step < warmup_steps) return base_lr * double(step) / double(std::max(1L, warmup_steps));
    const double progress =
        std::min(1.0, double(step - warmup_steps) / double(std::max(1L, total_steps - warmup_steps)));
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  }
};

}  // namespace blip2
