#pragma once
// The report a person would rather look at than read: one self-contained HTML page with the
// metrics, the loss curves of the four stages (SVG) and held-out images (PNG, enlarged) with their
// generated captions, a question and its answer, and the caption retrieval found for them.
#include <blip2/image/encode_png.hpp>
#include <blip2/train/loss_curves.hpp>

#include "evaluate.hpp"

namespace bootstrap {

inline std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (unsigned char)bytes[i] << 16 | (unsigned char)bytes[i + 1] << 8 | (unsigned char)bytes[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += table[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    const unsigned v = (unsigned char)bytes[i] << 16 | (i + 1 < bytes.size() ? (unsigned char)bytes[i + 1] << 8 : 0);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Nearest-neighbour enlargement, so that 32-pixel images are visible.
inline image::Image enlarge(const image::Image& img, int factor) {
  image::Image out(img.width * factor, img.height * factor);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < 3; ++c)
        out.data[std::size_t((y * out.width + x) * 3 + c)] = img.data[std::size_t(((y / factor) * img.width + x / factor) * 3 + c)];
  return out;
}

inline std::string mark(bool right) { return right ? "<b style=\"color:#2a2\">&#10003;</b>" : "<b style=\"color:#c22\">&#10007;</b>"; }

inline void write_report(const std::string& path, const World& w, const HeldOutResult& r,
                         const std::vector<std::pair<std::string, std::vector<StepRecord>>>& stages, const std::string& summary) {
  std::string html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>BLIP-2 in miniature</title>"
                     "<style>body{font-family:sans-serif;margin:24px;max-width:1200px}td{vertical-align:top;padding:6px;"
                     "border-bottom:1px solid #ddd;font-size:13px}img{image-rendering:pixelated}</style></head><body>";
  html += "<h1>BLIP-2 bootstrapped in miniature</h1><p>Frozen image encoder and language model, then the Q-Former's two "
          "stages; every image below is held out (never seen in any stage).</p><pre>" + summary + "</pre><h2>Loss curves</h2>";
  for (const auto& [title, history] : stages) html += loss_curves_svg(title, history);
  html += "<h2>Held-out images</h2><table><tr><td>image</td><td>generated caption</td><td>question and answer</td>"
          "<td>retrieved caption (ITC + ITM)</td></tr>";
  for (std::size_t i = 0; i < std::min<std::size_t>(r.captions.size(), 40); ++i) {
    const auto img = enlarge(w.shapes.render(w.heldout[i]), 3);
    const auto& retrieved = r.texts[std::size_t(r.top_text[i])];
    html += "<tr><td><img src=\"data:image/png;base64," + base64(image::encode_png(img)) + "\"></td><td>" + mark(r.caption_right[i]) +
            " " + r.captions[i] + "</td><td>" + r.questions[i].question + "<br>" + mark(r.answer_right[i]) + " " + r.answers[i] +
            " <span style=\"color:#888\">(expected " + r.questions[i].answer + ")</span></td><td>" +
            mark(w.shapes.caption_matches(retrieved, w.heldout[i])) + " " + retrieved + "</td></tr>";
  }
  html += "</table></body></html>\n";
  io::write_file(path, html);
}

}  // namespace bootstrap
