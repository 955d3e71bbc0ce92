#pragma once
// Whole files in and out (config.json, generation_config.json, index files, tokenizer files,
// reports) with errors that name the file.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

#include "../core/error.hpp"

namespace blip2::io {

// Reads a whole file; IoError naming it (as `what`) when it cannot be read.
inline std::string read_file(const std::string& path, std::string_view what = "file") {
  std::ifstream in(path, std::ios::binary);
  BLIP2_CHECK(in.good(), IoError, path, ": cannot open ", what);
  std::ostringstream os;
  os << in.rdbuf();
  BLIP2_CHECK(!in.bad(), IoError, path, ": error reading ", what);
  return os.str();
}

// Writes `bytes` as the whole file `path`; IoError naming it when that fails.
inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  BLIP2_CHECK(out.good(), IoError, path, ": cannot open for writing");
  out.write(bytes.data(), std::streamsize(bytes.size()));
  BLIP2_CHECK(out.good(), IoError, path, ": write failed");
}

// JSON indented by two spaces, as transformers' save_pretrained writes it.
inline void write_json_file(const std::string& path, const nlohmann::json& j) { write_file(path, j.dump(2) + "\n"); }

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  BLIP2_CHECK(in, IoError, path, ": cannot open");
  try {
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace blip2::io
