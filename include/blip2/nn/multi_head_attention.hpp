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
    const index_t B = x.size(0), L = x.size(1), dim = x.size(2), hd = dim / heads;
    auto split_heads = [&](const Tensor<T, D>& t) { return t.reshape({B, L, heads, hd}).permute({0, 2, 1, 3}); };
    const Tensor<T, D> ctx =
        scaled_dot_product_attention(split_heads((*query)(x)), split_heads((*key)(x)), split_heads((*value)(x)), mask, opt);
    return (*out)(ctx.permute({0, 2, 1, 3}).reshape({B, L, dim}));
  }

  index_t heads;
  std::shared_ptr<Linear<T, D>> query, key, value, out;
};

}  // namespace blip2::nn
