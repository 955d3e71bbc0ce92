#pragma once
// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw data.
// Reading maps the file and validates every entry before any tensor is used; writing produces
// files transformers reads.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../ops/convert.hpp"
#include "mapped_file.hpp"

namespace blip2::io {

// Element types a safetensors file may hold, with their on-disk names.
struct StorageType {
  DType dtype;
  std::string_view name;
  std::size_t bytes;
};
inline const std::vector<StorageType>& storage_types() {
  static const std::vector<StorageType> types{{DType::f32, "F32", 4}, {DType::f64, "F64", 8}, {DType::f16, "F16", 2},
                                              {DType::bf16, "BF16", 2}, {DType::i64, "I64", 8}, {DType::i32, "I32", 4},
                                              {DType::u8, "U8", 1}};
  return types;
}
inline const StorageType* find_storage_type(std::string_view name) {
  for (const auto& t : storage_types())
    if (t.name == name) return &t;
  return nullptr;
}
inline const StorageType& storage_type(DType d) {
  for (const auto& t : storage_types())
    if (t.dtype == d) return t;
  throw DTypeError(blip2::detail::cat("safetensors: no storage type for ", name(d)));
}

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::size_t begin = 0, end = 0;  // byte range within the data section
};

namespace detail {
// Calls f(value) with `bytes` reinterpreted as element type of `dtype`.
template <class F>
void visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::f16: return f(f16{});
    case DType::bf16: return f(bf16{});
    case DType::i64: return f(std::int64_t{});
    case DType::i32: return f(std::int32_t{});
    case DType::u8: return f(std::uint8_t{});
  }
}
}  // namespace detail

class SafeTensorsFile {
 public:
  // Maps and validates `path`; throws IoError naming the file (and tensor) on any inconsistency.
  static SafeTensorsFile open(const std::string& path) {
    SafeTensorsFile f;
    f.file_ = MappedFile::open(path);
    const std::size_t size = f.file_->size();
    BLIP2_CHECK(size >= 8, IoError, path, ": truncated safetensors file (", size, " bytes, no header length)");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | f.file_->data()[i];
    BLIP2_CHECK(n <= size - 8, IoError, path, ": header length ", n, " runs past the end of the file (", size,
                " bytes)");
    BLIP2_CHECK(n <= (std::uint64_t(100) << 20), IoError, path, ": header length ", n, " exceeds 100 MiB");
    f.data_offset_ = 8 + std::size_t(n);
    const std::size_t data_size = size - f.data_offset_;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(f.file_->data() + 8, f.file_->data() + 8 + n);
    } catch (const nlohmann::json::exception& e) {
      throw IoError(path + ": header is not valid JSON (" + e.what() + ")");
    }
    BLIP2_CHECK(header.is_object(), IoError, path, ": header is not a JSON object");
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (it->is_object())
          for (auto m = it->begin(); m != it->end(); ++m)
            if (m->is_string()) f.metadata_[m.key()] = m->get<std::string>();
        continue;
      }
      f.entries_.push_back(parse_entry(path, it.key(), it.value(), data_size));
    }
    std::vector<const TensorEntry*> by_offset;
    for (const auto& e : f.entries_) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      BLIP2_CHECK(by_offset[i]->begin >= by_offset[i - 1]->end || by_offset[i]->begin == by_offset[i]->end, IoError,
                  path, ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");
    for (std::size_t i = 0; i < f.entries_.size(); ++i) f.index_[f.entries_[i].name] = i;
    return f;
  }

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const {
    auto it = index_.find(name);
    BLIP2_CHECK(it != index_.end(), IoError, path(), ": no tensor named '", name, "'");
    return entries_[it->second];
  }

  // The tensor `name` as element type T on device D. Same type on the CPU with suitable alignment:
  // a view of the mapping (no copy); otherwise converted into fresh memory.
  template <class T, class D = cpu>
  Tensor<T, D> load(const std::string& name) const {
    const TensorEntry& e = entry(name);
    unsigned char* bytes = file_->data() + data_offset_ + e.begin;
    Tensor<T, D> out;
    detail::visit_dtype(e.dtype, [&](auto tag) {
      using S = decltype(tag);
      if constexpr (std::is_same_v<S, T> && std::is_same_v<D, cpu>) {
        if (reinterpret_cast<std::uintptr_t>(bytes) % alignof(T) == 0) {
          out = Tensor<T, cpu>::from_external(reinterpret_cast<T*>(bytes), e.shape, file_);
          return;
        }
      }
      auto host = Tensor<S, cpu>::empty(e.shape);
      if (host.numel()) std::memcpy(host.data(), bytes, e.end - e.begin);
      out = host.template to<T>().template to<D>();
    });
    return out;
  }

 private:
  static TensorEntry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                                 std::size_t data_size) {
    auto fail = [&](const std::string& why) { return IoError(path + ": tensor '" + name + "': " + why); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw fail("entry needs dtype, shape and data_offsets");
    TensorEntry e;
    e.name = name;
    if (!v["dtype"].is_string()) throw fail("dtype is not a string");
    const auto* st = find_storage_type(v["dtype"].get<std::string>());
    if (!st) throw fail("unsupported dtype '" + v["dtype"].get<std::string>() + "'");
    e.dtype = st->dtype;
    if (!v["shape"].is_array()) throw fail("shape is not an array");
    std::uint64_t count = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw fail("shape holds a non-integer or negative dimension");
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim > (std::uint64_t(1) << 40) || (dim && count > (std::uint64_t(1) << 62) / dim)) throw fail("shape too large");
      count *= dim;
      e.shape.push_back(index_t(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail("data_offsets must be two non-negative integers");
    const std::uint64_t b = off[0].get<std::uint64_t>(), en = off[1].get<std::uint64_t>();
    if (b > en || en > data_size)
      throw fail(blip2::detail::cat("data_offsets [", b, ", ", en, "] outside the data section of ", data_size, " bytes"));
    if (count > std::numeric_limits<std::uint64_t>::max() / st->bytes)  // the product would wrap around 2^64
      throw fail(blip2::detail::cat("dtype ", st->name, " and shape ", to_string(e.shape), " need more than 2^64 bytes"));
    if (en - b != count * st->bytes)
      throw fail(blip2::detail::cat("dtype ", st->name, " and shape ", to_string(e.shape), " need ", count * st->bytes,
                             " bytes but data_offsets span ", en - b));
    e.begin = std::size_t(b);
    e.end = std::size_t(en);
    return e;
  }

  std::shared_ptr<MappedFile> file_;
  std::size_t data_offset_ = 0;
  std::vector<TensorEntry> entries_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor queued for writing: its name, type, shape and bytes (copied to the host).
struct TensorRecord {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<unsigned char> bytes;

  template <class T, class D>
  static TensorRecord from(std::string name, const Tensor<T, D>& t) {
    const auto values = t.template to<cpu>().to_vector();
    TensorRecord r{std::move(name), dtype_traits<T>::id, t.shape(), {}};
    r.bytes.resize(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(r.bytes.data(), values.data(), r.bytes.size());
    return r;
  }
};

// Writes `tensors` (names must be unique) to `path` in the safetensors format.
inline void save_safetensors(const std::string& path, const std::vector<TensorRecord>& tensors,
                             const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t at = 0;
  for (const auto& t : tensors) {
    BLIP2_CHECK(!header.contains(t.name), IoError, path, ": tensor '", t.name, "' given twice");
    header[t.name] = {{"dtype", std::string(storage_type(t.dtype).name)},
                      {"shape", t.shape},
                      {"data_offsets", {at, at + t.bytes.size()}}};
    at += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section starts 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  BLIP2_CHECK(out, IoError, path, ": cannot open for writing");
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((std::uint64_t(h.size()) >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  BLIP2_CHECK(out.good(), IoError, path, ": write failed");
}

}  // namespace blip2::io
