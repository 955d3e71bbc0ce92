#pragma once
// Embedding table [vocab, dim], rows looked up by id (initialised N(0, 1) as torch.nn.Embedding).
#include "../ops/creation.hpp"
#include "../ops/index.hpp"
#include "module.hpp"

namespace blip2::nn {

template <class T, class D = cpu>
class Embedding : public Module<T, D> {
 public:
  Embedding(index_t vocab, index_t dim, Generator& gen) {
    weight = this->register_parameter("weight", randn<T, D>({vocab, dim}, gen).requires_grad_());
  }
  Tensor<T, D> operator()(const Tensor<std::int64_t, D>& ids) const { return embedding(weight, ids); }

  Tensor<T, D> weight;
};

}  // namespace blip2::nn
