#pragma once
// A callback for the moment a leaf's gradient is complete within a backward pass: the last edge
// into that leaf has been accumulated, so its grad() will not change until the next backward.
// Data-parallel training uses it to start exchanging gradients while backward is still running
// (train/gradient_averager.hpp), as PyTorch's DistributedDataParallel does with its per-parameter
// hooks. Only the outermost backward pass reports: leaves reached inside a gradient-checkpointed
// segment (autograd/checkpoint.hpp) get their gradients from a nested pass and are not reported,
// since the same leaf may get more from outside the segment.
#include <functional>

#include "../core/tensor.hpp"

namespace blip2::autograd {

template <class T, class D>
using LeafReadyFn = std::function<void(const Tensor<T, D>& leaf)>;

namespace detail {
template <class T, class D>
inline thread_local const LeafReadyFn<T, D>* leaf_ready_hook = nullptr;
template <class T, class D>
inline thread_local int backward_depth = 0;  // nested passes (checkpointing) do not report
}  // namespace detail

// Installs `fn` for the backward passes this thread runs while the guard lives.
template <class T, class D>
class OnLeafGradientReady {
 public:
  explicit OnLeafGradientReady(LeafReadyFn<T, D> fn) : fn_(std::move(fn)), previous_(detail::leaf_ready_hook<T, D>) {
    detail::leaf_ready_hook<T, D> = &fn_;
  }
  ~OnLeafGradientReady() { detail::leaf_ready_hook<T, D> = previous_; }
  OnLeafGradientReady(const OnLeafGradientReady&) = delete;
  OnLeafGradientReady& operator=(const OnLeafGradientReady&) = delete;

 private:
  LeafReadyFn<T, D> fn_;
  const LeafReadyFn<T, D>* previous_;
};

}  // namespace blip2::autograd
