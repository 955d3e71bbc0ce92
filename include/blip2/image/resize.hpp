#pragma once
// Bicubic resize that reproduces PIL's Image.resize((w, h), Image.BICUBIC) on 8-bit RGB, bit for
// bit. The facts it follows (Pillow's libImaging/Resample.c):
//  - separable: a horizontal pass into an 8-bit intermediate image (only the rows the vertical pass
//    reads), then a vertical pass; a pass whose size does not change is skipped;
//  - Keys' cubic with a = -0.5 and support 2, stretched by the scale factor when downsampling
//    (filterscale = max(1, in/out)), so downsampling low-pass filters over more source pixels;
//  - output pixel i is centred at (i + 0.5) * scale; the window is [int(center - support + 0.5),
//    int(center + support + 0.5)) clipped to the image, tap j weighs
//    cubic((j - center + 0.5) / filterscale), and the weights are divided by their sum (doubles);
//  - the weights become fixed point with 22 fraction bits, rounded half away from zero; each output
//    sums pixel * weight in 32-bit integers from 1 << 21, shifts right by 22 and clamps to [0, 255].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../backend/cpu/parallel.hpp"
#include "../core/error.hpp"
#include "image.hpp"

namespace blip2::image {

namespace detail {

inline constexpr int kResamplePrecisionBits = 32 - 8 - 2;

// Keys' cubic convolution kernel with a = -0.5 (PIL's BICUBIC).
inline double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The filter taps for resampling [in0, in1) of an axis of in_size pixels to out_size pixels:
// output i reads input pixels first[i] .. first[i] + count[i] - 1 with weights w[i * ksize + j]
// (normalised doubles, as PIL computes them before its fixed-point step).
struct ResampleTaps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<double> w;
};

inline ResampleTaps bicubic_taps(int in_size, int out_size, float in0, float in1) {
  ResampleTaps t;
  const double scale = double(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.first.resize(std::size_t(out_size));
  t.count.resize(std::size_t(out_size));
  t.w.assign(std::size_t(out_size) * std::size_t(t.ksize), 0.0);
  const double ss = 1.0 / filterscale;
  for (int i = 0; i < out_size; ++i) {
    const double center = in0 + (i + 0.5) * scale;
    int lo = int(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = int(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = hi - lo;
    double* k = &t.w[std::size_t(i) * std::size_t(t.ksize)];
    double sum = 0.0;
    for (int j = 0; j < n; ++j) {
      const double v = bicubic_kernel((j + lo - center + 0.5) * ss);
      k[j] = v;
      sum += v;
    }
    if (sum != 0.0)
      for (int j = 0; j < n; ++j) k[j] /= sum;
    t.first[std::size_t(i)] = lo;
    t.count[std::size_t(i)] = n > 0 ? n : 0;
  }
  return t;
}

// PIL's fixed-point weights: round half away from zero at 2^-22.
inline std::vector<std::int32_t> fixed_point_weights(const std::vector<double>& w) {
  std::vector<std::int32_t> out(w.size());
  const double one = double(1 << kResamplePrecisionBits);
  for (std::size_t i = 0; i < w.size(); ++i)
    out[i] = w[i] < 0 ? std::int32_t(-0.5 + w[i] * one) : std::int32_t(0.5 + w[i] * one);
  return out;
}

inline std::uint8_t clip_fixed(std::int32_t acc) {
  const std::int32_t v = acc >> kResamplePrecisionBits;  // arithmetic shift, as PIL's table lookup
  return std::uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace detail

// PIL's Image.resize((width, height), Image.BICUBIC) of an RGB image. Rows of each pass are spread
// over OpenMP threads; the result does not depend on the thread count.
inline Image resize_bicubic(const Image& img, int width, int height) {
  BLIP2_CHECK(width > 0 && height > 0, ValueError, "resize_bicubic: target size ", width, "x", height,
              " must be positive");
  BLIP2_CHECK(!img.empty(), ValueError, "resize_bicubic: empty ", img.width, "x", img.height, " source image");
  if (width == img.width && height == img.height) return img;
  constexpr int C = Image::channels;
  constexpr std::int32_t kHalf = std::int32_t(1) << (detail::kResamplePrecisionBits - 1);

  const detail::ResampleTaps vt = detail::bicubic_taps(img.height, height, 0.0f, float(img.height));
  const int row_first = vt.first[0];
  const int row_last = vt.first[std::size_t(height - 1)] + vt.count[std::size_t(height - 1)];

  // Horizontal pass over the source rows the vertical pass reads: [row_first, row_last).
  Image tmp;
  const Image* src = &img;
  int src_row0 = 0;
  if (width != img.width) {
    const detail::ResampleTaps ht = detail::bicubic_taps(img.width, width, 0.0f, float(img.width));
    const std::vector<std::int32_t> hk = detail::fixed_point_weights(ht.w);
    tmp = Image(width, row_last - row_first);
    const std::int64_t work = std::int64_t(width) * ht.ksize;
    cpu_kernel::parallel_for(tmp.height, std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, work)),
                             [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::uint8_t* in = img.row(int(r) + row_first);
        std::uint8_t* out = tmp.row(int(r));
        for (int x = 0; x < width; ++x) {
          const std::int32_t* k = &hk[std::size_t(x) * std::size_t(ht.ksize)];
          const std::uint8_t* p = in + std::size_t(ht.first[std::size_t(x)]) * C;
          const int n = ht.count[std::size_t(x)];
          std::int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
          for (int j = 0; j < n; ++j, p += C) {
            s0 += std::int32_t(p[0]) * k[j];
            s1 += std::int32_t(p[1]) * k[j];
            s2 += std::int32_t(p[2]) * k[j];
          }
          out[C * x + 0] = detail::clip_fixed(s0);
          out[C * x + 1] = detail::clip_fixed(s1);
          out[C * x + 2] = detail::clip_fixed(s2);
        }
      }
    });
    src = &tmp;
    src_row0 = row_first;
  }
  if (height == img.height) return *src;  // PIL skips a vertical pass that keeps the height

  // Vertical pass.
  const std::vector<std::int32_t> vk = detail::fixed_point_weights(vt.w);
  Image out(width, height);
  const std::size_t rb = src->row_bytes();
  const std::int64_t work = std::int64_t(width) * vt.ksize;
  cpu_kernel::parallel_for(height, std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, work)),
                           [&](std::int64_t y0, std::int64_t y1) {
    std::vector<std::int32_t> acc(rb);
    for (std::int64_t y = y0; y < y1; ++y) {
      const std::int32_t* k = &vk[std::size_t(y) * std::size_t(vt.ksize)];
      const int first = vt.first[std::size_t(y)] - src_row0, n = vt.count[std::size_t(y)];
      std::fill(acc.begin(), acc.end(), kHalf);
      for (int j = 0; j < n; ++j) {
        const std::uint8_t* in = src->row(first + j);
        const std::int32_t kj = k[j];
        for (std::size_t i = 0; i < rb; ++i) acc[i] += std::int32_t(in[i]) * kj;
      }
      std::uint8_t* o = out.row(int(y));
      for (std::size_t i = 0; i < rb; ++i) o[i] = detail::clip_fixed(acc[i]);
    }
  });
  return out;
}

}  // namespace blip2::image
