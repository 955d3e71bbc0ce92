#pragma once
// Normalisations over the last axis: layer norm (BERT, ViT, OPT), RMS norm (T5), L2 normalisation
// (the retrieval embeddings).
#include "reduce.hpp"

namespace blip2 {

// (x - mean) / sqrt(var + eps) * w + b; w and b ([cols]) may be undefined.
template <class T, class D>
Tensor<T, D> layer_norm(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& b, T eps = T(1e-5)) {
  static_assert(is_compute_v<T>, "layer_norm: compute in float32/float64");
  BLIP2_CHECK(x.dim() >= 1, ShapeError, "layer_norm: input must have at least one axis");
  const index_t cols = x.shape().back(), rows = cols ? x.numel() / cols : 0;
  for (const auto* p : {&w, &b})
    BLIP2_CHECK(!p->defined() || p->shape() == Shape{cols}, ShapeError, "layer_norm: parameter ",
                to_string(p->shape()), " does not fit input ", to_string(x.shape()));
  const Tensor<T, D> xc = x.contiguous(), wc = w.defined() ? w.contiguous() : w, bc = b.defined() ? b.contiguous() : b;
  auto y = Tensor<T, D>::empty(x.shape());
  auto mu = Tensor<T, D>::empty({rows}), rs = Tensor<T, D>::empty({rows});
  Backend<D>::layer_norm(xc.data(), wc.defined() ? wc.data() : nullptr, bc.defined() ? bc.data() : nullptr, y.data(),
                         mu.data(), rs.data(), rows, cols, eps);
  if (!autograd::needs_grad<T, D>({&x, &w, &b})) return y;
  const bool gx = x.requires_grad(), gw = w.defined() && w.requires_grad(), gb = b.defined() && b.requires_grad();
  const Tensor<T, D> xs = xc.detach(), ws = wc.defined() ? wc.detach() : wc;
  return autograd::record<T, D>("layer_norm", y, {x, w, b}, [=](const Tensor<T, D>& g) {
    const Tensor<T, D> gc = g.contiguous();
    Tensor<T, D> dx, dw, db;
    if (gx) dx = Tensor<T, D>::empty(xs.shape());
    if (gw) dw = Tensor<T, D>::zeros({cols});
    if (gb) db = Tensor<T, D>::zeros({cols});
    Backend<D>::layer_norm_backward(xs.data(), ws.defined() ? ws.data() : nullptr, mu.data(), rs.data(), gc.data(),
                                    gx ? dx.data() : nullptr, gw ? dw.data() : nullptr, gb ? db.data() : nullptr, rows,
                                    cols);
    return std::vector<Tensor<T, D>>{dx, dw, db};
  });
}

// T5's norm: x / sqrt(mean(x^2) + eps) * w (no mean subtraction, no bias).
template <class T, class D>
Tensor<T, D> rms_norm(const Tensor<T, D>& x, const Tensor<T, D>& w, T eps = T(1e-6)) {
  static_assert(is_compute_v<T>, "rms_norm: compute in float32/float64");
  BLIP2_CHECK(x.dim() >= 1, ShapeError, "rms_norm: input must have at least one axis");
  const index_t cols = x.shape().back(), rows = cols ? x.numel() / cols : 0;
  BLIP2_CHECK(!w.defined() || w.shape() == Shape{cols}, ShapeError, "rms_norm: weight ", to_string(w.shape()),
              " does not fit input ", to_string(x.shape()));
  const Tensor<T, D> xc = x.contiguous(), wc = w.defined() ? w.contiguous() : w;
  auto y = Tensor<T, D>::empty(x.shape());
  auto rs = Tensor<T, D>::empty({rows});
  Backend<D>::rms_norm(xc.data(), wc.defined() ? wc.data() : nullptr, y.data(), rs.data(), rows, cols, eps);
  if (!autograd::needs_grad<T, D>({&x, &w})) return y;
  const bool gx = x.requires_grad(), gw = w.defined() && w.requires_grad();
  const Tensor<T, D> xs = xc.detach(), ws = wc.defined() ? wc.detach() : wc;
  return autograd::record<T, D>("rms_norm", y, {x, w}, [=](const Tensor<T, D>& g) {
    const Tensor<T, D> gc = g.contiguous();
    Tensor<T, D> dx, dw;
    if (gx) dx = Tensor<T, D>::empty(xs.shape());
    if (gw) dw = Tensor<T, D>::zeros({cols});
    Backend<D>::rms_norm_backward(xs.data(), ws.defined() ? ws.data() : nullptr, rs.data(), gc.data(),
                                  gx ? dx.data() : nullptr, gw ? dw.data() : nullptr, rows, cols);
    return std::vector<Tensor<T, D>>{dx, dw};
  });
}

// x / max(||x||_2, eps) along `axis` (torch.nn.functional.normalize).
template <class T, class D>
Tensor<T, D> l2_normalize(const Tensor<T, D>& x, index_t axis = -1, T eps = T(1e-12)) {
  return x / clamp_min(sqrt(sum(square(x), {axis}, true)), eps);
}

}  // namespace blip2
