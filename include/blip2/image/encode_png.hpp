#pragma once
// A minimal PNG writer (8-bit RGB, stored deflate blocks, no compression): enough for reports and
// debugging images, with no dependency. Files are larger than a compressing encoder's but valid for
// every PNG reader.
#include <array>
#include <cstdint>
#include <fstream>
#include <string>

#include "../core/error.hpp"
#include "image.hpp"

namespace blip2::image {

namespace detail {
inline std::uint32_t png_crc(const std::string& bytes, std::size_t from) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = from; i < bytes.size(); ++i) c = table[(c ^ static_cast<unsigned char>(bytes[i])) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += char((v >> s) & 0xff);
}

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, std::uint32_t(data.size()));
  const std::size_t start = out.size();
  out += type;
  out += data;
  put_u32(out, png_crc(out, start));
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
  for (std::size_t at = 0; at < raw.size() || at == 0; at += 65535) {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - at);
    z += char(at + n == raw.size() ? 1 : 0);
    z += char(n & 0xff);
    z += char(n >> 8);
    z += char(~n & 0xff);
    z += char((~n >> 8) & 0xff);
    z.append(raw, at, n);
    if (at + n == raw.size()) break;
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

inline void save_png(const Image& img, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  BLIP2_CHECK(out.good(), IoError, path, ": cannot open for writing");
  out << encode_png(img);
  BLIP2_CHECK(out.good(), IoError, path, ": write failed");
}

}  // namespace blip2::image
