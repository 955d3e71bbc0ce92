#pragma once
// JPEG pixels as libjpeg-turbo (PIL's JPEG library) computes them, on top of stb_image's entropy
// decoder. stb_image reads the markers and Huffman/progressive data exactly (the coefficients are
// integers), but its inverse DCT, chroma upsampling and YCbCr -> RGB conversion round differently
// from libjpeg's. Here stb_image's block IDCT is replaced by libjpeg's "islow" integer IDCT
// (13-bit constants, 2 extra bits after the column pass, clamped through the same wrapping range
// table), and the component planes are upsampled with libjpeg's "fancy" triangle filters (h2v1,
// h1v2, h2v2, including their alternating rounding biases and edge rules; other integral factors
// are replicated) and converted with libjpeg's 16-bit YCbCr tables. That is the path PIL takes by
// default (JDCT_ISLOW, do_fancy_upsampling), and libjpeg-turbo's SIMD versions of these steps give
// the same results as its C code.
//
// Needs the stb_image implementation compiled in this translation unit (stb_image_impl.hpp), since
// it reaches into stb_image's internal JPEG decoder. 4-component (CMYK/YCCK) files and fractional
// sampling ratios are left to stb_image's own path (decode_jpeg_libjpeg returns an empty image).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "image.hpp"
#include "stb_image_impl.hpp"

#ifndef BLIP2_STB_IMAGE_EXTERNAL

namespace blip2::image::detail {

// libjpeg's post-IDCT range limit: the value is centred on 0, masked to 10 bits, then mapped to
// 0..255 (values wrapping past +-512 land where libjpeg's table puts them).
inline std::uint8_t jpeg_idct_limit(int v) {
  const int m = v & 1023;
  if (m < 128) return std::uint8_t(m + 128);
  if (m < 512) return 255;
  if (m < 896) return 0;
  return std::uint8_t(m - 896);
}

// One 8x8 block: dequantised coefficients in natural (row-major) order -> 8-bit samples.
// libjpeg's jpeg_idct_islow arithmetic (Loeffler-Ligtenberg-Moschytz with 12 multiplies).
inline void jpeg_idct_islow(stbi_uc* out, int out_stride, short data[64]) {
  constexpr int kConstBits = 13, kPass1Bits = 2;
  constexpr std::int64_t c0_298631336 = 2446, c0_390180644 = 3196, c0_541196100 = 4433, c0_765366865 = 6270,
                         c0_899976223 = 7373, c1_175875602 = 9633, c1_501321110 = 12299, c1_847759065 = 15137,
                         c1_961570560 = 16069, c2_053119869 = 16819, c2_562915447 = 20995, c3_072711026 = 25172;
  auto descale = [](std::int64_t x, int n) { return (x + (std::int64_t(1) << (n - 1))) >> n; };
  // The 1-D transform of 8 inputs into even/odd sums, as both passes compute it.
  auto transform = [&](std::int64_t i0, std::int64_t i1, std::int64_t i2, std::int64_t i3, std::int64_t i4,
                       std::int64_t i5, std::int64_t i6, std::int64_t i7, std::int64_t (&o)[8], int shift) {
    std::int64_t z1 = (i2 + i6) * c0_541196100;
    std::int64_t t2 = z1 - i6 * c1_847759065;
    std::int64_t t3 = z1 + i2 * c0_765366865;
    std::int64_t t0 = (i0 + i4) * (std::int64_t(1) << kConstBits);
    std::int64_t t1 = (i0 - i4) * (std::int64_t(1) << kConstBits);
    const std::int64_t t10 = t0 + t3, t13 = t0 - t3, t11 = t1 + t2, t12 = t1 - t2;
    // odd part: i1, i3, i5, i7
    t0 = i7;
    t1 = i5;
    t2 = i3;
    t3 = i1;
    std::int64_t z4 = t1 + t3, z3 = t0 + t2, z2 = t1 + t2;
    z1 = t0 + t3;
    const std::int64_t z5 = (z3 + z4) * c1_175875602;
    t3 *= c1_501321110;
    t2 *= c3_072711026;
    t1 *= c2_053119869;
    t0 *= c0_298631336;
    z4 = z4 * -c0_390180644 + z5;
    z3 = z3 * -c1_961570560 + z5;
    z1 *= -c0_899976223;
    z2 *= -c2_562915447;
    t3 += z1 + z4;
    t2 += z2 + z3;
    t1 += z2 + z4;
    t0 += z1 + z3;
    o[0] = descale(t10 + t3, shift);
    o[7] = descale(t10 - t3, shift);
    o[1] = descale(t11 + t2, shift);
    o[6] = descale(t11 - t2, shift);
    o[2] = descale(t12 + t1, shift);
    o[5] = descale(t12 - t1, shift);
    o[3] = descale(t13 + t0, shift);
    o[4] = descale(t13 - t0, shift);
  };
  int ws[64];
  for (int c = 0; c < 8; ++c) {
    std::int64_t o[8];
    transform(data[c], data[8 + c], data[16 + c], data[24 + c], data[32 + c], data[40 + c], data[48 + c],
              data[56 + c], o, kConstBits - kPass1Bits);
    for (int r = 0; r < 8; ++r) ws[8 * r + c] = int(o[r]);
  }
  for (int r = 0; r < 8; ++r) {
    const int* w = ws + 8 * r;
    std::int64_t o[8];
    transform(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], o, kConstBits + kPass1Bits + 3);
    for (int c = 0; c < 8; ++c) out[r * out_stride + c] = jpeg_idct_limit(int(o[c]));
  }
}

// Upsamples one decoded component plane (cw x ch samples, row stride `stride`) by (hs, vs) to
// width x height, as libjpeg-turbo's upsampler chooses and computes it.
inline void jpeg_upsample(const std::uint8_t* in, int stride, int cw, int ch, int hs, int vs, int width,
                          int height, std::uint8_t* out) {
  auto row = [&](int r) { return in + std::size_t(std::clamp(r, 0, ch - 1)) * std::size_t(stride); };
  std::vector<int> sum(std::size_t(cw) + 1);
  std::vector<std::uint8_t> line(std::size_t(cw) * std::size_t(hs) + 2);
  for (int y = 0; y < height; ++y) {
    std::uint8_t* o = out + std::size_t(y) * std::size_t(width);
    const int i = y / vs, v = y % vs;
    if (hs == 1 && vs == 1) {
      std::copy(row(i), row(i) + width, o);
    } else if (hs == 2 && vs == 1 && cw > 2) {  // h2v1 fancy
      const std::uint8_t* p = row(i);
      line[0] = p[0];
      line[1] = std::uint8_t((p[0] * 3 + p[1] + 2) >> 2);
      for (int c = 1; c < cw - 1; ++c) {
        line[2 * std::size_t(c)] = std::uint8_t((p[c] * 3 + p[c - 1] + 1) >> 2);
        line[2 * std::size_t(c) + 1] = std::uint8_t((p[c] * 3 + p[c + 1] + 2) >> 2);
      }
      line[2 * std::size_t(cw) - 2] = std::uint8_t((p[cw - 1] * 3 + p[cw - 2] + 1) >> 2);
      line[2 * std::size_t(cw) - 1] = p[cw - 1];
      std::copy(line.begin(), line.begin() + width, o);
    } else if (hs == 1 && vs == 2) {  // h1v2 fancy (libjpeg-turbo applies it at any width)
      const std::uint8_t* near = row(i);
      const std::uint8_t* far = row(v == 0 ? i - 1 : i + 1);
      const int bias = v == 0 ? 1 : 2;
      for (int c = 0; c < width; ++c) o[c] = std::uint8_t((near[c] * 3 + far[c] + bias) >> 2);
    } else if (hs == 2 && vs == 2 && cw > 2) {  // h2v2 fancy
      const std::uint8_t* near = row(i);
      const std::uint8_t* far = row(v == 0 ? i - 1 : i + 1);
      for (int c = 0; c < cw; ++c) sum[std::size_t(c)] = near[c] * 3 + far[c];
      line[0] = std::uint8_t((sum[0] * 4 + 8) >> 4);
      for (int c = 0; c < cw - 1; ++c) {
        if (c > 0) line[2 * std::size_t(c)] = std::uint8_t((sum[std::size_t(c)] * 3 + sum[std::size_t(c) - 1] + 8) >> 4);
        line[2 * std::size_t(c) + 1] = std::uint8_t((sum[std::size_t(c)] * 3 + sum[std::size_t(c) + 1] + 7) >> 4);
      }
      const std::size_t last = std::size_t(cw) - 1;
      line[2 * last] = std::uint8_t((sum[last] * 3 + sum[last - 1] + 8) >> 4);
      line[2 * last + 1] = std::uint8_t((sum[last] * 4 + 7) >> 4);
      std::copy(line.begin(), line.begin() + width, o);
    } else {  // box: h2v1/h2v2 on narrow planes, and every other integral factor
      const std::uint8_t* p = row(i);
      for (int c = 0; c < width; ++c) o[c] = p[c / hs];
    }
  }
}

// libjpeg's YCbCr -> RGB with its 16-bit fixed-point tables.
struct JpegYccTables {
  std::array<int, 256> cr_r{}, cb_b{};
  std::array<std::int64_t, 256> cr_g{}, cb_g{};
  JpegYccTables() {
    constexpr int kScaleBits = 16;
    constexpr std::int64_t kHalf = std::int64_t(1) << (kScaleBits - 1);
    auto fix = [](double x) { return std::int64_t(x * double(std::int64_t(1) << kScaleBits) + 0.5); };
    for (int i = 0; i < 256; ++i) {
      const std::int64_t x = i - 128;
      cr_r[std::size_t(i)] = int((fix(1.40200) * x + kHalf) >> kScaleBits);
      cb_b[std::size_t(i)] = int((fix(1.77200) * x + kHalf) >> kScaleBits);
      cr_g[std::size_t(i)] = -fix(0.71414) * x;
      cb_g[std::size_t(i)] = -fix(0.34414) * x + kHalf;
    }
  }
};

inline std::uint8_t clamp_u8(int v) { return std::uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Decodes a JPEG to RGB with libjpeg-turbo's arithmetic. Returns an empty image when the file
// needs stb_image's own conversion (4 components, fractional sampling); throws IoError if stb_image
// cannot decode it.
inline Image decode_jpeg_libjpeg(const std::uint8_t* p, std::size_t n, const std::string& name) {
  stbi__context ctx;
  stbi__start_mem(&ctx, p, int(n));
  stbi__jpeg* j = static_cast<stbi__jpeg*>(std::calloc(1, sizeof(stbi__jpeg)));
  BLIP2_CHECK(j != nullptr, IoError, name, ": out of memory decoding JPEG");
  j->s = &ctx;
  ctx.img_n = 0;
  struct Cleanup {
    stbi__jpeg* j;
    ~Cleanup() {
      stbi__cleanup_jpeg(j);
      std::free(j);
    }
  } cleanup{j};
  stbi__setup_jpeg(j);
  j->idct_block_kernel = jpeg_idct_islow;
  if (!stbi__decode_jpeg_image(j))
    throw IoError(name + ": cannot decode JPEG (" + stb_failure() + ")");
  const int width = int(ctx.img_x), height = int(ctx.img_y), nc = ctx.img_n;
  BLIP2_CHECK(width > 0 && height > 0, IoError, name, ": JPEG has an empty ", width, "x", height, " frame");
  if (nc != 1 && nc != 3) return Image();
  for (int k = 0; k < nc; ++k)
    if (j->img_h_max % j->img_comp[k].h != 0 || j->img_v_max % j->img_comp[k].v != 0) return Image();

  const std::size_t plane = std::size_t(width) * std::size_t(height);
  std::vector<std::uint8_t> planes(plane * std::size_t(nc));
  for (int k = 0; k < nc; ++k) {
    const auto& c = j->img_comp[k];
    jpeg_upsample(c.data, c.w2, c.x, c.y, j->img_h_max / c.h, j->img_v_max / c.v, width, height,
                  planes.data() + plane * std::size_t(k));
  }
  Image img(width, height);
  if (nc == 1) {
    for (std::size_t i = 0; i < plane; ++i) img.data[3 * i] = img.data[3 * i + 1] = img.data[3 * i + 2] = planes[i];
    return img;
  }
  const std::uint8_t *c0 = planes.data(), *c1 = c0 + plane, *c2 = c1 + plane;
  const bool is_rgb = j->rgb == 3 || (j->app14_color_transform == 0 && !j->jfif);  // stb_image's rule
  if (is_rgb) {
    for (std::size_t i = 0; i < plane; ++i) {
      img.data[3 * i] = c0[i];
      img.data[3 * i + 1] = c1[i];
      img.data[3 * i + 2] = c2[i];
    }
    return img;
  }
  static const JpegYccTables t;
  for (std::size_t i = 0; i < plane; ++i) {
    const int y = c0[i], cb = c1[i], cr = c2[i];
    img.data[3 * i] = clamp_u8(y + t.cr_r[std::size_t(cr)]);
    img.data[3 * i + 1] = clamp_u8(y + int((t.cb_g[std::size_t(cb)] + t.cr_g[std::size_t(cr)]) >> 16));
    img.data[3 * i + 2] = clamp_u8(y + t.cb_b[std::size_t(cb)]);
  }
  return img;
}

}  // namespace blip2::image::detail

#endif  // BLIP2_STB_IMAGE_EXTERNAL
