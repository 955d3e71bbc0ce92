#pragma once
// Reverse-mode differentiation: visits the graph below a tensor in reverse topological order,
// sums the gradients each tensor receives, and accumulates them into the leaves' grad(), telling
// an installed OnLeafGradientReady hook when a leaf has received its last gradient.
#include <unordered_map>
#include <unordered_set>

#include "../ops/elementwise.hpp"
#include "leaf_hook.hpp"
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
  struct Depth {
    Depth() { ++detail::backward_depth<T, D>; }
    ~Depth() { --detail::backward_depth<T, D>; }
  } depth;
  const LeafReadyFn<T, D>* ready = detail::backward_depth<T, D> == 1 ? detail::leaf_ready_hook<T, D> : nullptr;

  auto accumulate_leaf = [](const Tensor<T, D>& leaf, const Tensor<T, D>& g) {
    auto& impl = leaf.impl();
    if (!impl.requires_grad) return;
    if (!impl.grad) impl.grad = g.contiguous().clone().impl_ptr();
    else add_(Tensor<T, D>(impl.grad), g);
  };
  if (!root.grad_fn()) {
    accumulate_leaf(root, grad_root);
    if (ready && root.requires_grad()) (*ready)(root);
    return;
  }

  // Topological order by iterative depth-first search, counting the edges into each leaf.
  std::unordered_map<const void*, int> leaf_edges;
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
      if (ready && !child && in.defined() && in.requires_grad()) ++leaf_edges[&in.impl()];
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
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      const auto& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad()) continue;
      const bool has_grad = i < in_grads.size() && in_grads[i].defined();
      if (has_grad)
        BLIP2_CHECK(in_grads[i].shape() == in.shape(), AutogradError, "backward of ", node->op, ": gradient shape ",
                    to_string(in_grads[i].shape()), " for input ", i, " of shape ", to_string(in.shape()));
      if (NodeT* child = in.grad_fn().get()) {
        if (!has_grad) continue;
        auto [slot, fresh] = grads.try_emplace(child, in_grads[i]);
        if (!fresh) slot->second = add(slot->second, in_grads[i]);
      } else {
        if (has_grad) accumulate_leaf(in, in_grads[i]);
        if (ready && --leaf_edges[&in.impl()] == 0) (*ready)(in);
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
