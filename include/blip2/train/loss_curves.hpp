#pragma once
// Loss curves as an SVG picture (one line per loss over the optimizer steps, labelled axes, a
// legend), written from a trainer's history: what `blip2 train` leaves next to its checkpoints and
// what the miniature bootstrapping report shows for every stage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "trainer.hpp"

namespace blip2 {

// `title` on top; each named series of (step, value) points gets a line and a legend entry.
inline std::string loss_curves_svg(const std::string& title,
                                   const std::map<std::string, std::vector<std::pair<double, double>>>& series,
                                   int width = 560, int height = 300) {
  const double left = 56, right = 150, top = 30, bottom = 40;
  double x0 = 1e300, x1 = -1e300, y1 = 0;
  for (const auto& [name, pts] : series)
    for (const auto& [x, y] : pts) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  if (x0 > x1) x0 = 0, x1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 <= 0) y1 = 1;
  const double pw = width - left - right, ph = height - top - bottom;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + ph - std::clamp(y / y1, 0.0, 1.0) * ph; };
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return std::string(b);
  };
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(left) + "\" y=\"18\" font-size=\"13\">" + title + "</text>\n";
  s += "<path d=\"M" + num(left) + " " + num(top) + " V" + num(top + ph) + " H" + num(left + pw) +
       "\" stroke=\"black\" fill=\"none\"/>\n";
  for (int k = 0; k <= 4; ++k) {  // y ticks at fifths of the range, x ticks at quarters
    const double yv = y1 * k / 4, xv = x0 + (x1 - x0) * k / 4;
    s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(py(yv) + 4) + "\" text-anchor=\"end\">" + num(yv) + "</text>\n";
    s += "<path d=\"M" + num(left) + " " + num(py(yv)) + " H" + num(left + pw) + "\" stroke=\"#eee\"/>\n";
    s += "<text x=\"" + num(px(xv)) + "\" y=\"" + num(top + ph + 16) + "\" text-anchor=\"middle\">" + num(xv) + "</text>\n";
  }
  s += "<text x=\"" + num(left + pw / 2) + "\" y=\"" + num(height - 6.0) + "\" text-anchor=\"middle\">step</text>\n";
  int k = 0;
  for (const auto& [name, pts] : series) {
    const char* colour = colours[k % 6];
    std::string d;
    for (const auto& [x, y] : pts)
      if (std::isfinite(y)) d += (d.empty() ? "M" : " L") + num(px(x)) + " " + num(py(y));
    s += "<path d=\"" + d + "\" stroke=\"" + colour + "\" stroke-width=\"1.5\" fill=\"none\"/>\n";
    const double ly = top + 14.0 * k + 6;
    s += "<path d=\"M" + num(left + pw + 12) + " " + num(ly) + " h18\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
    s += "<text x=\"" + num(left + pw + 34) + "\" y=\"" + num(ly + 4) + "\">" + name + "</text>\n";
    ++k;
  }
  return s + "</svg>\n";
}

// The curves of every loss a trainer logged.
inline std::string loss_curves_svg(const std::string& title, const std::vector<StepRecord>& history) {
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  for (const auto& r : history)
    for (const auto& [name, value] : r.losses) series[name].emplace_back(double(r.global_step), value);
  return loss_curves_svg(title, series);
}

}  // namespace blip2
