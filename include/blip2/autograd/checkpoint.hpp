#pragma once
// Gradient checkpointing (torch.utils.checkpoint, non-reentrant semantics): runs f(inputs) without
// recording a graph, keeps only the inputs, and recomputes f with the graph during backward, trading
// one extra forward for the activations inside f.
// f must be deterministic: the recomputation must give the same values as the first run (no dropout
// or other RNG draws inside f), and neither the inputs nor f's parameters may change in place
// between the forward and the backward.
#include <functional>
#include <vector>

#include "engine.hpp"
#include "grad_mode.hpp"
#include "node.hpp"

namespace blip2 {

// T and D are deduced from a std::function; a lambda needs them spelled out:
//   checkpoint<T, D>([&](const auto& x) { ... }, {a, b})
template <class T, class D>
Tensor<T, D> checkpoint(const std::function<Tensor<T, D>(const std::vector<Tensor<T, D>>&)>& f,
                        const std::vector<Tensor<T, D>>& inputs) {
  using TensorT = Tensor<T, D>;
  if constexpr (!is_compute_v<T>) {
    return f(inputs);
  } else {
    if (!GradMode::enabled()) return f(inputs);
    TensorT out;
    {
      NoGrad no_grad;
      out = f(inputs);
    }
    // The node goes on the output even when no input requires grad: parameters captured in f may.
    // It goes on a detached handle, since f may return an input or a parameter itself.
    // The closure captures f and the inputs, never the output (no cycle).
    return autograd::record<T, D>(
        "checkpoint", out.detach(), inputs, [f, inputs](const TensorT& g) -> std::vector<TensorT> {
          std::vector<TensorT> leaves(inputs.size());
          for (std::size_t i = 0; i < inputs.size(); ++i) {
            if (!inputs[i].defined()) continue;
            leaves[i] = inputs[i].detach();
            if (inputs[i].requires_grad()) leaves[i].requires_grad_(true);
          }
          TensorT y;
          {
            EnableGrad enable_grad;  // backward runs under NoGrad; the recomputation must record
            y = f(leaves);
          }
          std::vector<TensorT> grads(inputs.size());
          if (!y.requires_grad()) return grads;  // nothing inside f needs a gradient
          // Nested backward: accumulates into f's parameters (leaves) and into the detached inputs.
          autograd::run_backward(y, g);
          for (std::size_t i = 0; i < inputs.size(); ++i)
            if (leaves[i].defined() && leaves[i].requires_grad()) grads[i] = leaves[i].grad();
          return grads;
        });
  }
}

// A model's switchable per-layer checkpointing: checkpoint(f, inputs) when `enabled` and the graph
// is being recorded, else f(inputs) as it is.
template <class T, class D>
Tensor<T, D> maybe_checkpoint(bool enabled, const std::function<Tensor<T, D>(const std::vector<Tensor<T, D>>&)>& f,
                              const std::vector<Tensor<T, D>>& inputs) {
  return enabled && GradMode::enabled() ? checkpoint<T, D>(f, inputs) : f(inputs);
}

}  // namespace blip2
