#pragma once
// From RGB bytes to the model's input: pixel_values[1, 3, H, W] (channel first) with
// x = (v / 255 - mean[c]) / std[c], computed in float32 the way transformers' BlipImageProcessor
// does (rescale in float64, cast to float32, then subtract and divide in float32). `preprocess`
// is the whole processor: decode, convert to RGB, bicubic resize to size x size, rescale, normalise.
#include <array>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../backend/backend.hpp"
#include "decode.hpp"
#include "image.hpp"
#include "resize.hpp"

namespace blip2::image {

// OpenAI CLIP's channel statistics, which BLIP-2's image processors use.
inline constexpr std::array<float, 3> kClipMean = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr std::array<float, 3> kClipStd = {0.26862954f, 0.26130258f, 0.27577711f};

namespace detail {
inline void write_pixel_values(const Image& img, const std::array<float, 3>& mean, const std::array<float, 3>& std_,
                               float* out) {
  const std::size_t plane = std::size_t(img.width) * std::size_t(img.height);
  std::array<std::array<float, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const float rescaled = float(double(v) * (1.0 / 255.0));
      lut[std::size_t(c)][std::size_t(v)] = (rescaled - mean[std::size_t(c)]) / std_[std::size_t(c)];
    }
  for (std::size_t i = 0; i < plane; ++i)
    for (std::size_t c = 0; c < 3; ++c) out[c * plane + i] = lut[c][img.data[3 * i + c]];
}
}  // namespace detail

// pixel_values [1, 3, H, W] of one image.
inline Tensor<float> to_pixel_values(const Image& img, const std::array<float, 3>& mean = kClipMean,
                                     const std::array<float, 3>& std_ = kClipStd) {
  BLIP2_CHECK(!img.empty(), ValueError, "to_pixel_values: empty ", img.width, "x", img.height, " image");
  for (float s : std_) BLIP2_CHECK(s != 0.0f, ValueError, "to_pixel_values: a standard deviation is zero");
  Tensor<float> t = Tensor<float>::empty({1, 3, img.height, img.width});
  detail::write_pixel_values(img, mean, std_, t.data());
  return t;
}

// pixel_values [B, 3, H, W] of a batch of images of one size.
inline Tensor<float> to_pixel_values(const std::vector<Image>& batch, const std::array<float, 3>& mean = kClipMean,
                                     const std::array<float, 3>& std_ = kClipStd) {
  BLIP2_CHECK(!batch.empty(), ValueError, "to_pixel_values: empty batch");
  const int w = batch[0].width, h = batch[0].height;
  BLIP2_CHECK(w > 0 && h > 0, ValueError, "to_pixel_values: empty ", w, "x", h, " image");
  for (float s : std_) BLIP2_CHECK(s != 0.0f, ValueError, "to_pixel_values: a standard deviation is zero");
  for (std::size_t b = 0; b < batch.size(); ++b)
    BLIP2_CHECK(batch[b].width == w && batch[b].height == h, ShapeError, "to_pixel_values: image ", b, " is ",
                batch[b].width, "x", batch[b].height, ", image 0 is ", w, "x", h);
  Tensor<float> t = Tensor<float>::empty({index_t(batch.size()), 3, h, w});
  const std::size_t per = 3 * std::size_t(w) * std::size_t(h);
  for (std::size_t b = 0; b < batch.size(); ++b) detail::write_pixel_values(batch[b], mean, std_, t.data() + b * per);
  return t;
}

// BlipImageProcessor on a decoded image: bicubic resize to size x size, rescale, normalise.
inline Tensor<float> preprocess(const Image& img, int size = 224, const std::array<float, 3>& mean = kClipMean,
                                const std::array<float, 3>& std_ = kClipStd) {
  return to_pixel_values(resize_bicubic(img, size, size), mean, std_);
}

// BlipImageProcessor on an image file: load, convert to RGB, resize, rescale, normalise.
inline Tensor<float> preprocess(const std::string& path, int size = 224, const std::array<float, 3>& mean = kClipMean,
                                const std::array<float, 3>& std_ = kClipStd) {
  return preprocess(load_image(path), size, mean, std_);
}

}  // namespace blip2::image
