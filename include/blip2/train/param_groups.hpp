#pragma once
// LAVIS's optimizer parameter groups (Blip2Base.get_optimizer_params): weight decay for the
// matrices and embeddings, none for 1-d tensors and biases. LAVIS's temperature is a 0-d tensor
// (decayed); blip2 stores it with shape [1], so "temp" is decayed by name.
#include <string>

#include "../nn/module.hpp"
#include "adamw.hpp"

namespace blip2 {

template <class T, class D>
bool lavis_weight_decay(const std::string& name, const Tensor<T, D>& p) {
  const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  return name == "temp" || (p.dim() != 1 && !bias);
}

// The trainable parameters of `model` in two groups: decayed by `weight_decay`, and not decayed.
template <class T, class D>
std::vector<ParamGroup<T, D>> lavis_param_groups(const nn::Module<T, D>& model, double weight_decay) {
  std::vector<ParamGroup<T, D>> groups{{{}, weight_decay}, {{}, 0.0}};
  for (const auto& [name, p] : model.named_parameters())
    if (p.impl().requires_grad) groups[lavis_weight_decay(name, p) ? 0 : 1].params.push_back(p);
  return groups;
}

}  // namespace blip2
