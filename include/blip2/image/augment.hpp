#pragma once
// Training-time augmentation as BLIP-2's training transform does it with torchvision:
// RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(3/4, 4/3), bicubic) then
// RandomHorizontalFlip(p=0.5). Random numbers come from a seeded blip2::Generator, so a seed
// reproduces the same crops and flips (torchvision's own draws use torch's generator, so the
// boxes are not the ones torchvision would pick for the same seed; the distribution is the same).
#include <cmath>
#include <algorithm>
#include <cstdint>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "image.hpp"
#include "resize.hpp"

namespace blip2::image {

// A rectangle of pixels: top-left corner (x, y), width and height.
struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

struct RandomResizedCropOptions {
  double scale_min = 0.5, scale_max = 1.0;            // fraction of the image's area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height of the crop
};

namespace detail {
// Python's round(): to nearest, ties to even.
inline double round_half_even(double x) {
  const double f = std::floor(x), d = x - f;
  if (d > 0.5) return f + 1.0;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}
}  // namespace detail

// torchvision's RandomResizedCrop.get_params: up to 10 tries of a random area fraction in
// [scale_min, scale_max] and a log-uniform aspect ratio in [ratio_min, ratio_max] whose box fits,
// at a uniform position; otherwise a centre crop clamped to the ratio range.
inline CropBox random_resized_crop_box(int width, int height, Generator& gen,
                                       const RandomResizedCropOptions& opt = {}) {
  BLIP2_CHECK(width > 0 && height > 0, ValueError, "random_resized_crop_box: empty ", width, "x", height, " image");
  BLIP2_CHECK(opt.scale_min > 0 && opt.scale_min <= opt.scale_max && opt.ratio_min > 0 &&
                  opt.ratio_min <= opt.ratio_max,
              ValueError, "random_resized_crop_box: bad scale (", opt.scale_min, ", ", opt.scale_max, ") or ratio (",
              opt.ratio_min, ", ", opt.ratio_max, ")");
  const double area = double(width) * double(height);
  const double log_lo = std::log(opt.ratio_min), log_hi = std::log(opt.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (opt.scale_min + (opt.scale_max - opt.scale_min) * gen.uniform());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * gen.uniform());
    const double wd = detail::round_half_even(std::sqrt(target_area * aspect));
    const double hd = detail::round_half_even(std::sqrt(target_area / aspect));
    if (wd > 0 && wd <= width && hd > 0 && hd <= height) {
      const int w = int(wd), h = int(hd);
      const int y = uniform_int(gen, 0, height - h);
      const int x = uniform_int(gen, 0, width - w);
      return {x, y, w, h};
    }
  }
  const double in_ratio = double(width) / double(height);
  int w = width, h = height;
  if (in_ratio < opt.ratio_min) {
    h = int(detail::round_half_even(w / opt.ratio_min));
  } else if (in_ratio > opt.ratio_max) {
    w = int(detail::round_half_even(h * opt.ratio_max));
  }
  w = std::max(1, std::min(w, width));
  h = std::max(1, std::min(h, height));
  return {(width - w) / 2, (height - h) / 2, w, h};
}

// Crop a random box (random_resized_crop_box) and resize it to out_width x out_height with PIL's
// bicubic filter, as torchvision does on PIL images.
inline Image random_resized_crop(const Image& img, int out_width, int out_height, Generator& gen,
                                 const RandomResizedCropOptions& opt = {}) {
  const CropBox b = random_resized_crop_box(img.width, img.height, gen, opt);
  return resize_bicubic(crop(img, b.x, b.y, b.width, b.height), out_width, out_height);
}

// The image mirrored left to right.
inline Image horizontal_flip(const Image& img) {
  Image out(img.width, img.height);
  for (int y = 0; y < img.height; ++y) {
    const std::uint8_t* in = img.row(y);
    std::uint8_t* o = out.row(y);
    for (int x = 0; x < img.width; ++x)
      for (int c = 0; c < Image::channels; ++c)
        o[Image::channels * x + c] = in[Image::channels * (img.width - 1 - x) + c];
  }
  return out;
}

// Mirrors the image with probability p (one draw from gen either way).
inline Image random_horizontal_flip(const Image& img, Generator& gen, double p = 0.5) {
  return gen.uniform() < p ? horizontal_flip(img) : img;
}

}  // namespace blip2::image
