#pragma once
// Linear layer: y = x W^T + b, W [out, in] (PyTorch's layout and default initialisation). The weight
// may be stored as bf16/f16 (W) for a frozen layer; the bias and the arithmetic stay in T.
#include <cmath>

#include "../ops/creation.hpp"
#include "../ops/matmul.hpp"
#include "module.hpp"

namespace blip2::nn {

template <class T, class D = cpu, class W = T>
class Linear : public Module<T, D> {
 public:
  Linear(index_t in, index_t out, Generator& gen, bool bias = true) {
    static_assert(std::is_same_v<W, T>, "Linear: random initialisation is for trainable (compute-type) layers");
    const double bound = 1.0 / std::sqrt(double(std::max<index_t>(in, 1)));
    weight = this->register_parameter("weight", rand<T, D>({out, in}, gen, -bound, bound).requires_grad_());
    if (bias) this->bias = this->register_parameter("bias", rand<T, D>({out}, gen, -bound, bound).requires_grad_());
  }
  // Uninitialised parameters, to be loaded from a checkpoint or filled by init_parameters().
  Linear(index_t in, index_t out, bool bias = true) {
    weight = this->register_weight("weight", Tensor<W, D>::empty({out, in}));
    if (bias) this->bias = this->register_parameter("bias", Tensor<T, D>::empty({out}));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const { return linear(x, weight, bias); }

  Tensor<W, D> weight;
  Tensor<T, D> bias;
};

}  // namespace blip2::nn
