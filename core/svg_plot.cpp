#include "core/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

namespace pgolf {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"};
constexpr int kPaletteSize = sizeof kPalette / sizeof kPalette[0];
constexpr double kLeft = 90, kTop = 44, kBottom = 64;  // margins; the legend is on the right
constexpr double kMinPlotWidth = 480, kLegendCharWidth = 6.8;  // a 12px sans-serif character, generously

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// A tick value with an SI suffix and as many decimals as the tick step needs (step 0: a log
// axis's 1-2-5 values): 12000000 -> "12M", 17180200 by 100 -> "17.1802M", 0.001 -> "0.001".
std::string tick_label(double v, double step) {
  struct Unit { double from, scale; const char* suffix; };
  constexpr Unit kUnits[] = {{1e9, 1e9, "G"}, {1e6, 1e6, "M"}, {1e4, 1e3, "k"}, {0, 1, ""}};
  const Unit& u = *std::find_if(std::begin(kUnits), std::end(kUnits), [&](const Unit& u) { return std::fabs(v) >= u.from; });
  char buf[48];
  if (step <= 0) {
    std::snprintf(buf, sizeof buf, "%g%s", v / u.scale, u.suffix);
  } else {
    int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step / u.scale) - 1e-9)), 0, 9);
    std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v / u.scale, u.suffix);
  }
  return buf;
}

// One axis: the data range (log10 of it on a log axis) mapped onto [pixel_lo, pixel_hi].
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // in axis units (log10 for a log axis)
  double pixel_lo = 0, pixel_hi = 1;

  double linear_step() const {
    double raw = (hi - lo) / 6, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    return magnitude * (raw / magnitude < 1.5 ? 1 : raw / magnitude < 3.5 ? 2 : raw / magnitude < 7.5 ? 5 : 10);
  }
  std::string label(double v) const { return tick_label(v, log ? 0 : linear_step()); }

  bool shows(double v) const { return std::isfinite(v) && (!log || v > 0); }
  double unit(double v) const { return log ? std::log10(v) : v; }
  double pixel(double v) const { return pixel_lo + (unit(v) - lo) / (hi - lo) * (pixel_hi - pixel_lo); }

  void fit(double min, double max) {
    lo = unit(min), hi = unit(max);
    if (lo == hi) {  // one value: a range around it
      double half = log ? 0.5 : std::max(1.0, std::fabs(lo) * 0.1);
      lo -= half, hi += half;
    }
    double pad = (hi - lo) * 0.05;
    lo -= pad, hi += pad;
  }

  // Tick values: 1-2-5 steps on a linear axis; decades on a log axis, with 2 and 5 when the
  // range spans less than two decades.
  std::vector<double> ticks() const {
    std::vector<double> out;
    if (log) {
      bool fine = hi - lo < 2;
      for (double e = std::floor(lo); e <= std::ceil(hi); ++e)
        for (double m : {1.0, 2.0, 5.0}) {
          if (m != 1.0 && !fine) continue;
          double u = e + std::log10(m);
          if (u >= lo && u <= hi) out.push_back(std::pow(10.0, u));
        }
      return out;
    }
    double step = linear_step();
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
      out.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
};

}  // namespace

std::string svg_plot(const PlotOptions& options, std::span<const PlotSeries> series) {
  // The legend takes what its longest label needs; the picture widens rather than squeeze the plot.
  size_t longest = 0;
  for (const auto& s : series) longest = std::max(longest, s.label.size());
  const double legend = 60 + kLegendCharWidth * static_cast<double>(longest);
  const double width = std::max<double>(options.width, kLeft + kMinPlotWidth + legend), height = options.height;
  Axis x{options.log_x}, y{options.log_y};
  x.pixel_lo = kLeft, x.pixel_hi = width - legend;
  y.pixel_lo = height - kBottom, y.pixel_hi = kTop;  // y grows upwards

  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min, y_min = x_min, y_max = -x_min;
  for (const auto& s : series)
    for (auto [px, py] : s.points)
      if (x.shows(px) && y.shows(py)) {
        x_min = std::min(x_min, px), x_max = std::max(x_max, px);
        y_min = std::min(y_min, py), y_max = std::max(y_max, py);
      }
  if (x_min > x_max) x_min = y_min = 1, x_max = y_max = 10;  // nothing to show: an empty frame
  for (const PlotMark& m : options.x_marks)
    if (x.shows(m.value)) x_min = std::min(x_min, m.value), x_max = std::max(x_max, m.value);
  for (const PlotMark& m : options.y_marks)
    if (y.shows(m.value)) y_min = std::min(y_min, m.value), y_max = std::max(y_max, m.value);
  x.fit(x_min, x_max);
  y.fit(y_min, y_max);

  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(width) + "\" height=\"" + number(height) +
         "\" viewBox=\"0 0 " + number(width) + " " + number(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect x=\"0\" y=\"0\" width=\"" + number(width) + "\" height=\"" + number(height) + "\" fill=\"white\"/>\n";
  svg += "<text x=\"" + number(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" + escape(options.title) + "</text>\n";

  // Grid lines and tick labels, then the frame.
  for (double t : x.ticks()) {
    std::string px = number(x.pixel(t));
    svg += "<line x1=\"" + px + "\" y1=\"" + number(y.pixel_hi) + "\" x2=\"" + px + "\" y2=\"" + number(y.pixel_lo) +
           "\" stroke=\"#e0e0e0\"/>\n";
    svg += "<text x=\"" + px + "\" y=\"" + number(y.pixel_lo + 18) + "\" text-anchor=\"middle\">" + x.label(t) + "</text>\n";
  }
  for (double t : y.ticks()) {
    std::string py = number(y.pixel(t));
    svg += "<line x1=\"" + number(x.pixel_lo) + "\" y1=\"" + py + "\" x2=\"" + number(x.pixel_hi) + "\" y2=\"" + py +
           "\" stroke=\"#e0e0e0\"/>\n";
    svg += "<text x=\"" + number(x.pixel_lo - 6) + "\" y=\"" + number(y.pixel(t) + 4) + "\" text-anchor=\"end\">" +
           y.label(t) + "</text>\n";
  }
  svg += "<rect x=\"" + number(x.pixel_lo) + "\" y=\"" + number(y.pixel_hi) + "\" width=\"" + number(x.pixel_hi - x.pixel_lo) +
         "\" height=\"" + number(y.pixel_lo - y.pixel_hi) + "\" fill=\"none\" stroke=\"black\"/>\n";
  std::string x_title = options.x_label + (options.log_x ? " (log)" : "");
  std::string y_title = options.y_label + (options.log_y ? " (log)" : "");
  svg += "<text x=\"" + number((x.pixel_lo + x.pixel_hi) / 2) + "\" y=\"" + number(height - 18) + "\" text-anchor=\"middle\">" +
         escape(x_title) + "</text>\n";
  svg += "<text x=\"20\" y=\"" + number((y.pixel_lo + y.pixel_hi) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 20 " +
         number((y.pixel_lo + y.pixel_hi) / 2) + ")\">" + escape(y_title) + "</text>\n";

  // Reference lines, dashed grey, each labelled at its end.
  for (const PlotMark& m : options.x_marks) {
    if (!x.shows(m.value)) continue;
    const std::string px = number(x.pixel(m.value));
    svg += "<line x1=\"" + px + "\" y1=\"" + number(y.pixel_hi) + "\" x2=\"" + px + "\" y2=\"" + number(y.pixel_lo) +
           "\" stroke=\"#555555\" stroke-dasharray=\"4 3\"/>\n";
    svg += "<text x=\"" + number(x.pixel(m.value) - 4) + "\" y=\"" + number(y.pixel_hi + 14) + "\" text-anchor=\"end\">" +
           escape(m.label) + "</text>\n";
  }
  for (const PlotMark& m : options.y_marks) {
    if (!y.shows(m.value)) continue;
    const std::string py = number(y.pixel(m.value));
    svg += "<line x1=\"" + number(x.pixel_lo) + "\" y1=\"" + py + "\" x2=\"" + number(x.pixel_hi) + "\" y2=\"" + py +
           "\" stroke=\"#555555\" stroke-dasharray=\"4 3\"/>\n";
    svg += "<text x=\"" + number(x.pixel_hi - 4) + "\" y=\"" + number(y.pixel(m.value) - 4) + "\" text-anchor=\"end\">" +
           escape(m.label) + "</text>\n";
  }

  // Series, each with its legend entry.
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const char* color = kPalette[(s.color >= 0 ? s.color : static_cast<int>(i)) % kPaletteSize];
    std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    std::string points, markers;
    for (size_t k = 0; k < s.points.size(); ++k) {
      const auto [px, py] = s.points[k];
      if (!x.shows(px) || !y.shows(py)) continue;
      std::string cx = number(x.pixel(px)), cy = number(y.pixel(py));
      points += (points.empty() ? "" : " ") + cx + "," + cy;
      markers += "<circle cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"3\" fill=\"" + color + "\"/>\n";
      if (k < s.point_labels.size())
        markers += "<text x=\"" + number(x.pixel(px) + 5) + "\" y=\"" + number(y.pixel(py) - 5) +
                   "\" font-size=\"9\" fill=\"" + color + "\">" + escape(s.point_labels[k]) + "</text>\n";
    }
    svg += "<g>\n<title>" + escape(s.label) + "</title>\n";
    svg += "<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\"" + dash + "/>\n";
    svg += markers + "</g>\n";
    double ly = kTop + 10 + 18.0 * static_cast<double>(i), lx = width - legend + 16;
    svg += "<line x1=\"" + number(lx) + "\" y1=\"" + number(ly) + "\" x2=\"" + number(lx + 24) + "\" y2=\"" + number(ly) +
           "\" stroke=\"" + color + "\" stroke-width=\"2\"" + dash + "/>\n";
    svg += "<text x=\"" + number(lx + 30) + "\" y=\"" + number(ly + 4) + "\">" + escape(s.label) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace pgolf
