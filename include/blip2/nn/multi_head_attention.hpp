#pragma once
// Multi-head self-attention with separate query/key/value projections and an output projection.
#include "../ops/attention.hpp"
#include "linear.hpp"

namespace blip2::nn {

template <class T, class D = cpu>
class MultiHeadAttention : public Module<T, D> {
 public:
  MultiHeadAttention(index_t dim, index_t heads, Generator& gen) : heads(heads) {
    BLIP2_CHECK(heads > 0 && dim % heads == 0, ValueError, "MultiHeadAttention: dim ", dim,
                " is not divisible by ", heads, " heads");
    query = this->register_module("query", std::make_shared<Linear<T, D>>(dim, dim, gen));
    key = this->register_module("key", std::make_shared<Linear<T, D>>(dim, dim, gen));
    value = this->register_module("value", std::make_shared<Linear<T, D>>(dim, dim, gen));
    out = this->register_module("out", std::make_shared<Linear<T, D>>(dim, dim, gen));
  }

  // x [B, L, dim]; mask additive, broadcast to [B, heads, L, L].
  Tensor<T, D> operator()(const Tensor<T, D>& x, const Tensor<T, D>& mask = Tensor<T, D>(),
                          AttentionOptions opt = {}) const {
    return (*out)(multi_head_attention((*query)(x), (*key)(x), (*value)(x), heads, mask, opt));
  }

  index_t heads;
  std::shared_ptr<Linear<T, D>> query, key, value, out;
};

}  // namespace blip2::nn
