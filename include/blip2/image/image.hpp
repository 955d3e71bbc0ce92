#pragma once
// An 8-bit RGB image: width x height pixels, three interleaved channels per pixel, rows top to
// bottom (the layout PIL's "RGB" mode and stb_image use). The preprocessing steps in this folder
// (decode, resize, augment, normalise) all take and return it.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace blip2::image {

struct Image {
  static constexpr int channels = 3;
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> data;  // height * width * 3 bytes, RGBRGB...

  Image() = default;
  // A black image of the given size.
  Image(int w, int h) : width(w), height(h) {
    BLIP2_CHECK(w >= 0 && h >= 0, ValueError, "Image: negative size ", w, "x", h);
    data.assign(std::size_t(w) * std::size_t(h) * channels, 0);
  }
  // Takes interleaved RGB bytes; their count must be w * h * 3.
  Image(int w, int h, std::vector<std::uint8_t> rgb) : width(w), height(h), data(std::move(rgb)) {
    BLIP2_CHECK(w >= 0 && h >= 0, ValueError, "Image: negative size ", w, "x", h);
    BLIP2_CHECK(data.size() == std::size_t(w) * std::size_t(h) * channels, ValueError, "Image: ", w, "x", h,
                " RGB needs ", std::size_t(w) * std::size_t(h) * channels, " bytes, got ", data.size());
  }

  bool empty() const { return width == 0 || height == 0; }
  std::size_t row_bytes() const { return std::size_t(width) * channels; }
  std::uint8_t* row(int y) { return data.data() + std::size_t(y) * row_bytes(); }
  const std::uint8_t* row(int y) const { return data.data() + std::size_t(y) * row_bytes(); }
  // The three bytes of pixel (x, y); x is the column, y the row.
  std::uint8_t* pixel(int x, int y) { return row(y) + std::size_t(x) * channels; }
  const std::uint8_t* pixel(int x, int y) const { return row(y) + std::size_t(x) * channels; }
  std::uint8_t& at(int x, int y, int c) { return pixel(x, y)[c]; }
  std::uint8_t at(int x, int y, int c) const { return pixel(x, y)[c]; }
};

// The w x h rectangle whose top-left pixel is (x, y); it must lie inside the image (PIL's
// img.crop((x, y, x + w, y + h)) for such a box).
inline Image crop(const Image& img, int x, int y, int w, int h) {
  BLIP2_CHECK(w > 0 && h > 0 && x >= 0 && y >= 0 && x + w <= img.width && y + h <= img.height, ValueError,
              "image::crop: box (x ", x, ", y ", y, ", w ", w, ", h ", h, ") is not inside the ", img.width, "x",
              img.height, " image");
  Image out(w, h);
  for (int r = 0; r < h; ++r) {
    const std::uint8_t* src = img.pixel(x, y + r);
    std::copy(src, src + out.row_bytes(), out.row(r));
  }
  return out;
}

}  // namespace blip2::image
