#pragma once
// Inverted dropout with a seeded generator: zeroes each element with probability p and scales the
// rest by 1/(1-p) in training; the identity otherwise.
#include "../core/random.hpp"
#include "elementwise.hpp"

namespace blip2 {

template <class T, class D>
Tensor<T, D> dropout(const Tensor<T, D>& x, double p, Generator& gen, bool training = true) {
  BLIP2_CHECK(p >= 0 && p < 1, ValueError, "dropout: probability ", p, " outside [0, 1)");
  if (!training || p == 0) return x;
  auto mask = Tensor<T, D>::empty(x.shape());
  Backend<D>::fill_dropout_mask(mask.data(), mask.numel(), gen.seed(), gen.next_block(std::uint64_t(mask.numel())), p);
  return x * mask;
}

}  // namespace blip2
