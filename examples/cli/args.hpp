#pragma once
// A small command-line parser: `--flag value` (or `--flag=value`) pairs, repeated values
// (`--image a.png b.png`) and bare flags (`--json`). Numbers are checked; a flag the command does not know is an error.
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <blip2/core/error.hpp>

namespace blip2::cli {

inline long long parse_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  BLIP2_CHECK(!v.empty() && *end == '\0' && errno == 0, ValueError, "--", flag, ": expected an integer, got '", v, "'");
  return x;
}

inline double parse_double(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  BLIP2_CHECK(!v.empty() && *end == '\0' && errno == 0, ValueError, "--", flag, ": expected a number, got '", v, "'");
  return x;
}

class Args {
 public:
  // argv[first..] holds the options of one subcommand.
  Args(int argc, char** argv, int first) {
    std::string key;
    for (int i = first; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--", 0) == 0 && a.size() > 2) {
        const std::size_t eq = a.find('=');
        key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
        BLIP2_CHECK(!key.empty(), ValueError, "unexpected argument '", a, "' (no option name before '=')");
        values_[key];  // a flag without values is present but empty
        if (eq != std::string::npos) values_[key].push_back(a.substr(eq + 1));  // --flag=value
      } else {
        BLIP2_CHECK(!key.empty(), ValueError, "unexpected argument '", a, "' (options start with --)");
        values_[key].push_back(a);
      }
    }
  }
  // Throws naming the first flag that is not in `known`.
  void allow(const std::set<std::string>& known) const {
    for (const auto& [k, v] : values_) BLIP2_CHECK(known.count(k), ValueError, "unknown option --", k);
  }
  bool has(const std::string& k) const { return values_.count(k) != 0; }
  std::string get(const std::string& k) const {
    auto it = values_.find(k);
    BLIP2_CHECK(it != values_.end() && !it->second.empty(), ValueError, "missing --", k, " <value>");
    BLIP2_CHECK(it->second.size() == 1, ValueError, "--", k, " takes one value, got ", it->second.size());
    return it->second.front();
  }
  std::string get(const std::string& k, const std::string& fallback) const { return has(k) ? get(k) : fallback; }
  long long get_int(const std::string& k) const { return parse_int(k, get(k)); }
  double get_double(const std::string& k) const { return parse_double(k, get(k)); }
  // A bare flag (`--json`), or `--flag true|false`.
  bool flag(const std::string& k) const {
    auto it = values_.find(k);
    if (it == values_.end()) return false;
    if (it->second.empty()) return true;
    const std::string v = get(k);
    BLIP2_CHECK(v == "true" || v == "false", ValueError, "--", k, ": expected no value, true or false, got '", v, "'");
    return v == "true";
  }
  std::vector<std::string> all(const std::string& k) const {
    auto it = values_.find(k);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace blip2::cli
