#pragma once
// A node of the autograd graph: the op that produced a tensor, the inputs it must send gradients to,
// and the function that maps the output's gradient to the inputs' gradients.
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "../core/tensor.hpp"
#include "grad_mode.hpp"

namespace blip2::autograd {

template <class T, class D>
struct Node {
  using TensorT = Tensor<T, D>;
  // Returns one gradient per input, each shaped as that input; an undefined tensor means "none".
  using BackwardFn = std::function<std::vector<TensorT>(const TensorT& grad_output)>;

  const char* op = "";
  std::vector<TensorT> inputs;
  BackwardFn backward;
};

// True when an op over these inputs must record a node.
template <class T, class D>
bool needs_grad(std::initializer_list<const Tensor<T, D>*> inputs) {
  if constexpr (!is_compute_v<T>) {
    return false;
  } else {
    if (!GradMode::enabled()) return false;
    for (const auto* t : inputs)
      if (t->defined() && t->requires_grad()) return true;
    return false;
  }
}

// Attaches a node to `out` when any input needs a gradient. `backward` must not capture `out` itself
// (that would make a cycle): capture `out.detach()` when the output is needed.
template <class T, class D>
Tensor<T, D> record(const char* op, Tensor<T, D> out, std::vector<Tensor<T, D>> inputs,
                    typename Node<T, D>::BackwardFn backward) {
  auto node = std::make_shared<Node<T, D>>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl().grad_fn = std::move(node);
  return out;
}

}  // namespace blip2::autograd
