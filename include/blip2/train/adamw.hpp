#pragma once
// AdamW with decoupled weight decay, step for step as torch.optim.AdamW.
#include <cmath>
#include <vector>

#include "../ops/elementwise.hpp"

namespace blip2 {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// Parameters that share a weight decay (torch's param_groups; train/param_groups.hpp builds LAVIS's).
template <class T, class D>
struct ParamGroup {
  std::vector<Tensor<T, D>> params;
  double weight_decay = 0.0;
};

template <class T, class D>
class AdamW {
 public:
  // Every parameter decays by opt.weight_decay.
  AdamW(std::vector<Tensor<T, D>> params, AdamWOptions opt = {}) : opt_(opt) { add(params, opt.weight_decay); }
  // Each group decays by its own weight_decay (opt.weight_decay is unused).
  AdamW(const std::vector<ParamGroup<T, D>>& groups, AdamWOptions opt) : opt_(opt) {
    for (const auto& g : groups) add(g.params, g.weight_decay);
  }

  // One update of every parameter that has a gradient.
  void step() {
    ++step_;
    const double bc1 = 1 - std::pow(opt_.beta1, double(step_)), bc2 = 1 - std::pow(opt_.beta2, double(step_));
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Tensor<T, D> g = params_[i].grad();
      if (!g.defined()) continue;
      Backend<D>::adamw_step(params_[i].data(), g.data(), m_[i].data(), v_[i].data(), params_[i].numel(), T(opt_.lr),
                             T(opt_.beta1), T(opt_.beta2), T(opt_.eps), T(decay_[i]), T(bc1),
                             T(std::sqrt(bc2)));
    }
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }
  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  long steps() const { return step_; }

  // The state a checkpoint keeps, in the order of the parameters: first and second moments and the
  // step count. Restoring them (and the parameters) continues training bit for bit.
  const std::vector<Tensor<T, D>>& parameters() const { return params_; }
  const std::vector<Tensor<T, D>>& first_moments() const { return m_; }
  const std::vector<Tensor<T, D>>& second_moments() const { return v_; }
  void set_steps(long steps) { step_ = steps; }

 private:
  void add(const std::vector<Tensor<T, D>>& params, double weight_decay) {
    for (const auto& p : params) {
      BLIP2_CHECK(p.is_contiguous() && p.impl().requires_grad, ValueError, "AdamW: parameter of shape ",
                  to_string(p.shape()), " must be a contiguous leaf with requires_grad");
      params_.push_back(p);
      decay_.push_back(weight_decay);
      m_.push_back(Tensor<T, D>::zeros(p.shape()));
      v_.push_back(Tensor<T, D>::zeros(p.shape()));
    }
  }
  std::vector<Tensor<T, D>> params_;
  std::vector<double> decay_;
  std::vector<Tensor<T, D>> m_, v_;
  AdamWOptions opt_;
  long step_ = 0;
};

}  // namespace blip2
