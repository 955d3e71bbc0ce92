#pragma once
// Decoding PNG, JPEG, BMP and GIF (first frame) into 8-bit RGB exactly as PIL's
// Image.open(path).convert("RGB") does for the cases BLIP-2 meets: grey is replicated, an alpha
// channel is dropped (not composited), a palette is expanded, 16-bit RGB keeps the high byte and
// 16-bit grey is clamped to 255 (PIL's I;16 -> RGB rule). Pixels come from stb_image.
//
// A truncated or corrupt file is an IoError naming the file, never a partial image: stb_image
// fills missing data silently for some formats, so before decoding the file's structure is walked
// here — PNG: every chunk inside the file with a correct CRC, IHDR first, at least one IDAT, an
// IEND (stb_image then refuses an IDAT stream that does not inflate to the full image); JPEG: the
// marker segments and entropy-coded scans up to an EOI marker; GIF: the blocks up to the end of
// the first image's data; BMP: the pixel array inside the file.
//
// JPEG: stb_image parses the file, and jpeg_decode.hpp redoes the IDCT, chroma upsampling and
// YCbCr -> RGB conversion with libjpeg-turbo's arithmetic (what PIL runs). Known differences from
// PIL: 4-component (CMYK/YCCK) JPEGs use stb_image's conversion, as does every JPEG when
// BLIP2_STB_IMAGE_EXTERNAL is defined (then pixels differ from PIL's by a few levels); transparent
// pixels of a GIF's first frame come out black where PIL gives the palette colour; PNG chunk CRCs
// are checked for IDAT too (PIL skips those).
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../io/mapped_file.hpp"
#include "crc32.hpp"
#include "image.hpp"
#include "jpeg_decode.hpp"
#include "stb_image_impl.hpp"

namespace blip2::image {

enum class ImageFormat { unknown, png, jpeg, bmp, gif };

inline const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::png: return "PNG";
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::bmp: return "BMP";
    case ImageFormat::gif: return "GIF";
    default: return "unknown";
  }
}

// The format named by the file's first bytes (its signature), or unknown.
inline ImageFormat sniff_format(const std::uint8_t* p, std::size_t n) {
  static const std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(p, png_sig, 8) == 0) return ImageFormat::png;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::jpeg;
  if (n >= 6 && (std::memcmp(p, "GIF87a", 6) == 0 || std::memcmp(p, "GIF89a", 6) == 0)) return ImageFormat::gif;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return ImageFormat::bmp;
  return ImageFormat::unknown;
}

namespace detail {

inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
inline std::uint32_t le32(const std::uint8_t* p) {
  return (std::uint32_t(p[3]) << 24) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[1]) << 8) | p[0];
}
inline std::uint32_t le16(const std::uint8_t* p) { return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8); }

struct PngInfo {
  int bit_depth = 0;
  int colour_type = 0;
};

inline PngInfo check_png(const std::uint8_t* p, std::size_t n, const std::string& name) {
  PngInfo info;
  std::size_t pos = 8;
  bool first = true, seen_idat = false;
  for (;;) {
    BLIP2_CHECK(pos + 8 <= n, IoError, name, ": truncated PNG (file ends at byte ", n,
                " before the IEND chunk)");
    const std::uint32_t len = be32(p + pos);
    const std::string type(reinterpret_cast<const char*>(p + pos + 4), 4);
    BLIP2_CHECK(len <= 0x7FFFFFFFu, IoError, name, ": corrupt PNG (chunk at byte ", pos, " claims length ", len,
                ")");
    BLIP2_CHECK(pos + 12 + std::size_t(len) <= n, IoError, name, ": truncated PNG (chunk '", type, "' at byte ",
                pos, " of length ", len, " runs past the end of the ", n, "-byte file)");
    const std::uint32_t stored = be32(p + pos + 8 + len);
    BLIP2_CHECK(crc32(p + pos + 4, std::size_t(len) + 4) == stored, IoError, name, ": corrupt PNG (CRC mismatch in chunk '",
                type, "' at byte ", pos, ")");
    if (first) {
      BLIP2_CHECK(type == "IHDR" && len == 13, IoError, name, ": corrupt PNG (first chunk is '", type,
                  "', not a 13-byte IHDR)");
      info.bit_depth = p[pos + 8 + 8];
      info.colour_type = p[pos + 8 + 9];
      first = false;
    }
    if (type == "IDAT") seen_idat = true;
    if (type == "IEND") break;
    pos += 12 + std::size_t(len);
  }
  BLIP2_CHECK(seen_idat, IoError, name, ": corrupt PNG (no IDAT chunk)");
  return info;
}

// A DHT segment's tables (at `at` in the file): each a class/id byte, 16 code-length counts that
// add up to at most 256 symbols, and the symbols. Debian's stb_image (2.27) writes past its
// 257-entry arrays when the counts add up to more.
inline void check_jpeg_huffman_tables(const std::uint8_t* q, std::size_t n, std::size_t at, const std::string& name) {
  for (std::size_t pos = 0; pos < n;) {
    BLIP2_CHECK(pos + 17 <= n, IoError, name, ": corrupt JPEG (Huffman table segment at byte ", at,
                " ends inside a table header)");
    BLIP2_CHECK((q[pos] >> 4) <= 1 && (q[pos] & 15) <= 3, IoError, name, ": corrupt JPEG (Huffman table class/id 0x",
                std::hex, int(q[pos]), std::dec, " in the segment at byte ", at, ")");
    std::size_t symbols = 0;
    for (int i = 1; i <= 16; ++i) symbols += q[pos + std::size_t(i)];
    BLIP2_CHECK(symbols <= 256, IoError, name, ": corrupt JPEG (a Huffman table in the segment at byte ", at, " codes ",
                symbols, " symbols; at most 256)");
    pos += 17 + symbols;
    BLIP2_CHECK(pos <= n, IoError, name, ": corrupt JPEG (Huffman table segment at byte ", at, " ends inside its symbols)");
  }
}

inline void check_jpeg(const std::uint8_t* p, std::size_t n, const std::string& name) {
  std::size_t pos = 2;  // after SOI
  bool seen_frame = false, seen_scan = false;
  for (;;) {
    // Next marker: 0xFF, any fill 0xFF bytes, then the marker code.
    // Stray bytes before a marker are skipped, as libjpeg does (with a warning).
    while (pos < n && p[pos] != 0xFF) ++pos;
    BLIP2_CHECK(pos < n, IoError, name, ": truncated JPEG (file ends at byte ", n, " with no EOI marker)");
    while (pos < n && p[pos] == 0xFF) ++pos;
    BLIP2_CHECK(pos < n, IoError, name, ": truncated JPEG (file ends at byte ", n, " with no EOI marker)");
    const int m = p[pos++];
    if (m == 0xD9) {  // EOI
      BLIP2_CHECK(seen_frame && seen_scan, IoError, name, ": corrupt JPEG (EOI before any ",
                  seen_frame ? "scan" : "frame header", ")");
      return;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // standalone markers
    BLIP2_CHECK(m != 0xD8 && m != 0x00, IoError, name, ": corrupt JPEG (unexpected marker 0xFF", std::uppercase, std::hex, m,
                " at byte ", std::dec, pos - 2, ")");
    BLIP2_CHECK(pos + 2 <= n, IoError, name, ": truncated JPEG (file ends inside the 0xFF", std::uppercase, std::hex, m,
                " segment header)");
    const std::size_t len = (std::size_t(p[pos]) << 8) | p[pos + 1];
    BLIP2_CHECK(len >= 2, IoError, name, ": corrupt JPEG (segment 0xFF", std::uppercase, std::hex, m, std::dec, " at byte ", pos - 2,
                " has length ", len, ")");
    BLIP2_CHECK(pos + len <= n, IoError, name, ": truncated JPEG (segment 0xFF", std::uppercase, std::hex, m, std::dec, " at byte ",
                pos - 2, " of length ", len, " runs past the end of the ", n, "-byte file)");
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) seen_frame = true;
    if (m == 0xC4) check_jpeg_huffman_tables(p + pos + 2, len - 2, pos - 2, name);
    pos += len;
    if (m == 0xDA) {  // SOS: entropy-coded data follows until the next marker that is not RSTn
      seen_scan = true;
      for (;;) {
        while (pos < n && p[pos] != 0xFF) ++pos;
        BLIP2_CHECK(pos + 1 < n, IoError, name, ": truncated JPEG (file ends at byte ", n,
                    " inside scan data, with no EOI marker)");
        const int next = p[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
          pos += 2;  // stuffed 0xFF or restart marker
        } else if (next == 0xFF) {
          ++pos;  // fill byte
        } else {
          break;  // a marker: handled by the outer loop
        }
      }
    }
  }
}

inline void check_gif(const std::uint8_t* p, std::size_t n, const std::string& name) {
  auto need = [&](std::size_t end, const char* what) {
    BLIP2_CHECK(end <= n, IoError, name, ": truncated GIF (file ends at byte ", n, " inside ", what, ")");
  };
  need(13, "the header");
  std::size_t pos = 13;
  if (p[10] & 0x80) pos += 3 * (std::size_t(1) << ((p[10] & 7) + 1));  // global colour table
  need(pos, "the global colour table");
  auto skip_sub_blocks = [&](const char* what) {
    for (;;) {
      need(pos + 1, what);
      const std::size_t len = p[pos++];
      if (len == 0) return;
      need(pos + len, what);
      pos += len;
    }
  };
  for (;;) {
    need(pos + 1, "the block list before the first image");
    const int b = p[pos++];
    if (b == 0x21) {  // extension: label, then data sub-blocks
      need(pos + 1, "an extension block");
      ++pos;
      skip_sub_blocks("an extension block");
    } else if (b == 0x2C) {  // image descriptor
      need(pos + 9, "the first image descriptor");
      const int flags = p[pos + 8];
      pos += 9;
      if (flags & 0x80) pos += 3 * (std::size_t(1) << ((flags & 7) + 1));
      need(pos + 1, "the first image's colour table");
      ++pos;  // LZW minimum code size
      skip_sub_blocks("the first image's data");
      return;
    } else {
      throw IoError(blip2::detail::cat(name, ": corrupt GIF (", b == 0x3B ? "trailer before any image" : "unknown block",
                                " at byte ", pos - 1, ")"));
    }
  }
}

// PIL's decompression-bomb limit: Image.open refuses more than twice MAX_IMAGE_PIXELS (89478485)
// pixels. Checked on the declared size, before anything is allocated.
inline constexpr std::int64_t kMaxImagePixels = 2 * std::int64_t(89478485);

inline void check_pixel_count(std::int64_t w, std::int64_t h, const std::string& name, const char* format) {
  BLIP2_CHECK(w > 0 && h > 0, IoError, name, ": ", format, " declares an empty ", w, "x", h, " image");
  BLIP2_CHECK(w <= kMaxImagePixels / h, IoError, name, ": ", format, " declares ", w, "x", h,
              " pixels, more than the limit of ", kMaxImagePixels, " (a decompression bomb, as PIL calls it)");
}

inline void check_bmp(const std::uint8_t* p, std::size_t n, const std::string& name) {
  BLIP2_CHECK(n >= 26, IoError, name, ": truncated BMP (", n, " bytes, no complete header)");
  const std::uint32_t offset = le32(p + 10), hsz = le32(p + 14);
  std::int64_t w = 0, h = 0;
  std::uint32_t bpp = 0, compression = 0;
  if (hsz == 12) {
    w = le16(p + 18);
    h = le16(p + 20);
    bpp = le16(p + 24);
  } else {
    BLIP2_CHECK(hsz >= 40 && n >= 34, IoError, name, ": corrupt or truncated BMP (header size ", hsz, ", file ", n,
                " bytes)");
    w = std::int32_t(le32(p + 18));
    h = std::int32_t(le32(p + 22));
    bpp = le16(p + 28);
    compression = le32(p + 30);
  }
  if (h < 0) h = -h;
  check_pixel_count(w, h, name, "BMP");
  // stb_image reads uncompressed and bit-field pixel arrays only; any other value (RLE, embedded
  // JPEG/PNG, or garbage) would make it invent pixels.
  BLIP2_CHECK(compression == 0 || compression == 3 || compression == 6, IoError, name,
              ": unsupported BMP compression ", compression, " (0, 3 or 6: uncompressed or bit fields)");
  {
    const std::int64_t stride = ((w * std::int64_t(bpp) + 31) / 32) * 4;
    const std::int64_t need = std::int64_t(offset) + stride * h;
    BLIP2_CHECK(w > 0 && need <= std::int64_t(n), IoError, name, ": truncated BMP (pixel data needs ", need,
                " bytes, the file has ", n, ")");
  }
}

// Decodes with stb_image and returns RGB; `info` carries PNG facts for PIL's 16-bit grey rule.
inline Image stb_decode_rgb(const std::uint8_t* p, std::size_t n, const std::string& name, ImageFormat fmt,
                            const PngInfo& info) {
  BLIP2_CHECK(n <= std::size_t(0x7FFFFFFF), IoError, name, ": file too large to decode (", n, " bytes)");
  int w = 0, h = 0, comp = 0;
  BLIP2_CHECK(stbi_info_from_memory(p, int(n), &w, &h, &comp), IoError, name, ": cannot decode ", format_name(fmt), " (",
              stb_failure(), ")");
  check_pixel_count(w, h, name, format_name(fmt));
  if (fmt == ImageFormat::png && info.bit_depth == 16 && info.colour_type == 0) {
    // PIL opens 16-bit grey as I;16 and converts it to RGB by clamping to 255, not by scaling.
    // (16-bit grey+alpha, RGB and RGBA keep the high byte in PIL, as stb_image's 8-bit load does.)
    std::unique_ptr<stbi_us, void (*)(void*)> px(stbi_load_16_from_memory(p, int(n), &w, &h, &comp, 1),
                                                 stbi_image_free);
    BLIP2_CHECK(px, IoError, name, ": cannot decode ", format_name(fmt), " (", stb_failure(), ")");
    Image img(w, h);
    const std::size_t count = std::size_t(w) * std::size_t(h);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t v = px.get()[i] > 255 ? 255 : std::uint8_t(px.get()[i]);
      img.data[3 * i] = img.data[3 * i + 1] = img.data[3 * i + 2] = v;
    }
    return img;
  }
#ifndef BLIP2_STB_IMAGE_EXTERNAL
  if (fmt == ImageFormat::jpeg) {
    Image img = decode_jpeg_libjpeg(p, n, name);  // libjpeg-turbo's IDCT, upsampling and colour
    if (!img.empty()) return img;
  }
#endif
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(p, int(n), &w, &h, &comp, 3), stbi_image_free);
  BLIP2_CHECK(px, IoError, name, ": cannot decode ", format_name(fmt), " (", stb_failure(), ")");
  BLIP2_CHECK(w > 0 && h > 0, IoError, name, ": decoded an empty ", w, "x", h, " image");
  const std::size_t bytes = std::size_t(w) * std::size_t(h) * 3;
  return Image(w, h, std::vector<std::uint8_t>(px.get(), px.get() + bytes));
}

}  // namespace detail

// Checks that the encoded image in [data, data + size) is complete, then decodes it to RGB. `name`
// (a path, or what the bytes came from) is named in every error.
inline Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name = "<memory>") {
  BLIP2_CHECK(data != nullptr || size == 0, ValueError, "decode_image: null data for ", name);
  BLIP2_CHECK(size > 0, IoError, name, ": empty file, not an image");
  const ImageFormat fmt = sniff_format(data, size);
  detail::PngInfo info;
  switch (fmt) {
    case ImageFormat::png: info = detail::check_png(data, size, name); break;
    case ImageFormat::jpeg: detail::check_jpeg(data, size, name); break;
    case ImageFormat::gif: detail::check_gif(data, size, name); break;
    case ImageFormat::bmp: detail::check_bmp(data, size, name); break;
    default:
      throw IoError(blip2::detail::cat(name, ": not a PNG, JPEG, BMP or GIF image (unrecognised signature, ", size,
                                " bytes)"));
  }
  return detail::stb_decode_rgb(data, size, name, fmt, info);
}

inline Image decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name = "<memory>") {
  return decode_image(bytes.data(), bytes.size(), name);
}

// Reads and decodes the image file at `path` (PIL's Image.open(path).convert("RGB")).
inline Image load_image(const std::string& path) {
  const auto file = io::MappedFile::open(path);
  return decode_image(file->data(), file->size(), path);
}

}  // namespace blip2::image
