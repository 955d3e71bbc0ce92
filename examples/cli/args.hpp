#pragma once
// A small command-line parser: `--flag value` pairs and repeated values (`--image a.png b.png`).
#include <map>
#include <string>
#include <vector>

#include <blip2/core/error.hpp>

namespace blip2::cli {

class Args {
 public:
  // argv[first..] holds the options of one subcommand.
  Args(int argc, char** argv, int first) {
    std::string key;
    for (int i = first; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--", 0) == 0 && a.size() > 2) {
        key = a.substr(2);
        values_[key];  // a flag without values is present but empty
      } else {
        BLIP2_CHECK(!key.empty(), ValueError, "unexpected argument '", a, "' (options start with --)");
        values_[key].push_back(a);
      }
    }
  }
  bool has(const std::string& k) const { return values_.count(k) != 0; }
  std::string get(const std::string& k) const {
    auto it = values_.find(k);
    BLIP2_CHECK(it != values_.end() && !it->second.empty(), ValueError, "missing --", k, " <value>");
    return it->second.front();
  }
  std::vector<std::string> all(const std::string& k) const {
    auto it = values_.find(k);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace blip2::cli
