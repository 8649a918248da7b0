// The SVG writer: well-formed XML, every series drawn and named, text escaped, log axes.
#include "core/svg_plot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <string>
#include <vector>

namespace pgolf {
namespace {

// Checks that tags nest and close (XML-ish: no DTDs or CDATA) and that no raw '&' or '<'
// appears in text. Returns "" or what is wrong.
std::string xml_problem(const std::string& text) {
  std::vector<std::string> open;
  size_t i = text.find("?>");  // skip the declaration
  if (!text.starts_with("<?xml") || i == std::string::npos) return "no XML declaration";
  for (i += 2; i < text.size();) {
    if (text[i] == '&') {
      size_t semi = text.find(';', i);
      std::string entity = semi == std::string::npos ? "" : text.substr(i, semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;") return "raw & at " + std::to_string(i);
      i = semi + 1;
      continue;
    }
    if (text[i] != '<') {
      ++i;
      continue;
    }
    size_t end = text.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    std::string tag = text.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) return "'<' inside a tag at " + std::to_string(i);
    if (std::count(tag.begin(), tag.end(), '"') % 2) return "unbalanced quotes in <" + tag + ">";
    if (tag.starts_with("/")) {
      if (open.empty() || open.back() != tag.substr(1)) return "</" + tag.substr(1) + "> closes nothing open";
      open.pop_back();
    } else if (!tag.ends_with("/")) {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
    i = end + 1;
  }
  if (!open.empty()) return "<" + open.back() + "> never closed";
  return "";
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t i = text.find(what); i != std::string::npos; i = text.find(what, i + 1)) ++n;
  return n;
}

TEST(SvgPlot, WellFormedWithEverySeriesAndLabel) {
  std::vector<PlotSeries> series = {
      {"int-N absmax", {{6.8e6, 1.87e-2}, {9.1e6, 4.08e-3}, {11.3e6, 9.55e-4}}},
      {"kmeans <ecsq> & co", {{10.4e6, 9.55e-4}, {12.7e6, 2.3e-3}}, 3, true},
  };
  PlotOptions options{"bytes vs error", "artifact bytes", "relative MSE", false, true};
  std::string svg = svg_plot(options, series);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_TRUE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<circle"), 5u);
  EXPECT_NE(svg.find("int-N absmax"), std::string::npos);
  EXPECT_NE(svg.find("kmeans &lt;ecsq&gt; &amp; co"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find("relative MSE (log)"), std::string::npos);
  EXPECT_NE(svg.find("bytes vs error"), std::string::npos);
  // Log y ticks at decades inside 9.55e-4 .. 1.87e-2 (with padding): 0.001 and 0.01.
  EXPECT_NE(svg.find(">0.001</text>"), std::string::npos);
  EXPECT_NE(svg.find(">0.01</text>"), std::string::npos);
  // Linear x ticks in millions.
  EXPECT_NE(svg.find(">8M</text>"), std::string::npos);
  // The polyline's x coordinates grow with the data's (the frame starts at x = 90).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("<polyline points=\"([0-9.]+),[0-9.]+ ([0-9.]+),")));
  EXPECT_LT(std::stod(m[1]), std::stod(m[2]));
  EXPECT_GE(std::stod(m[1]), 90.0);
}

// Reference lines are drawn, labelled and inside the axes (a mark past the data widens them); each
// point's label sits beside it.
TEST(SvgPlot, MarksAndPointLabels) {
  PlotSeries s{"int-N", {{6.8e6, 1.05}, {9.1e6, 1.02}}};
  s.point_labels = {"int4", "int6 & co"};
  PlotOptions options{"bytes vs val_bpb", "artifact bytes", "val_bpb"};
  options.x_marks = {{16e6, "the 16 MB cap"}};
  options.y_marks = {{1.0, "unquantized"}};
  const std::string svg = svg_plot(options, std::vector<PlotSeries>{s});
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_NE(svg.find(">the 16 MB cap</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">unquantized</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">int4</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">int6 &amp; co</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">16M</text>"), std::string::npos) << "the x axis reaches the mark: " << svg;
  EXPECT_EQ(count(svg, "stroke=\"#555555\" stroke-dasharray"), 2u);
}

TEST(SvgPlot, WidensForALongLegend) {
  std::vector<PlotSeries> series = {{std::string(200, 'x'), {{1, 1}, {2, 2}}}};
  std::string svg = svg_plot({"t", "x", "y"}, series);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("<svg [^>]*width=\"([0-9.]+)\"")));
  EXPECT_GT(std::stod(m[1]), 90 + 480 + 200 * 6.0);
  EXPECT_EQ(xml_problem(svg), "");
}

TEST(SvgPlot, LeavesOutWhatALogAxisCannotShow) {
  std::vector<PlotSeries> series = {{"s", {{1, 0.0}, {2, 1e-3}, {3, -1}, {4, 1e-2}, {5, std::nan("")}}}};
  std::string svg = svg_plot({"t", "x", "y", false, true}, series);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<circle"), 2u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(SvgPlot, EmptyAndSinglePointPlotsAreStillWellFormed) {
  EXPECT_EQ(xml_problem(svg_plot({"empty", "x", "y"}, {})), "");
  std::vector<PlotSeries> one = {{"one", {{5, 5}}}};
  std::string svg = svg_plot({"one", "x", "y", true, true}, one);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<circle"), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(SvgPlot, CheckerCatchesBrokenXml) {  // the checker above must be able to fail
  EXPECT_NE(xml_problem("<?xml ?><svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<?xml ?><svg>a & b</svg>"), "");
  EXPECT_NE(xml_problem("<?xml ?><svg><text>a</svg>"), "");
}

}  // namespace
}  // namespace pgolf
