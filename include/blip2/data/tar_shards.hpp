#pragma once
// Image-text samples from webdataset-style tar shards (the layout LAVIS's LAION/CC datasets read
// with webdataset): the members of one sample sit next to each other and share a key, the member
// path up to the first dot of its file name ("dir/000123.jpg", "dir/000123.txt" -> "dir/000123").
// A sample's image is its jpg/jpeg/png/webp/bmp/gif member (first in that order), its caption the
// .txt member or else the "caption" (then "text") field of the .json member; members whose file
// name has no dot are passed over, as webdataset does. (image/decode.hpp has no WebP decoder: the
// loader treats a WebP-only sample as a bad image.)
//
// Tar: POSIX ustar and the older v7/GNU headers in 512-byte blocks, checksums verified; long names
// from GNU 'L' entries and from pax 'x' headers ("path", "size"), which Python's tarfile writes;
// regular files only (directories, links and devices are passed over); the archive ends at a zero
// block or at the end of the file. Reading is sequential with one sample in memory (plus the
// member being read); members a sample does not use are skipped without being read.
//
// Errors: IoError naming the shard and the byte offset of the bad header or the member that runs
// past the end of the file (a truncated download).
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace blip2::data {

// A regular file inside a tar archive.
struct TarEntry {
  std::string name;          // full path inside the archive
  std::uint64_t size = 0;    // bytes of data
  std::uint64_t offset = 0;  // byte offset of its header in the archive
};

// Sequential reader of one tar archive.
class TarReader {
 public:
  static constexpr std::uint64_t kBlock = 512;

  explicit TarReader(std::string path) : path_(std::move(path)), in_(path_, std::ios::binary) {
    BLIP2_CHECK(in_.is_open(), IoError, path_, ": cannot open the tar shard");
    in_.seekg(0, std::ios::end);
    file_size_ = std::uint64_t(in_.tellg());
    in_.seekg(0);
  }

  // Moves to the next regular file; false at the end of the archive. Unread data of the previous
  // entry is skipped. A failed call changes nothing: calling again raises the same error.
  bool next(TarEntry& entry) {
    need(data_end_, last_.offset, "member '" + last_.name + "' of " + std::to_string(last_.size) + " bytes");
    std::string long_name;
    for (std::uint64_t header_at = next_header_;;) {
      if (header_at >= file_size_) return false;  // no end-of-archive blocks: tolerated, as tarfile does
      need(header_at + kBlock, header_at, "a header");
      std::array<unsigned char, kBlock> h{};
      seek_read(header_at, h.data(), kBlock);
      if (std::all_of(h.begin(), h.end(), [](unsigned char b) { return b == 0; })) return false;
      check_checksum(h, header_at);
      std::uint64_t size = number(h, 124, 12, header_at, "size");
      const char type = char(h[156]);
      if (type == 'x') {
        apply_pax(read_meta(header_at, size, "pax header"), header_at, long_name, pax_size_);
      } else if (type == 'L') {
        long_name = read_meta(header_at, size, "GNU long name");
        long_name.erase(std::find(long_name.begin(), long_name.end(), '\0'), long_name.end());
      }
      if (type == 'x' || type == 'L' || type == 'K' || type == 'g') {
        header_at += kBlock + padded(size);
        continue;
      }
      std::string name = long_name.empty() ? header_name(h) : std::move(long_name);
      long_name.clear();
      if (pax_size_ != kNoSize) size = std::exchange(pax_size_, kNoSize);
      // Links, devices and directories have no data whatever their size field says.
      const bool has_data = !(type >= '1' && type <= '6');
      const std::uint64_t data_at = header_at + kBlock;
      next_header_ = data_at + (has_data ? padded(size) : 0);
      last_ = {std::move(name), has_data ? size : 0, header_at};
      data_at_ = data_at;
      data_end_ = data_at + last_.size;
      const bool regular = type == '0' || type == '\0' || type == '7';
      if (!regular || (!last_.name.empty() && last_.name.back() == '/')) {  // not a file (or a v7 directory)
        need(data_end_, header_at, "entry '" + last_.name + "'");
        header_at = next_header_;
        continue;
      }
      entry = last_;
      return true;
    }
  }

  // The data of the entry next() returned last.
  std::vector<std::uint8_t> read(const TarEntry& entry) {
    need(data_at_ + entry.size, entry.offset,
         "member '" + entry.name + "' of " + std::to_string(entry.size) + " bytes");
    std::vector<std::uint8_t> data(entry.size);
    seek_read(data_at_, data.data(), entry.size);
    return data;
  }

  const std::string& path() const { return path_; }

 private:
  static constexpr std::uint64_t kNoSize = ~std::uint64_t(0);
  static std::uint64_t padded(std::uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

  void need(std::uint64_t end, std::uint64_t header_at, const std::string& what) const {
    BLIP2_CHECK(end <= file_size_, IoError, path_, ": truncated tar (", what, " at byte ", header_at,
                " needs the file to reach byte ", end, ", it ends at byte ", file_size_, ")");
  }

  void seek_read(std::uint64_t at, void* out, std::uint64_t n) {
    in_.clear();
    in_.seekg(std::streamoff(at));
    in_.read(static_cast<char*>(out), std::streamsize(n));
    BLIP2_CHECK(std::uint64_t(in_.gcount()) == n, IoError, path_, ": read error at byte ", at);
  }

  // A numeric header field: octal digits (NUL/space padded), or GNU's base-256 (high bit set).
  std::uint64_t number(const std::array<unsigned char, kBlock>& h, std::size_t at, std::size_t len,
                       std::uint64_t header_at, const char* field) const {
    std::uint64_t v = 0;
    if (h[at] & 0x80) {
      BLIP2_CHECK(h[at] == 0x80, IoError, path_, ": corrupt tar header at byte ", header_at, " (negative or huge ",
                  field, ")");
      for (std::size_t i = at + 1; i < at + len; ++i) v = (v << 8) | h[i];
      return v;
    }
    std::size_t i = at, end = at + len;
    while (i < end && h[i] == ' ') ++i;
    for (; i < end && h[i] != 0 && h[i] != ' '; ++i) {
      BLIP2_CHECK(h[i] >= '0' && h[i] <= '7', IoError, path_, ": corrupt tar header at byte ", header_at, " (",
                  field, " field is not an octal number)");
      v = v * 8 + (h[i] - '0');
    }
    return v;
  }

  void check_checksum(const std::array<unsigned char, kBlock>& h, std::uint64_t header_at) const {
    std::uint64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;  // some old tars summed signed chars
    for (std::size_t i = 0; i < kBlock; ++i) {
      const unsigned char b = i >= 148 && i < 156 ? ' ' : h[i];
      unsigned_sum += b;
      signed_sum += static_cast<signed char>(b);
    }
    const std::uint64_t stored = number(h, 148, 8, header_at, "checksum");
    BLIP2_CHECK(stored == unsigned_sum || std::int64_t(stored) == signed_sum, IoError, path_,
                ": corrupt tar header at byte ", header_at, " (checksum ", stored, ", computed ", unsigned_sum,
                "): not a tar file, or damaged");
  }

  // ustar splits long paths into prefix "/" name; GNU headers use the prefix area for other things.
  static std::string header_name(const std::array<unsigned char, kBlock>& h) {
    auto field = [&](std::size_t at, std::size_t len) {
      const char* p = reinterpret_cast<const char*>(h.data() + at);
      return std::string(p, strnlen(p, len));
    };
    const std::string name = field(0, 100);
    const bool posix = std::memcmp(h.data() + 257, "ustar\0", 6) == 0;
    const std::string prefix = posix ? field(345, 155) : std::string();
    return prefix.empty() ? name : prefix + "/" + name;
  }

  std::string read_meta(std::uint64_t header_at, std::uint64_t size, const char* what) {
    BLIP2_CHECK(size <= (std::uint64_t(1) << 20), IoError, path_, ": corrupt tar (", what, " at byte ", header_at,
                " claims ", size, " bytes)");
    need(header_at + kBlock + size, header_at, what);
    std::string s(size, '\0');
    seek_read(header_at + kBlock, s.data(), size);
    return s;
  }

  // pax records "<length> <key>=<value>\n"; "path" and "size" override the next header's fields.
  void apply_pax(const std::string& pax, std::uint64_t header_at, std::string& name, std::uint64_t& size) const {
    for (std::size_t pos = 0; pos < pax.size() && pax[pos] != '\0';) {
      const std::size_t space = pax.find(' ', pos);
      std::size_t length = 0;
      for (std::size_t i = pos; i < space && i < pax.size(); ++i) {
        BLIP2_CHECK(pax[i] >= '0' && pax[i] <= '9', IoError, path_, ": corrupt pax header at byte ", header_at);
        length = length * 10 + std::size_t(pax[i] - '0');
      }
      BLIP2_CHECK(space != std::string::npos && length > space - pos && pos + length <= pax.size() &&
                      pax[pos + length - 1] == '\n',
                  IoError, path_, ": corrupt pax header at byte ", header_at);
      const std::string record = pax.substr(space + 1, pos + length - 1 - (space + 1));
      const std::size_t eq = record.find('=');
      BLIP2_CHECK(eq != std::string::npos, IoError, path_, ": corrupt pax header at byte ", header_at);
      const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
      if (key == "path") name = value;
      if (key == "size") {
        BLIP2_CHECK(!value.empty() && value.size() <= 18 && value.find_first_not_of("0123456789") == std::string::npos,
                    IoError, path_, ": corrupt pax header at byte ", header_at, " (size '", value, "')");
        size = std::stoull(value);
      }
      pos += length;
    }
  }

  std::string path_;
  std::ifstream in_;
  std::uint64_t file_size_ = 0;
  std::uint64_t next_header_ = 0;
  TarEntry last_;               // the entry the last call to next() stopped at
  std::uint64_t data_at_ = 0, data_end_ = 0;
  std::uint64_t pax_size_ = kNoSize;
};

// One webdataset sample with what an image-text dataset needs.
struct ShardSample {
  std::string key;                 // member path up to the first dot of the file name
  std::string shard;               // the tar file
  std::size_t ordinal = 0;         // the sample's position in its shard (incomplete ones counted)
  std::string image_name;          // "<shard>:<image member>", for messages
  std::vector<std::uint8_t> image; // encoded image bytes
  std::string caption;             // unprocessed
  nlohmann::json json;             // the .json member, null without one
};

namespace detail {

// Image extensions in the order a sample's image is chosen (webdataset's "jpg;png;jpeg" and more).
inline int image_extension_rank(const std::string& ext) {
  static const char* const order[] = {"jpg", "jpeg", "png", "webp", "bmp", "gif"};
  for (int i = 0; i < 6; ++i)
    if (ext == order[i]) return i;
  return -1;
}

// webdataset's base_plus_ext: key = up to the first dot of the file name, extension = the rest
// (lower-cased). False for names without a dot in the file name.
inline bool split_member_name(const std::string& name, std::string& key, std::string& ext) {
  const std::size_t slash = name.rfind('/');
  const std::size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
  if (dot == std::string::npos || dot == 0 || (slash != std::string::npos && dot == slash + 1)) return false;
  key = name.substr(0, dot);
  ext = name.substr(dot + 1);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return true;
}

inline std::uint64_t parse_range_end(const std::string& s, bool& ok) {
  ok = !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  return ok ? std::stoull(s) : 0;
}

inline void expand_braces(const std::string& s, std::vector<std::string>& out) {
  const std::size_t open = s.find('{');
  if (open == std::string::npos) {
    out.push_back(s);
    return;
  }
  std::size_t close = open, depth = 0;
  std::vector<std::size_t> commas;
  for (; close < s.size(); ++close) {
    if (s[close] == '{') ++depth;
    if (s[close] == '}' && --depth == 0) break;
    if (s[close] == ',' && depth == 1) commas.push_back(close);
  }
  BLIP2_CHECK(close < s.size(), ValueError, "shard pattern '", s, "': unmatched '{'");
  const std::string head = s.substr(0, open), inner = s.substr(open + 1, close - open - 1), tail = s.substr(close + 1);
  std::vector<std::string> pieces;
  const std::size_t dots = inner.find("..");
  if (!commas.empty()) {
    std::size_t from = open + 1;
    for (std::size_t c : commas) {
      pieces.push_back(s.substr(from, c - from));
      from = c + 1;
    }
    pieces.push_back(s.substr(from, close - from));
  } else if (dots != std::string::npos) {
    const std::string a = inner.substr(0, dots), b = inner.substr(dots + 2);
    bool ok_a = false, ok_b = false;
    const std::uint64_t first = parse_range_end(a, ok_a), last = parse_range_end(b, ok_b);
    BLIP2_CHECK(ok_a && ok_b, ValueError, "shard pattern '", s, "': '{", inner, "}' is not a range of whole numbers");
    const std::uint64_t count = (first <= last ? last - first : first - last) + 1;
    BLIP2_CHECK(count <= 1000000, ValueError, "shard pattern '", s, "': range of ", count, " shards");
    // A leading zero pads every number to the longer end's width (braceexpand's rule).
    const bool padded = (a.size() > 1 && a[0] == '0') || (b.size() > 1 && b[0] == '0');
    const std::size_t width = padded ? std::max(a.size(), b.size()) : 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string n = std::to_string(first <= last ? first + i : first - i);
      if (n.size() < width) n.insert(0, width - n.size(), '0');
      pieces.push_back(std::move(n));
    }
  } else {  // "{x}": a literal, as in the shell
    std::vector<std::string> tails;
    expand_braces(tail, tails);
    for (const auto& t : tails) out.push_back(head + "{" + inner + "}" + t);
    return;
  }
  for (const auto& p : pieces) expand_braces(head + p + tail, out);
}

}  // namespace detail

// webdataset's shard list syntax: "::" separates patterns, braces expand ("shard-{000..009}.tar",
// "{train,extra}-{0..3}.tar"); the result is in order.
inline std::vector<std::string> expand_shard_pattern(const std::string& pattern) {
  std::vector<std::string> out;
  for (std::size_t from = 0;;) {
    const std::size_t sep = pattern.find("::", from);
    const std::string part = pattern.substr(from, sep == std::string::npos ? std::string::npos : sep - from);
    if (!part.empty()) detail::expand_braces(part, out);
    if (sep == std::string::npos) break;
    from = sep + 2;
  }
  BLIP2_CHECK(!out.empty(), ValueError, "shard pattern '", pattern, "' names no shard");
  return out;
}

// The samples of several shards in order. Samples without an image or a caption are passed over
// and counted (LAVIS reads shards with webdataset's warn_and_continue handler).
class TarShardReader {
 public:
  explicit TarShardReader(std::vector<std::string> shards) : shards_(std::move(shards)) {
    BLIP2_CHECK(!shards_.empty(), ValueError, "TarShardReader: no shards");
  }

  // The next complete sample; false after the last shard.
  bool next(ShardSample& sample) {
    for (;;) {
      if (!reader_) {
        if (shard_ == shards_.size()) return false;
        reader_ = std::make_unique<TarReader>(shards_[shard_]);
        ordinal_ = 0;
        have_pending_ = false;
      }
      Group group;
      if (!read_group(group)) {
        reader_.reset();
        ++shard_;
        continue;
      }
      const bool complete = !group.sample.image.empty() && group.has_caption;
      if (complete) {
        sample = std::move(group.sample);
        return true;
      }
      ++incomplete_;
    }
  }

  // Starts again at the first shard (a new epoch).
  void rewind() {
    reader_.reset();
    shard_ = 0;
  }

  // Samples passed over because they had no image or no caption.
  std::size_t incomplete() const { return incomplete_; }

 private:
  struct Group {
    ShardSample sample;
    int image_rank = 99;
    bool has_caption = false, caption_from_txt = false;
    std::vector<std::string> extensions;
  };

  // The members sharing the next key; false at the end of the shard.
  bool read_group(Group& group) {
    std::string key, ext;
    for (;;) {
      if (!have_pending_) {
        try {
          if (!reader_->next(pending_)) {
            if (group.extensions.empty()) return false;
            break;
          }
        } catch (const IoError&) {
          // Damage after a sample's members: hand out that sample first; the next call meets
          // the same damage again and raises.
          if (group.extensions.empty()) throw;
          break;
        }
        have_pending_ = true;
      }
      if (!detail::split_member_name(pending_.name, key, ext)) {  // webdataset skips these
        have_pending_ = false;
        continue;
      }
      if (group.extensions.empty()) {
        group.sample.key = key;
        group.sample.shard = reader_->path();
        group.sample.ordinal = ordinal_++;
      } else if (key != group.sample.key) {
        break;  // pending_ starts the next sample
      }
      BLIP2_CHECK(std::find(group.extensions.begin(), group.extensions.end(), ext) == group.extensions.end(), IoError,
                  reader_->path(), ": member '", pending_.name, "' at byte ", pending_.offset,
                  " repeats the extension '", ext, "' in sample '", key, "'");
      group.extensions.push_back(ext);
      take(group, ext);
      have_pending_ = false;
    }
    return true;
  }

  void take(Group& group, const std::string& ext) {
    const int rank = detail::image_extension_rank(ext);
    if (rank >= 0 && rank < group.image_rank) {
      group.image_rank = rank;
      group.sample.image = reader_->read(pending_);
      group.sample.image_name = reader_->path() + ":" + pending_.name;
    } else if (ext == "txt") {
      const auto bytes = reader_->read(pending_);
      group.sample.caption.assign(bytes.begin(), bytes.end());
      group.has_caption = group.caption_from_txt = true;
    } else if (ext == "json") {
      const auto bytes = reader_->read(pending_);
      try {
        group.sample.json = nlohmann::json::parse(bytes.begin(), bytes.end());
      } catch (const nlohmann::json::parse_error& e) {
        throw IoError(blip2::detail::cat(reader_->path(), ": member '", pending_.name, "' at byte ", pending_.offset,
                                  " is not valid JSON (", e.what(), ")"));
      }
      if (group.caption_from_txt || !group.sample.json.is_object()) return;
      for (const char* field : {"caption", "text"}) {
        const auto it = group.sample.json.find(field);
        if (it != group.sample.json.end() && it->is_string()) {
          group.sample.caption = it->get<std::string>();
          group.has_caption = true;
          return;
        }
      }
    }
  }

  std::vector<std::string> shards_;
  std::size_t shard_ = 0;
  std::unique_ptr<TarReader> reader_;
  TarEntry pending_;           // the member read ahead that starts the next sample
  bool have_pending_ = false;
  std::size_t ordinal_ = 0;
  std::size_t incomplete_ = 0;
};

}  // namespace blip2::data
