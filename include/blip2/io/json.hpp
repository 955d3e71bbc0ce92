#pragma once
// Reading JSON files (config.json, generation_config.json, index files) with errors that name the file.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "../core/error.hpp"

namespace blip2::io {

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
