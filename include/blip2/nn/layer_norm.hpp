#pragma once
// Layer norm over the last axis with a learned gain and bias.
#include "../ops/norm.hpp"
#include "module.hpp"

namespace blip2::nn {

template <class T, class D = cpu>
class LayerNorm : public Module<T, D> {
 public:
  explicit LayerNorm(index_t dim, double eps = 1e-5) : eps(eps) {
    weight = this->register_parameter("weight", Tensor<T, D>::ones({dim}).requires_grad_());
    bias = this->register_parameter("bias", Tensor<T, D>::zeros({dim}).requires_grad_());
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const { return layer_norm(x, weight, bias, T(eps)); }

  Tensor<T, D> weight, bias;
  double eps;
};

}  // namespace blip2::nn
