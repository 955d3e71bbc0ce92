#pragma once
// What every model command shares: --dtype (the storage type of the frozen weights), --threads,
// a stopwatch for the timings printed on stderr, and JSON output.
#include <blip2/backend/cpu/parallel.hpp>
#include <blip2/core/dtype.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "args.hpp"

namespace blip2::cli {

inline const char* kCommonFlags =
    "  --dtype f32|bf16|f16   storage of the frozen image encoder and language model (default f32;\n"
    "                         bf16 halves the memory, computation stays float32)\n"
    "  --threads N            OpenMP threads (default: all cores)\n";

inline std::set<std::string> common_flag_names() { return {"dtype", "threads"}; }

// `j` as JSON text that is always valid: text that is not UTF-8 (a caption cut inside a character,
// a file name in another encoding) has U+FFFD in place of its bad bytes, as transformers decodes.
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The files of `flag`, each checked to be there before any model loads (a typo costs no load).
inline std::vector<std::string> existing_files(const Args& a, const std::string& flag) {
  const auto files = a.all(flag);
  BLIP2_CHECK(!files.empty(), ValueError, "missing --", flag, " <file>...");
  for (const auto& f : files) BLIP2_CHECK(std::filesystem::is_regular_file(f), IoError, f, ": no such file (--", flag, ")");
  return files;
}

class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Applies --threads, then calls f(W{}) with the weight storage type --dtype names.
template <class F>
int with_weight_type(const Args& a, F&& f) {
  if (a.has("threads")) {
    const long long n = a.get_int("threads");
    BLIP2_CHECK(n >= 1 && n <= 4096, ValueError, "--threads must be in 1..4096, got ", n);
    set_num_threads(int(n));
  }
  const std::string d = a.get("dtype", "f32");
  if (d == "f32") return f(float{});
  if (d == "bf16") return f(bf16{});
  if (d == "f16") return f(f16{});
  throw ValueError("--dtype: expected f32, bf16 or f16, got '" + d + "'");
}

}  // namespace blip2::cli
