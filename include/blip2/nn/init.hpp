#pragma once
// Initialising a whole module: at random as transformers' _init_weights does it (weight matrices
// and embeddings N(0, std), biases 0, norm gains 1; half-precision weights N(0, std) rounded), or
// from another module's parameters of the same names.
#include <functional>
#include <map>

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

// What copy_matching_parameters did: parameters copied, and wanted ones without a same-named,
// same-shaped source (they keep their values).
struct CopiedParameters {
  std::size_t copied = 0, unmatched = 0;
};

// Initialises `to` from `from`: every parameter of `to` for which wanted(name) holds (all when
// `wanted` is empty) takes the value of `from`'s parameter of the same name and shape.
template <class T, class D>
CopiedParameters copy_matching_parameters(const Module<T, D>& from, const Module<T, D>& to,
                                          const std::function<bool(const std::string&)>& wanted = {}) {
  NoGrad no_grad;
  std::map<std::string, Tensor<T, D>> source;
  for (const auto& [name, p] : from.named_parameters()) source.emplace(name, p);
  CopiedParameters out;
  for (const auto& [name, p] : to.named_parameters()) {
    if (wanted && !wanted(name)) continue;
    const auto it = source.find(name);
    if (it == source.end() || it->second.shape() != p.shape()) {
      ++out.unmatched;
      continue;
    }
    copy_(p, it->second);
    ++out.copied;
  }
  return out;
}

}  // namespace blip2::nn
