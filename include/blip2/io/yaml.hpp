#pragma once
// The YAML subset that LAVIS's project and model configs use, read into JSON: nested maps by
// indentation, block lists ("- item", items may be maps), flow lists ("[a, 'b', 1]"), comments,
// quoted and plain scalars. Scalars resolve as OmegaConf does: null / ~ / empty -> null,
// true / false (any case) -> booleans, integers and floats (1e-4 included) -> numbers, the rest
// strings. Anchors, multi-line strings and flow maps are not supported (an IoError names the line).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "json.hpp"

namespace blip2::io {

namespace detail {

struct YamlLine {
  int indent = 0;
  std::string text;  // without indentation and comment
  int number = 0;    // 1-based line number in the file
};

// The first position in [from, to) outside quotes where stop(i) holds, or npos.
template <class Stop>
std::size_t find_unquoted(const std::string& s, std::size_t from, std::size_t to, Stop stop) {
  char quote = 0;
  for (std::size_t i = from; i < to; ++i) {
    if (quote) {
      if (s[i] == quote) quote = 0;
    } else if (s[i] == '"' || s[i] == '\'') {
      quote = s[i];
    } else if (stop(i)) {
      return i;
    }
  }
  return std::string::npos;
}

inline std::string strip_yaml_comment(const std::string& s) {
  const auto at = find_unquoted(s, 0, s.size(), [&](std::size_t i) {
    return s[i] == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t');
  });
  return at == std::string::npos ? s : s.substr(0, at);
}

inline std::string trim_yaml(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

class YamlParser {
 public:
  YamlParser(std::vector<YamlLine> lines, std::string where) : lines_(std::move(lines)), where_(std::move(where)) {}

  nlohmann::json document() {
    if (lines_.empty()) return nlohmann::json::object();
    nlohmann::json out = block(lines_[0].indent);
    if (pos_ < lines_.size()) fail(lines_[pos_], "unexpected indentation");
    return out;
  }

 private:
  [[noreturn]] void fail(const YamlLine& l, const std::string& what) const {
    throw IoError(where_ + ":" + std::to_string(l.number) + ": " + what + " in YAML line '" + l.text + "'");
  }

  // The map or list whose lines start at exactly `indent`.
  nlohmann::json block(int indent) {
    const bool list = lines_[pos_].text.rfind("- ", 0) == 0 || lines_[pos_].text == "-";
    nlohmann::json out = list ? nlohmann::json::array() : nlohmann::json::object();
    while (pos_ < lines_.size() && lines_[pos_].indent == indent) {
      YamlLine line = lines_[pos_];
      const bool item = line.text.rfind("- ", 0) == 0 || line.text == "-";
      if (item != list) fail(line, list ? "a map key among list items" : "a list item among map keys");
      if (list) {
        ++pos_;
        const std::string rest = trim_yaml(line.text.substr(1));
        if (rest.empty()) {
          out.push_back(nested(indent, line));
        } else if (key_of(rest) != std::string::npos) {
          // "- key: value" opens a map whose further keys sit two columns deeper.
          lines_.insert(lines_.begin() + long(pos_), YamlLine{indent + 2, rest, line.number});
          out.push_back(block(indent + 2));
        } else {
          out.push_back(scalar(rest, line));
        }
        continue;
      }
      const std::size_t colon = key_of(line.text);
      if (colon == std::string::npos) fail(line, "expected 'key: value'");
      const std::string key = unquote(trim_yaml(line.text.substr(0, colon)));
      const std::string value = trim_yaml(line.text.substr(colon + 1));
      if (out.contains(key)) fail(line, "duplicate key '" + key + "'");
      ++pos_;
      out[key] = value.empty() ? nested(indent, line) : scalar(value, line);
    }
    return out;
  }

  // The block below a "key:" or "-" line, or null when none follows.
  nlohmann::json nested(int indent, const YamlLine& line) {
    if (pos_ >= lines_.size() || lines_[pos_].indent <= indent) {
      // A list directly under a key may sit at the key's own indentation.
      if (pos_ < lines_.size() && lines_[pos_].indent == indent && lines_[pos_].text.rfind("- ", 0) == 0 &&
          key_of(line.text) != std::string::npos && line.text.rfind("- ", 0) != 0)
        return block(indent);
      return nullptr;
    }
    return block(lines_[pos_].indent);
  }

  // Position of the colon that ends a map key, outside quotes and followed by space or the end.
  static std::size_t key_of(const std::string& s) {
    const auto at = find_unquoted(s, 0, s.size(), [&](std::size_t i) {
      return s[i] == '[' || (s[i] == ':' && (i + 1 == s.size() || s[i + 1] == ' '));
    });
    return at != std::string::npos && s[at] == ':' ? at : std::string::npos;
  }

  static std::string unquote(const std::string& s) {
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) return s.substr(1, s.size() - 2);
    return s;
  }

  nlohmann::json scalar(const std::string& s, const YamlLine& line) const {
    if (s.front() == '{' || s.front() == '&' || s.front() == '*' || s.front() == '|' || s.front() == '>')
      fail(line, "unsupported YAML construct");
    if (s.front() == '[') {
      if (s.back() != ']') fail(line, "unterminated flow list");
      nlohmann::json list = nlohmann::json::array();
      for (std::size_t from = 1, end = s.size() - 1; from < end;) {
        auto at = find_unquoted(s, from, end, [&](std::size_t i) { return s[i] == ',' || s[i] == '[' || s[i] == ']'; });
        if (at != std::string::npos && s[at] != ',') fail(line, "nested flow lists");
        if (at == std::string::npos) at = end;
        const std::string item = trim_yaml(s.substr(from, at - from));
        if (item.empty() && at != end) fail(line, "an empty item in a flow list");
        if (!item.empty()) list.push_back(scalar(item, line));
        from = at + 1;
      }
      return list;
    }
    if (s.front() == '"' || s.front() == '\'') {
      if (s.size() < 2 || s.back() != s.front()) fail(line, "unterminated quoted string");
      return s.substr(1, s.size() - 2);
    }
    std::string lower = s;
    for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "null" || lower == "~" || lower == "none") return nullptr;
    if (lower == "true") return true;
    if (lower == "false") return false;
    try {
      std::size_t used = 0;
      const long long i = std::stoll(s, &used);
      if (used == s.size()) return i;
      const double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (const std::exception&) {
    }
    return s;
  }

  std::vector<YamlLine> lines_;
  std::string where_;
  std::size_t pos_ = 0;
};

}  // namespace detail

// Parses YAML text (`where` names it in errors) into JSON.
inline nlohmann::json parse_yaml(const std::string& text, const std::string& where = "YAML") {
  std::vector<detail::YamlLine> lines;
  std::istringstream in(text);
  std::string raw;
  for (int number = 1; std::getline(in, raw); ++number) {
    BLIP2_CHECK(raw.substr(0, raw.find_first_not_of(" \t")).find('\t') == std::string::npos, IoError, where, ":", number,
                ": tab in the indentation (YAML indents with spaces)");
    const std::string body = detail::strip_yaml_comment(raw);
    const std::string text_only = detail::trim_yaml(body);
    if (text_only.empty() || text_only == "---") continue;
    lines.push_back({int(body.find_first_not_of(' ')), text_only, number});
  }
  return detail::YamlParser(std::move(lines), where).document();
}

inline nlohmann::json read_yaml_file(const std::string& path) { return parse_yaml(read_file(path, "YAML file"), path); }

// A configuration file: YAML by its extension (.yaml, .yml), else JSON.
inline nlohmann::json read_config_file(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  return ext == ".yaml" || ext == ".yml" ? read_yaml_file(path) : read_json_file(path);
}

}  // namespace blip2::io
