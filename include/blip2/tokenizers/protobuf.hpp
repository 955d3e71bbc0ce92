#pragma once
// A minimal protocol-buffers wire-format reader: enough to walk the fields of a message
// (varint, 32-bit, 64-bit and length-delimited values) without generated code. Every read is
// bounds-checked; malformed input throws IoError naming `what` (the file).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../core/error.hpp"

namespace blip2::tokenizers::protobuf {

enum class WireType : std::uint8_t { varint = 0, fixed64 = 1, bytes = 2, fixed32 = 5 };

struct Field {
  std::uint32_t number = 0;
  WireType type = WireType::varint;
  std::uint64_t varint = 0;  // varint, fixed32, fixed64 values
  std::string_view bytes;    // length-delimited values

  std::int32_t as_int32() const { return static_cast<std::int32_t>(static_cast<std::int64_t>(varint)); }
  bool as_bool() const { return varint != 0; }
  float as_float() const {
    const std::uint32_t bits = static_cast<std::uint32_t>(varint);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

class Reader {
 public:
  Reader(std::string_view data, std::string what) : data_(data), what_(std::move(what)) {}

  bool done() const { return pos_ >= data_.size(); }

  // Reads the next field; throws IoError on truncated or malformed data.
  Field next() {
    Field f;
    const std::uint64_t key = read_varint();
    f.number = static_cast<std::uint32_t>(key >> 3);
    BLIP2_CHECK(f.number != 0 && (key >> 3) <= 0x1FFFFFFF, IoError, what_, ": corrupt protobuf (field number 0 at byte ",
                pos_, ")");
    switch (key & 7) {
      case 0:
        f.type = WireType::varint;
        f.varint = read_varint();
        break;
      case 1:
        f.type = WireType::fixed64;
        f.varint = read_fixed(8);
        break;
      case 2: {
        f.type = WireType::bytes;
        const std::uint64_t n = read_varint();
        BLIP2_CHECK(n <= data_.size() - pos_, IoError, what_, ": corrupt protobuf (field ", f.number, " of ", n,
                    " bytes runs past the end at byte ", pos_, ")");
        f.bytes = data_.substr(pos_, std::size_t(n));
        pos_ += std::size_t(n);
        break;
      }
      case 5:
        f.type = WireType::fixed32;
        f.varint = read_fixed(4);
        break;
      default:
        throw IoError(blip2::detail::cat(what_, ": corrupt protobuf (unsupported wire type ", key & 7, " for field ",
                                         f.number, " at byte ", pos_, ")"));
    }
    return f;
  }

  // Checks that `f` has wire type `t` (the schema's type).
  void expect(const Field& f, WireType t, std::string_view name) const {
    BLIP2_CHECK(f.type == t, IoError, what_, ": corrupt protobuf (field ", name, " has wire type ", int(f.type),
                ", expected ", int(t), ")");
  }

 private:
  std::uint64_t read_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      BLIP2_CHECK(pos_ < data_.size(), IoError, what_, ": corrupt protobuf (truncated varint at byte ", pos_, ")");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= std::uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw IoError(blip2::detail::cat(what_, ": corrupt protobuf (varint longer than 10 bytes at byte ", pos_, ")"));
  }
  std::uint64_t read_fixed(int n) {
    BLIP2_CHECK(data_.size() - pos_ >= std::size_t(n), IoError, what_, ": corrupt protobuf (truncated fixed", n * 8,
                " at byte ", pos_, ")");
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + std::size_t(i)]);
    pos_ += std::size_t(n);
    return v;
  }

  std::string_view data_;
  std::string what_;
  std::size_t pos_ = 0;
};

}  // namespace blip2::tokenizers::protobuf
