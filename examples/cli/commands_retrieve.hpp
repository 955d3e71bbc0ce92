#pragma once
// blip2 retrieve: rank images against texts with a stage-1 (ITM/ITC) checkpoint.
#include <blip2/pipelines/retrieval.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.hpp"

namespace blip2::cli {

// Non-empty lines of a text file.
inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  BLIP2_CHECK(in.good(), IoError, path, ": cannot open the texts file");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (l.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(l.back() == '\r' ? l.substr(0, l.size() - 1) : l);
  BLIP2_CHECK(!lines.empty(), ValueError, path, ": no texts in the file");
  return lines;
}

inline nlohmann::json to_json(const RetrievalMatch& m) {
  return {{"image", m.image}, {"text", m.text}, {"itc", m.itc}, {"itm", m.itm}, {"score", m.score}};
}

// blip2 retrieve --model DIR --images FILE... (--texts TEXT... | --texts-file FILE) [--top-k K] [--json]
inline int retrieve(const Args& a) {
  auto known = common_flag_names();
  known.insert({"model", "images", "texts", "texts-file", "top-k", "json"});
  a.allow(known);
  return with_weight_type(a, [&](auto w) {
    using W = decltype(w);
    const auto images = existing_files(a, "images");
    auto texts = a.all("texts");
    if (a.has("texts-file")) {
      const auto more = read_lines(a.get("texts-file"));
      texts.insert(texts.end(), more.begin(), more.end());
    }
    BLIP2_CHECK(!texts.empty(), ValueError, "missing --texts <text>... or --texts-file <file>");
    const long long k = a.has("top-k") ? a.get_int("top-k") : 5;
    BLIP2_CHECK(k >= 1, ValueError, "--top-k must be >= 1, got ", k);
    a.flag("json");
    const Stopwatch load;
    const ImageTextRetrieval<cpu, W> r(a.get("model"));
    std::fprintf(stderr, "loaded %s (BLIP-2 image-text retrieval, %s weights) in %.2f s\n", a.get("model").c_str(),
                 std::string(dtype_name<W>).c_str(), load.seconds());
    const Stopwatch run;
    const auto ranking = r.rank(images, texts, index_t(k));
    std::fprintf(stderr, "retrieve: %zu images x %zu texts, ITM on the top %lld, %.2f s\n", images.size(), texts.size(), k,
                 run.seconds());
    if (a.flag("json")) {
      nlohmann::json out;
      out["images"] = images;
      out["texts"] = texts;
      out["itc"] = nlohmann::json::array();
      const auto v = ranking.itc.to_vector();
      for (std::size_t i = 0; i < images.size(); ++i)
        out["itc"].push_back(std::vector<float>(v.begin() + i * texts.size(), v.begin() + (i + 1) * texts.size()));
      for (const char* side : {"per_image", "per_text"}) {
        const auto& lists = std::string(side) == "per_image" ? ranking.per_image : ranking.per_text;
        out[side] = nlohmann::json::array();
        for (const auto& l : lists) {
          nlohmann::json row = nlohmann::json::array();
          for (const auto& m : l) row.push_back(to_json(m));
          out[side].push_back(row);
        }
      }
      std::printf("%s\n", json_text(out, 2).c_str());
      return 0;
    }
    for (std::size_t i = 0; i < images.size(); ++i) {
      std::printf("%s\n  rank   score     itm     itc  text\n", images[i].c_str());
      for (std::size_t j = 0; j < ranking.per_image[i].size(); ++j) {
        const auto& m = ranking.per_image[i][j];
        std::printf("  %4zu %7.3f %7.3f %7.3f  %s\n", j + 1, m.score, m.itm, m.itc, texts[std::size_t(m.text)].c_str());
      }
    }
    if (images.size() > 1) {
      for (std::size_t t = 0; t < texts.size(); ++t) {
        std::printf("\"%s\"\n  rank   score     itm     itc  image\n", texts[t].c_str());
        for (std::size_t j = 0; j < ranking.per_text[t].size(); ++j) {
          const auto& m = ranking.per_text[t][j];
          std::printf("  %4zu %7.3f %7.3f %7.3f  %s\n", j + 1, m.score, m.itm, m.itc, images[std::size_t(m.image)].c_str());
        }
      }
    }
    return 0;
  });
}

}  // namespace blip2::cli
