#pragma once
// Scaled dot-product attention: softmax(q k^T * scale + mask) v, over [..., L, d] operands, with an
// additive mask broadcast to [..., Lq, Lk] and an optional causal mask (query i sees keys up to
// i + Lk - Lq, which is right for a KV cache holding earlier positions).
#include <cmath>
#include <limits>
#include <optional>

#include "dropout.hpp"
#include "matmul.hpp"
#include "softmax.hpp"

namespace blip2 {

struct AttentionOptions {
  bool causal = false;
  std::optional<double> scale;  // default 1/sqrt(d); T5 uses 1
  double dropout = 0.0;         // on the attention probabilities, with `generator`
  Generator* generator = nullptr;
};

// [Lq, Lk] additive mask: 0 where query i may see key j (j <= i + Lk - Lq), -inf elsewhere.
template <class T, class D>
Tensor<T, D> causal_mask(index_t lq, index_t lk) {
  std::vector<T> m(std::size_t(lq * lk), T(0));
  for (index_t i = 0; i < lq; ++i)
    for (index_t j = i + lk - lq + 1; j < lk; ++j) m[std::size_t(i * lk + j)] = -std::numeric_limits<T>::infinity();
  return Tensor<T, D>::from_vector({lq, lk}, m);
}

template <class T, class D>
Tensor<T, D> scaled_dot_product_attention(const Tensor<T, D>& q, const Tensor<T, D>& k, const Tensor<T, D>& v,
                                          const Tensor<T, D>& mask = Tensor<T, D>(), AttentionOptions opt = {}) {
  BLIP2_CHECK(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(), ShapeError,
              "attention: q ", to_string(q.shape()), ", k ", to_string(k.shape()), ", v ", to_string(v.shape()),
              " must have the same rank (>= 2)");
  BLIP2_CHECK(q.shape().back() == k.shape().back() && k.size(-2) == v.size(-2), ShapeError, "attention: q ",
              to_string(q.shape()), ", k ", to_string(k.shape()), ", v ", to_string(v.shape()), " do not fit");
  const index_t lq = q.size(-2), lk = k.size(-2);
  const T scale = T(opt.scale ? *opt.scale : 1.0 / std::sqrt(double(q.shape().back())));
  Tensor<T, D> scores = matmul(q, k.transpose(-1, -2));
  if (scale != T(1)) scores = scores * scale;
  Tensor<T, D> m = mask;
  if (opt.causal) m = m.defined() ? add(m, causal_mask<T, D>(lq, lk)) : causal_mask<T, D>(lq, lk);
  Tensor<T, D> probs = softmax(scores, m);
  if (opt.dropout > 0) {
    BLIP2_CHECK(opt.generator, ValueError, "attention: dropout ", opt.dropout, " needs a generator");
    probs = dropout(probs, opt.dropout, *opt.generator);
  }
  return matmul(probs, v);
}

// Attention over packed heads: q [B, Lq, H*d], k [B, Lk, H*d], v [B, Lk, H*dv] -> [B, Lq, H*dv]
// (the layout every transformer projection produces).
template <class T, class D>
Tensor<T, D> multi_head_attention(const Tensor<T, D>& q, const Tensor<T, D>& k, const Tensor<T, D>& v, index_t heads,
                                  const Tensor<T, D>& mask = Tensor<T, D>(), AttentionOptions opt = {}) {
  BLIP2_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && heads > 0 && q.size(2) % heads == 0 &&
                  k.size(2) == q.size(2) && v.size(2) % heads == 0,
              ShapeError, "multi_head_attention: q ", to_string(q.shape()), ", k ", to_string(k.shape()), ", v ",
              to_string(v.shape()), " do not split into ", heads, " heads");
  auto split = [heads](const Tensor<T, D>& t) {
    return t.reshape({t.size(0), t.size(1), heads, t.size(2) / heads}).permute({0, 2, 1, 3});
  };
  const Tensor<T, D> ctx = scaled_dot_product_attention(split(q), split(k), split(v), mask, opt);
  return ctx.permute({0, 2, 1, 3}).reshape({q.size(0), q.size(1), v.size(2)});
}

}  // namespace blip2
