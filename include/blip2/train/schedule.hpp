#pragma once
// Learning-rate schedules: CosineSchedule (linear warm-up from 0, then cosine decay per step to
// min_lr at total_steps) and LinearWarmupCosineLR (LAVIS's linear_warmup_cosine_lr).
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

// LAVIS's LinearWarmupCosineLRScheduler (lavis/common/optims.py), step(cur_epoch, cur_step) before
// each iteration: in epoch 0 the rate rises linearly from warmup_lr to init_lr over warmup_steps
// and then stays there; from epoch 1 on it is constant within an epoch and follows a cosine over
// the epochs, init_lr at epoch 0 down towards min_lr at max_epoch. A negative warmup_lr means
// init_lr (LAVIS's warmup_start_lr = -1).
struct LinearWarmupCosineLR {
  double init_lr = 1e-4, min_lr = 0.0, warmup_lr = -1.0;
  long warmup_steps = 0;
  long max_epoch = 1;

  double lr(long epoch, long step_in_epoch) const {
    if (epoch == 0) {
      const double start = warmup_lr >= 0 ? warmup_lr : init_lr;
      return std::min(init_lr, start + (init_lr - start) * double(step_in_epoch) / double(std::max(1L, warmup_steps)));
    }
    return (init_lr - min_lr) * 0.5 * (1.0 + std::cos(3.141592653589793 * double(epoch) / double(std::max(1L, max_epoch)))) +
           min_lr;
  }
};

}  // namespace blip2
