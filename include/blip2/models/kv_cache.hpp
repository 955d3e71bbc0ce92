#pragma once
// Keys and values of earlier positions, per layer, so that generation computes each new token's
// attention without recomputing the prefix. Tensors are [B, past, heads * head_dim].
#include <vector>

#include "../ops/view.hpp"

namespace blip2 {

template <class T, class D = cpu>
struct KVCache {
  std::vector<Tensor<T, D>> keys, values;

  index_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(1); }

  // Appends this step's keys/values for `layer` and returns the full ones.
  std::pair<Tensor<T, D>, Tensor<T, D>> append(std::size_t layer, const Tensor<T, D>& k, const Tensor<T, D>& v) {
    if (keys.size() <= layer) keys.resize(layer + 1), values.resize(layer + 1);
    keys[layer] = keys[layer].defined() ? concat<T, D>({keys[layer], k}, 1) : k;
    values[layer] = values[layer].defined() ? concat<T, D>({values[layer], v}, 1) : v;
    return {keys[layer], values[layer]};
  }

  // Keeps batch rows in `order` (beam search reorders hypotheses).
  void select_rows(const Tensor<std::int64_t, D>& order) {
    for (auto* list : {&keys, &values})
      for (auto& t : *list)
        if (t.defined()) t = index_select(t, 0, order);
  }
};

}  // namespace blip2
