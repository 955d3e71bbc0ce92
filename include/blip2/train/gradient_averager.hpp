#pragma once
// The data-parallel step's gradient exchange: every rank's gradients summed by one all-reduce of
// all of them, packed flat, then divided by the world size, so that every rank takes the same
// optimizer step. A parameter without a gradient on a rank counts as zeros there; a flag per
// parameter (the buffer's head) says whether any rank had one, so that all ranks step the same
// parameters. The buffer is kept from one step to the next: at BLIP-2's sizes it is 750 MB, whose
// fresh allocation (page faults) would cost more than the all-reduce itself. One process: nothing
// happens.
#include <vector>

#include "communicator.hpp"

namespace blip2 {

template <class T, class D>
class GradientAverager {
 public:
  void operator()(const std::vector<Tensor<T, D>>& params, const Communicator& comm) {
    if (comm.world_size() == 1) return;
    NoGrad no_grad;
    const index_t flags = index_t(params.size());
    index_t total = flags;
    for (const auto& p : params) total += p.numel();
    if (!flat_.defined() || flat_.numel() != total) flat_ = Tensor<T, D>::empty({total});
    auto slot = [&](index_t at, index_t n) { return flat_.slice(0, at, at + n); };
    for (index_t i = 0, at = flags; i < flags; at += params[std::size_t(i)].numel(), ++i) {
      const Tensor<T, D> g = params[std::size_t(i)].grad();
      copy_(slot(i, 1), Tensor<T, D>::full({1}, T(g.defined() ? 1 : 0)));
      if (g.defined()) {
        copy_(slot(at, g.numel()), g.contiguous().reshape({g.numel()}));
      } else {
        copy_(slot(at, params[std::size_t(i)].numel()), Tensor<T, D>::zeros({1}));
      }
    }
    all_reduce_sum_(flat_, comm);
    const auto had_grad = slot(0, flags).template to<cpu>().to_vector();
    Backend<D>::unary(UnaryOp::mul_scalar, flat_.data(), flat_.data(), total, T(1.0 / double(comm.world_size())));
    for (index_t i = 0, at = flags; i < flags; at += params[std::size_t(i)].numel(), ++i) {
      const Tensor<T, D>& p = params[std::size_t(i)];
      if (!(had_grad[std::size_t(i)] > T(0))) continue;
      const Tensor<T, D> mean = slot(at, p.numel()).reshape(p.shape());
      if (const Tensor<T, D> g = p.grad(); g.defined() && g.is_contiguous()) {
        copy_(g, mean);
      } else {
        p.impl().grad = mean.clone().impl_ptr();
      }
    }
  }

 private:
  Tensor<T, D> flat_;  // [flags, then every gradient flat], kept between steps
};

}  // namespace blip2
