#pragma once
// Reverse-mode differentiation: visits the graph below a tensor in reverse topological order,
// sums the gradients each tensor receives, and accumulates them into the leaves' grad().
#include <unordered_map>
#include <unordered_set>

#include "../ops/elementwise.hpp"
#include "node.hpp"

namespace blip2 {

namespace autograd {

template <class T, class D>
void run_backward(const Tensor<T, D>& root, const Tensor<T, D>& grad_root) {
  using NodeT = Node<T, D>;
  BLIP2_CHECK(root.requires_grad(), AutogradError, "backward: tensor of shape ", to_string(root.shape()),
              " does not require grad (no parameter with requires_grad_ reaches it)");
  BLIP2_CHECK(grad_root.shape() == root.shape(), ShapeError, "backward: gradient of shape ",
              to_string(grad_root.shape()), " for a tensor of shape ", to_string(root.shape()));
  NoGrad no_grad;  // the backward pass itself records nothing

  auto accumulate_leaf = [](const Tensor<T, D>& leaf, const Tensor<T, D>& g) {
    auto& impl = leaf.impl();
    if (!impl.requires_grad) return;
    if (!impl.grad) impl.grad = g.contiguous().clone().impl_ptr();
    else add_(Tensor<T, D>(impl.grad), g);
  };
  if (!root.grad_fn()) {
    accumulate_leaf(root, grad_root);
    return;
  }

  // Topological order by iterative depth-first search.
  std::vector<NodeT*> order;
  std::unordered_set<NodeT*> seen;
  std::vector<std::pair<NodeT*, std::size_t>> stack{{root.grad_fn().get(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const auto& in = node->inputs[next++];
      NodeT* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<NodeT*, Tensor<T, D>> grads{{root.grad_fn().get(), grad_root}};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    NodeT* node = *it;
    auto found = grads.find(node);
    if (found == grads.end()) continue;  // no gradient flowed here
    const Tensor<T, D> g = std::move(found->second);
    grads.erase(found);
    std::vector<Tensor<T, D>> in_grads = node->backward(g);
    for (std::size_t i = 0; i < node->inputs.size() && i < in_grads.size(); ++i) {
      const auto& in = node->inputs[i];
      const auto& gi = in_grads[i];
      if (!gi.defined() || !in.defined() || !in.requires_grad()) continue;
      BLIP2_CHECK(gi.shape() == in.shape(), AutogradError, "backward of ", node->op, ": gradient shape ",
                  to_string(gi.shape()), " for input ", i, " of shape ", to_string(in.shape()));
      if (NodeT* child = in.grad_fn().get()) {
        auto [slot, fresh] = grads.try_emplace(child, gi);
        if (!fresh) slot->second = add(slot->second, gi);
      } else {
        accumulate_leaf(in, gi);
      }
    }
  }
}

}  // namespace autograd

template <class T, class D>
void Tensor<T, D>::backward() const {
  BLIP2_CHECK(numel() == 1, AutogradError, "backward: called on a tensor of shape ", to_string(shape()),
              "; only a scalar (one element) can start backward without a gradient argument");
  autograd::run_backward(*this, Tensor::ones(shape()));
}

template <class T, class D>
void Tensor<T, D>::backward(const Tensor& grad_output) const {
  autograd::run_backward(*this, grad_output);
}

}  // namespace blip2
