#pragma once
// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_): scales every gradient by
// max_norm / (total_norm + 1e-6) when the total L2 norm exceeds max_norm. Returns the total norm.
#include <cmath>
#include <vector>

#include "../ops/reduce.hpp"

namespace blip2 {

template <class T, class D>
double clip_grad_norm(const std::vector<Tensor<T, D>>& params, double max_norm) {
  NoGrad no_grad;
  double total_sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) total_sq += double(sum(square(p.grad())).item());
  const double total = std::sqrt(total_sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      if (const auto g = p.grad(); g.defined()) copy_(g, g * T(coef));
  return total;
}

}  // namespace blip2
