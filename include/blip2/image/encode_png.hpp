#pragma once
// A minimal PNG writer (8-bit RGB, stored deflate blocks, no compression): enough for reports and
// debugging images, with no dependency. Files are larger than a compressing encoder's but valid for
// every PNG reader.
#include <algorithm>
#include <cstdint>
#include <string>

#include "../core/error.hpp"
#include "crc32.hpp"
#include "image.hpp"

namespace blip2::image {

namespace detail {
inline void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += char((v >> s) & 0xff);
}

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, std::uint32_t(data.size()));
  const std::size_t start = out.size();
  out += type;
  out += data;
  put_u32(out, crc32(reinterpret_cast<const std::uint8_t*>(out.data()) + start, out.size() - start));
}
}  // namespace detail

// The PNG file bytes of an RGB image.
inline std::string encode_png(const Image& img) {
  BLIP2_CHECK(img.width > 0 && img.height > 0 && img.data.size() == std::size_t(img.width) * img.height * 3, ValueError,
              "encode_png: image of ", img.width, "x", img.height, " holds ", img.data.size(), " bytes, not RGB");
  // Scanlines, each led by filter type 0, as zlib stored blocks of at most 65535 bytes.
  std::string raw;
  for (int y = 0; y < img.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(img.data.data()) + std::size_t(y) * img.width * 3, std::size_t(img.width) * 3);
  }
  std::string z = "\x78\x01";
  for (std::size_t at = 0, n = 0; at < raw.size(); at += n) {
    n = std::min<std::size_t>(65535, raw.size() - at);
    z += char(at + n == raw.size() ? 1 : 0);  // BFINAL on the last block
    z += char(n & 0xff);
    z += char(n >> 8);
    z += char(~n & 0xff);
    z += char((~n >> 8) & 0xff);
    z.append(raw, at, n);
  }
  std::uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  detail::put_u32(z, (b << 16) | a);
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string header;
  detail::put_u32(header, std::uint32_t(img.width));
  detail::put_u32(header, std::uint32_t(img.height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter method, no interlace
  detail::png_chunk(png, "IHDR", header);
  detail::png_chunk(png, "IDAT", z);
  detail::png_chunk(png, "IEND", "");
  return png;
}

}  // namespace blip2::image
