#pragma once
// Image-caption annotation files as LAVIS's caption datasets read them
// (lavis/datasets/datasets/caption_datasets.py): entries {"image": path relative to an image root,
// "caption": a string or a list of strings, any other fields ("image_id", ...)}. Two layouts:
//   - a JSON array of entries (LAVIS's own files), recognised by its first character '[';
//   - JSON lines, one entry per line, recognised by a first character '{'.
// Both are streamed: an array is cut into its top-level elements by a small scanner that tracks
// strings, escapes and nesting, and only one element is parsed (by nlohmann::json) at a time, so
// memory does not grow with the file. An entry whose caption is a list gives one record per caption.
//
// Errors are IoErrors "<file>:<line>: <what>" with the 1-based line where the problem is, raised
// when the reader reaches the entry (the first one already in the constructor). A file without
// entries is an error too.
#include <algorithm>
#include <cstddef>
#include <deque>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace blip2::data {

// One image-caption pair.
struct CaptionRecord {
  std::string image;     // the image's path: the entry's "image" joined to the image root
  std::string caption;   // as written in the file (cleaning is CaptionProcessor's job)
  nlohmann::json extra;  // the entry's other fields, e.g. {"image_id": 42}; an object
};

// `image` under `root`, unless `image` is absolute or there is no root (os.path.join's rule).
inline std::string join_image_path(const std::string& root, const std::string& image) {
  if (root.empty() || (!image.empty() && image.front() == '/')) return image;
  return root.back() == '/' ? root + image : root + "/" + image;
}

namespace detail {

// Largest top-level element the scanner buffers: beyond it the file is taken as broken (an
// unclosed bracket would otherwise pull the rest of the file into one element).
inline constexpr std::size_t kMaxAnnotationEntryBytes = std::size_t(64) << 20;

[[noreturn]] inline void annotation_error(const std::string& path, std::size_t line, const std::string& what) {
  throw IoError(path + ":" + std::to_string(line) + ": " + what);
}

// nlohmann's message without its "[json.exception...] parse error at line 1, column 9: " prefix,
// whose position is relative to the element, not the file.
inline std::string json_error_reason(const nlohmann::json::parse_error& e) {
  const std::string what = e.what();
  const std::size_t column = what.find("column ");
  const std::size_t colon = column == std::string::npos ? column : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// Parses one entry's text that starts at `line`; a syntax error names the line it is on.
inline nlohmann::json parse_entry(const std::string& text, const std::string& path, std::size_t line) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t upto = std::min(text.size(), e.byte > 0 ? e.byte - 1 : 0);
    std::size_t at = line;
    for (std::size_t i = 0; i < upto; ++i) at += text[i] == '\n';
    annotation_error(path, at, "not valid JSON (" + json_error_reason(e) + ")");
  }
}

// Appends the records of one parsed entry.
inline void append_records(const nlohmann::json& entry, const std::string& path, std::size_t line,
                           const std::string& image_root, std::deque<CaptionRecord>& out) {
  if (!entry.is_object())
    annotation_error(path, line, std::string("entry is not a JSON object (it is ") + entry.type_name() + ")");
  const auto image = entry.find("image");
  if (image == entry.end()) annotation_error(path, line, "no 'image' field");
  if (!image->is_string() || image->get_ref<const std::string&>().empty())
    annotation_error(path, line, "'image' is not a non-empty string");
  const auto caption = entry.find("caption");
  if (caption == entry.end()) annotation_error(path, line, "no 'caption' field");
  bool strings = caption->is_string() || (caption->is_array() && !caption->empty());
  if (caption->is_array())
    for (const auto& c : *caption) strings = strings && c.is_string();
  if (!strings) annotation_error(path, line, "caption is not a string or a list of strings");

  nlohmann::json extra = entry;
  extra.erase("image");
  extra.erase("caption");
  const std::string image_path = join_image_path(image_root, image->get<std::string>());
  if (caption->is_string()) {
    out.push_back({image_path, caption->get<std::string>(), std::move(extra)});
  } else {
    for (const auto& c : *caption) out.push_back({image_path, c.get<std::string>(), extra});
  }
}

// Cuts a JSON array into the text of its top-level elements, reading one character at a time.
class JsonArrayScanner {
 public:
  JsonArrayScanner(std::streambuf* in, std::string path) : in_(in), path_(std::move(path)) {}

  // Consumes the opening '[' and the whitespace before it.
  void open() {
    const int c = skip_space();
    if (c != '[') annotation_error(path_, line_, "not a JSON array of entries (it starts with " + describe(c) + ")");
  }

  // The next element's text and the line it starts on; false after the closing ']'.
  bool next(std::string& text, std::size_t& start_line) {
    if (done_) return false;
    int c = skip_space();
    if (c == ']' && count_ == 0) return finish();
    if (c == ',' || c == ']' || c == EOF)
      annotation_error(path_, line_, "expected an entry, found " + describe(c));
    text.clear();
    start_line = line_;
    int depth = 0;
    bool in_string = false, escaped = false;
    for (;; c = bump()) {
      if (c == EOF)
        annotation_error(path_, line_, "the file ends inside the entry that starts at line " +
                                           std::to_string(start_line) + " (unclosed string or bracket)");
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0) {
          if (c == ']') break;
          annotation_error(path_, line_, "unbalanced '}'");
        }
        --depth;
      } else if (c == ',' && depth == 0) {
        break;
      }
      text += char(c);
      if (text.size() > kMaxAnnotationEntryBytes)
        annotation_error(path_, start_line, "entry longer than " + std::to_string(kMaxAnnotationEntryBytes) +
                                                " bytes (an unclosed bracket?)");
    }
    ++count_;
    if (c == ']') finish();
    return true;
  }

  std::size_t line() const { return line_; }

 private:
  int bump() {
    const int c = in_->sbumpc();
    if (c == '\n') ++line_;
    return c;
  }
  int skip_space() {
    int c = bump();
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = bump();
    return c;
  }
  // After the closing ']' only whitespace may follow.
  bool finish() {
    done_ = true;
    const int c = skip_space();
    if (c != EOF) annotation_error(path_, line_, "text after the closing ']' of the array (" + describe(c) + ")");
    return false;
  }
  static std::string describe(int c) {
    if (c == EOF) return "the end of the file";
    if (c >= 0x20 && c < 0x7F) return std::string("'") + char(c) + "'";
    return "byte " + std::to_string(c);
  }

  std::streambuf* in_;
  std::string path_;
  std::size_t line_ = 1;
  std::size_t count_ = 0;
  bool done_ = false;
};

}  // namespace detail

// Streams the records of a LAVIS annotation file (JSON array or JSON lines).
class AnnotationReader {
 public:
  AnnotationReader(std::string path, std::string image_root)
      : path_(std::move(path)), image_root_(std::move(image_root)) {
    rewind();
    BLIP2_CHECK(!pending_.empty(), IoError, path_, ": no annotations (the dataset is empty)");
  }

  // The next record; false after the last one.
  bool next(CaptionRecord& record) {
    while (pending_.empty())
      if (!read_entry()) return false;
    record = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }

  // Starts again from the first record (the file is reopened: a new epoch).
  void rewind() {
    in_ = std::ifstream(path_, std::ios::binary);
    BLIP2_CHECK(in_.is_open(), IoError, path_, ": cannot open the annotation file");
    pending_.clear();
    line_ = 0;
    scanner_.reset();
    // The first character after a UTF-8 byte order mark and whitespace tells the layout.
    std::streambuf* buf = in_.rdbuf();
    const bool bom = buf->sgetc() == 0xEF && buf->snextc() == 0xBB && buf->snextc() == 0xBF;
    in_.seekg(bom ? 3 : 0);
    std::size_t line = 1;
    int first = buf->sbumpc();
    while (first == ' ' || first == '\t' || first == '\n' || first == '\r') {
      line += first == '\n';
      first = buf->sbumpc();
    }
    in_.seekg(bom ? 3 : 0);
    if (first == '[') {
      scanner_ = std::make_unique<detail::JsonArrayScanner>(buf, path_);
      scanner_->open();
    } else if (first != '{' && first != EOF) {
      detail::annotation_error(path_, line, "neither a JSON array of entries nor JSON lines (the first character "
                                            "is not '[' or '{')");
    }
    read_entry();
  }

  const std::string& path() const { return path_; }

 private:
  // Reads one entry into pending_; false at the end of the file.
  bool read_entry() {
    std::string text;
    std::size_t line = 0;
    if (scanner_) {
      if (!scanner_->next(text, line)) return false;
    } else {
      do {  // JSON lines: blank lines are skipped
        if (!std::getline(in_, text)) return false;
        line = ++line_;
      } while (text.find_first_not_of(" \t\r") == std::string::npos);
    }
    detail::append_records(detail::parse_entry(text, path_, line), path_, line, image_root_, pending_);
    return true;
  }

  std::string path_, image_root_;
  std::ifstream in_;
  std::unique_ptr<detail::JsonArrayScanner> scanner_;  // null for JSON lines
  std::size_t line_ = 0;                               // JSON lines: lines read so far
  std::deque<CaptionRecord> pending_;                  // records of the entry read last
};

// Every record of an annotation file, in file order (for datasets kept in memory).
inline std::vector<CaptionRecord> read_annotations(const std::string& path, const std::string& image_root) {
  AnnotationReader reader(path, image_root);
  std::vector<CaptionRecord> records;
  for (CaptionRecord r; reader.next(r);) records.push_back(std::move(r));
  return records;
}

}  // namespace blip2::data
