#pragma once
// Patch embedding: a convolution whose stride equals its kernel, done as unfold (a pure view) and
// one GEMM. pixels [B, C, H, W], weight [O, C, p, p], bias [O] -> [B, (H/p)*(W/p), O]. Rows and
// columns beyond a whole number of patches are dropped, as Conv2d does.
#include "matmul.hpp"

namespace blip2 {

template <class T, class D>
Tensor<T, D> patch_embed(const Tensor<T, D>& pixels, const Tensor<T, D>& weight, const Tensor<T, D>& bias = Tensor<T, D>()) {
  BLIP2_CHECK(pixels.dim() == 4, ShapeError, "patch_embed: pixels must be [B, C, H, W], got ", to_string(pixels.shape()));
  BLIP2_CHECK(weight.dim() == 4 && weight.size(1) == pixels.size(1) && weight.size(2) == weight.size(3), ShapeError,
              "patch_embed: weight ", to_string(weight.shape()), " does not fit pixels ", to_string(pixels.shape()),
              " (expected [O, C, p, p])");
  const index_t B = pixels.size(0), C = pixels.size(1), p = weight.size(2), O = weight.size(0);
  const index_t hp = pixels.size(2) / p, wp = pixels.size(3) / p;
  BLIP2_CHECK(hp > 0 && wp > 0, ShapeError, "patch_embed: image ", to_string(pixels.shape()), " smaller than patch ", p);
  const Tensor<T, D> patches = pixels.slice(2, 0, hp * p)
                                   .slice(3, 0, wp * p)
                                   .reshape({B, C, hp, p, wp, p})
                                   .permute({0, 2, 4, 1, 3, 5})
                                   .reshape({B, hp * wp, C * p * p});
  return linear(patches, weight.reshape({O, C * p * p}), bias);
}

}  // namespace blip2
