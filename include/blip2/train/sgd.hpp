#pragma once
// SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD.
#include <vector>

#include "../ops/elementwise.hpp"

namespace blip2 {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <class T, class D>
class SGD {
 public:
  SGD(std::vector<Tensor<T, D>> params, SGDOptions opt = {}) : params_(std::move(params)), buf_(params_.size()), opt_(opt) {
    BLIP2_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0), ValueError,
                "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
  }

  void step() {
    NoGrad no_grad;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Tensor<T, D>& p = params_[i];
      Tensor<T, D> d = p.grad();
      if (!d.defined()) continue;
      if (opt_.weight_decay != 0) d = d + p.detach() * T(opt_.weight_decay);
      if (opt_.momentum != 0) {
        if (!buf_[i].defined()) buf_[i] = d.clone();
        else copy_(buf_[i], buf_[i] * T(opt_.momentum) + d * T(1 - opt_.dampening));
        d = opt_.nesterov ? d + buf_[i] * T(opt_.momentum) : buf_[i];
      }
      add_(p, d * T(-opt_.lr));
    }
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }
  void set_lr(double lr) { opt_.lr = lr; }

 private:
  std::vector<Tensor<T, D>> params_;
  std::vector<Tensor<T, D>> buf_;
  SGDOptions opt_;
};

}  // namespace blip2
