#pragma once
// Cross-entropy over the last axis with ignore_index and label smoothing (torch.nn.functional.
// cross_entropy, mean reduction over the targets that are not ignored).
#include "index.hpp"
#include "softmax.hpp"

namespace blip2 {

struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

// logits [..., C], targets [...] (same leading shape). With every target ignored the loss is 0
// (PyTorch gives NaN) and no gradient flows.
template <class T, class D>
Tensor<T, D> cross_entropy(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& targets,
                           CrossEntropyOptions opt = {}) {
  BLIP2_CHECK(logits.dim() >= 1, ShapeError, "cross_entropy: logits need a class axis");
  const index_t C = logits.shape().back(), N = logits.numel() / std::max<index_t>(C, 1);
  BLIP2_CHECK(targets.numel() == N && Shape(logits.shape().begin(), logits.shape().end() - 1) == targets.shape(),
              ShapeError, "cross_entropy: targets ", to_string(targets.shape()), " do not fit logits ",
              to_string(logits.shape()));
  BLIP2_CHECK(opt.label_smoothing >= 0 && opt.label_smoothing <= 1, ValueError,
              "cross_entropy: label_smoothing ", opt.label_smoothing, " outside [0, 1]");
  const auto tv = targets.contiguous().to_vector();
  std::vector<std::int64_t> pick(std::size_t(N), 0);
  std::vector<T> valid(std::size_t(N), T(0));
  index_t count = 0;
  for (index_t i = 0; i < N; ++i) {
    const std::int64_t t = tv[std::size_t(i)];
    if (t == opt.ignore_index) continue;
    BLIP2_CHECK(t >= 0 && t < C, ValueError, "cross_entropy: target ", t, " at position ", i, " is outside [0, ", C, ")");
    pick[std::size_t(i)] = i * C + t;
    valid[std::size_t(i)] = T(1);
    ++count;
  }
  const Tensor<T, D> lsm = log_softmax(logits.reshape({N, C}));
  const auto picked = index_select(lsm.reshape({N * C}), 0, Tensor<std::int64_t, D>::from_vector({N}, pick));
  Tensor<T, D> per_row = -picked;
  if (opt.label_smoothing > 0) {
    const T eps = T(opt.label_smoothing);
    per_row = per_row * T(1 - eps) + mean(lsm, {-1}) * T(-eps);
  }
  const T scale = T(1) / T(std::max<index_t>(count, 1));
  return sum(per_row * Tensor<T, D>::from_vector({N}, valid)) * scale;
}

}  // namespace blip2
