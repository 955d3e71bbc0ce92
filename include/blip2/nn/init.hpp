#pragma once
// Random initialisation of a whole module as transformers' _init_weights does it: weight matrices
// and embeddings N(0, std), biases 0, norm gains 1; half-precision weights N(0, std) rounded.
#include "../ops/creation.hpp"
#include "../ops/elementwise.hpp"
#include "module.hpp"

namespace blip2::nn {

template <class T, class D>
void init_parameters(const Module<T, D>& m, Generator& gen, double stddev = 0.02) {
  NoGrad no_grad;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& [name, p] : m.named_parameters()) {
    const bool norm = name.find("norm") != std::string::npos || name.find("LayerNorm") != std::string::npos;
    if (ends_with(name, ".bias")) copy_(p, Tensor<T, D>::zeros(p.shape()));
    else if (norm && p.dim() == 1) copy_(p, Tensor<T, D>::ones(p.shape()));
    else copy_(p, randn<T, D>(p.shape(), gen, 0.0, stddev));
  }
  for (const auto& [name, w] : m.named_half_weights())
    std::visit([&](const auto& t) { copy_(t, randn<typename std::decay_t<decltype(t)>::value_type, D>(t.shape(), gen, 0.0, stddev)); },
               w);
}

}  // namespace blip2::nn
