// Line plots as plain, hand-written SVG: axes with ticks and labels, linear or log scales, one
// polyline with point markers per series, a legend. No dependencies; the text is deterministic.
#pragma once
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace pgolf {

struct PlotSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), joined in this order
  int color = -1;        // index into the palette; -1: the series' position
  bool dashed = false;
  std::vector<std::string> point_labels = {};  // written beside each point (empty: none)
};

// A reference line across the plot at one value of an axis (a budget, a baseline), labelled.
struct PlotMark {
  double value;
  std::string label;
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = false;
  bool log_y = false;
  int width = 960;
  int height = 560;
  std::vector<PlotMark> x_marks = {}, y_marks = {};  // the axes reach them
};

// Points that a log axis cannot show (<= 0) and non-finite points are left out.
std::string svg_plot(const PlotOptions& options, std::span<const PlotSeries> series);

}  // namespace pgolf
