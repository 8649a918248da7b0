#include "cli/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "cli/format.h"
#include "core/dtype.h"
#include "core/svg_plot.h"

namespace pgolf::cli {

namespace {

std::string printed(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string joined(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// The error columns of CSV rows and JSON objects alike.
// The output-space error (tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)) is empty / null without calibration.
constexpr const char* kErrorColumns = "sum_sq_error,relative_mse,snr_db,cosine,output_relative_error";
std::string error_csv(const Distortion& d) {
  return printed("%.6g", d.sum_sq_error) + "," + printed("%.6g", d.relative_mse()) + "," + printed("%.4f", d.snr_db()) + "," +
         printed("%.8f", d.cosine()) + "," + (d.has_output() ? printed("%.6g", d.output_relative_error()) : std::string());
}
nlohmann::json error_json(const Distortion& d) {
  return {{"sum_sq_error", d.sum_sq_error},
          {"relative_mse", finite_or_null(d.relative_mse())},
          {"snr_db", finite_or_null(d.snr_db())},
          {"cosine", d.cosine()},
          {"output_relative_error", d.has_output() ? finite_or_null(d.output_relative_error()) : nlohmann::json(nullptr)}};
}

// One polyline per (family, compressor): colour by family, dashed after the first compressor; each
// point labelled with its codec setting. point_of gives a result's (x, y), or nothing to leave it out.
template <typename PointOf>
std::vector<PlotSeries> series_by_family(std::span<const SweepResult> results, PointOf point_of) {
  std::vector<std::string> families, compressors;
  auto index_of = [](std::vector<std::string>& names, const std::string& name) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) return static_cast<int>(it - names.begin());
    names.push_back(name);
    return static_cast<int>(names.size() - 1);
  };
  std::vector<PlotSeries> series;
  std::map<std::pair<int, int>, size_t> where;
  for (const auto& r : results) {
    auto point = point_of(r);
    if (!point) continue;
    auto key = std::make_pair(index_of(families, r.point.family), index_of(compressors, r.compressor));
    if (!where.count(key)) {
      where[key] = series.size();
      series.push_back({r.point.family + ", " + r.compressor, {}, key.first, key.second > 0});
    }
    series[where[key]].points.push_back(*point);
    series[where[key]].point_labels.push_back(r.point.label);
  }
  for (auto& s : series) {  // by x, each label with its point
    std::vector<size_t> order(s.points.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.points[a] < s.points[b]; });
    PlotSeries sorted{s.label, {}, s.color, s.dashed, {}};
    for (size_t i : order) sorted.points.push_back(s.points[i]), sorted.point_labels.push_back(s.point_labels[i]);
    s = std::move(sorted);
  }
  return series;
}

// The classes of the tensors some point quantized, in first-seen order.
std::vector<std::string> quantized_classes(std::span<const SweepResult> results) {
  std::vector<std::string> classes;
  for (const auto& r : results)
    for (const auto& [t, entropy] : r.tensors)
      if (t.quantized && std::find(classes.begin(), classes.end(), tensor_class(t.name)) == classes.end())
        classes.push_back(tensor_class(t.name));
  return classes;
}

// One class's stored bytes and error under one result (count 0: the result quantized none of it).
std::pair<double, Distortion> class_totals(const SweepResult& r, const std::string& cls) {
  double bytes = 0;
  Distortion d;
  for (const auto& [t, entropy] : r.tensors)
    if (t.quantized && tensor_class(t.name) == cls) bytes += t.stored_bytes, d.add(t.distortion);
  return {bytes, d};
}

}  // namespace

std::string bench_markdown(std::span<const SweepResult> results) {
  std::string md =
      "| codec | compressor | artifact bytes | bits/param | entropy B (groups) | entropy B (per tensor) | rel. MSE | SNR dB | cosine | "
      "output rel. error | encode s | decode s | val_bpb |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto bytes = [](double v) { return with_commas(static_cast<uint64_t>(std::llround(v))); };
  for (const auto& r : results)
    md += "| " + r.point.label + " | " + r.compressor + " | " + with_commas(r.artifact_bytes) + " | " +
          printed("%.3f", r.bits_per_parameter()) + " | " + bytes(r.symbol_entropy_bytes) + " | " + bytes(r.tensor_entropy_bytes) +
          " | " + printed("%.3e", r.quantized.relative_mse()) + " | " + printed("%.2f", r.quantized.snr_db()) + " | " +
          printed("%.6f", r.quantized.cosine()) + " | " +
          (r.quantized.has_output() ? printed("%.3e", r.quantized.output_relative_error()) : std::string("-")) + " | " +
          printed("%.2f", r.encode_seconds) + " | " +
          printed("%.2f", r.decode_seconds) + " | " + (r.val_bpb ? printed("%.5f", *r.val_bpb) : std::string("-")) + " |\n";
  return md;
}

std::string bench_class_markdown(std::span<const SweepResult> results) {
  const auto classes = quantized_classes(results);
  if (classes.empty() || results.empty()) return "";
  std::string md = "| codec |", rule = "|---|";
  for (const auto& cls : classes) md += " " + cls + " |", rule += "---:|";
  md += "\n" + rule + "\n";
  // The error does not depend on the byte codec, and the stored bytes are given per byte codec in
  // bench_tensors.csv: one row per codec, from its first byte codec's result.
  for (const auto& r : results) {
    if (r.compressor != results.front().compressor) continue;
    md += "| " + r.point.label + " |";
    for (const auto& cls : classes) {
      const auto [bytes, d] = class_totals(r, cls);
      md += d.count == 0 ? std::string(" - |") : " " + printed("%.3e", d.relative_mse()) + " |";
    }
    md += "\n";
  }
  return md;
}

std::string bench_csv(std::span<const SweepResult> results) {
  std::string csv = std::string("label,family,codec,rules,compressor,artifact_bytes,parameters,bits_per_parameter,") +
                    "symbol_entropy_bytes,tensor_entropy_bytes,quantized_tensors,quantized_parameters," + kErrorColumns +
                    ",encode_seconds,decode_seconds,val_bpb\n";
  for (const auto& r : results)
    csv += csv_field(r.point.label) + "," + csv_field(r.point.family) + "," + csv_field(r.point.codec) + "," +
           csv_field(joined(r.point.rules, ";")) + "," + csv_field(r.compressor) + "," + std::to_string(r.artifact_bytes) + "," +
           std::to_string(r.parameters) + "," + printed("%.4f", r.bits_per_parameter()) + "," +
           printed("%.1f", r.symbol_entropy_bytes) + "," + printed("%.1f", r.tensor_entropy_bytes) + "," +
           std::to_string(r.quantized_tensors) + "," +
           std::to_string(r.quantized.count) + "," + error_csv(r.quantized) + "," + printed("%.3f", r.encode_seconds) + "," +
           printed("%.3f", r.decode_seconds) + "," + (r.val_bpb ? printed("%.6f", *r.val_bpb) : std::string()) + "\n";
  return csv;
}

std::string bench_tensors_csv(std::span<const SweepResult> results) {
  std::string csv = std::string("label,compressor,tensor,class,shape,codec,quantized,parameters,stream_bytes,stored_bytes,") +
                    "symbol_entropy_bytes," + kErrorColumns + "\n";
  for (const auto& r : results)
    for (const auto& [t, entropy] : r.tensors)
      csv += csv_field(r.point.label) + "," + csv_field(r.compressor) + "," + csv_field(t.name) + "," +
             csv_field(tensor_class(t.name)) + "," + csv_field(shape_string(t.shape)) + "," + csv_field(t.codec) + "," +
             (t.quantized ? "1" : "0") + "," + std::to_string(element_count(t.shape)) + "," + std::to_string(t.stream_bytes) + "," +
             printed("%.1f", t.stored_bytes) + "," + printed("%.1f", entropy) + "," + error_csv(t.distortion) + "\n";
  return csv;
}

nlohmann::json bench_json(std::span<const SweepResult> results) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& [t, entropy] : r.tensors)
      tensors.push_back({{"name", t.name}, {"class", tensor_class(t.name)}, {"shape", t.shape}, {"codec", t.codec},
                         {"quantized", t.quantized}, {"stream_bytes", t.stream_bytes}, {"stored_bytes", t.stored_bytes},
                         {"symbol_entropy_bytes", entropy}, {"error", error_json(t.distortion)}});
    out.push_back({{"label", r.point.label}, {"family", r.point.family}, {"codec", r.point.codec}, {"rules", r.point.rules},
                   {"compressor", r.compressor}, {"artifact_bytes", r.artifact_bytes}, {"parameters", r.parameters},
                   {"bits_per_parameter", r.bits_per_parameter()}, {"symbol_entropy_bytes", r.symbol_entropy_bytes},
                   {"tensor_entropy_bytes", r.tensor_entropy_bytes},
                   {"quantized_tensors", r.quantized_tensors}, {"quantized_parameters", r.quantized.count},
                   {"quantized_error", error_json(r.quantized)}, {"encode_seconds", r.encode_seconds},
                   {"decode_seconds", r.decode_seconds}, {"val_bpb", r.val_bpb ? nlohmann::json(*r.val_bpb) : nlohmann::json(nullptr)},
                   {"tensors", tensors}});
  }
  return out;
}

std::vector<PlotFile> bench_plots(std::span<const SweepResult> results, std::optional<double> checkpoint_val_bpb) {
  using Point = std::optional<std::pair<double, double>>;
  std::vector<PlotFile> plots;
  const PlotMark cap{16'000'000, "16,000,000 B: Parameter Golf's cap, code included"};
  auto mse = series_by_family(results, [](const SweepResult& r) -> Point {
    return std::make_pair(static_cast<double>(r.artifact_bytes), r.quantized.relative_mse());
  });
  PlotOptions mse_options{"Artifact bytes vs relative MSE of the quantized tensors", "artifact bytes", "relative MSE",
                          false, true};
  mse_options.x_marks = {cap};
  plots.push_back({"rd_bytes_vs_rel_mse.svg", svg_plot(mse_options, mse)});
  auto output = series_by_family(results, [](const SweepResult& r) -> Point {
    if (!r.quantized.has_output()) return std::nullopt;
    return std::make_pair(static_cast<double>(r.artifact_bytes), r.quantized.output_relative_error());
  });
  if (!output.empty())
    plots.push_back({"rd_bytes_vs_output_error.svg",
                     svg_plot({"Artifact bytes vs output error tr(dW H dW^T) / tr(W H W^T) of the calibrated matrices",
                               "artifact bytes", "output relative error", false, true},
                              output)});

  // A broken model (val_bpb several times the best) would flatten every useful curve: points above
  // kBpbPlotLimit times the best are left out of the plot (not the tables), and the title says how many.
  constexpr double kBpbPlotLimit = 1.5;
  double best_bpb = std::numeric_limits<double>::infinity();
  for (const auto& r : results)
    if (r.val_bpb) best_bpb = std::min(best_bpb, *r.val_bpb);
  size_t left_out = 0;
  auto bpb = series_by_family(results, [&](const SweepResult& r) -> Point {
    if (!r.val_bpb) return std::nullopt;
    if (*r.val_bpb > kBpbPlotLimit * best_bpb) return ++left_out, std::nullopt;
    return std::make_pair(static_cast<double>(r.artifact_bytes), *r.val_bpb);
  });
  if (!bpb.empty()) {
    std::string title = "Artifact bytes vs val_bpb";
    if (left_out > 0)
      title += " (" + std::to_string(left_out) + " point" + (left_out > 1 ? "s" : "") + " above " +
               printed("%.1f", kBpbPlotLimit) + "x the best left out)";
    PlotOptions bpb_options{title, "artifact bytes", "val_bpb"};
    bpb_options.x_marks = {cap};
    if (checkpoint_val_bpb) bpb_options.y_marks = {{*checkpoint_val_bpb, "the checkpoint as it is (unquantized)"}};
    plots.push_back({"rd_bytes_vs_val_bpb.svg", svg_plot(bpb_options, bpb)});
  }

  for (const auto& cls : quantized_classes(results)) {
    auto series = series_by_family(results, [&](const SweepResult& r) -> Point {
      const auto [bytes, d] = class_totals(r, cls);
      if (d.count == 0) return std::nullopt;
      return std::make_pair(bytes, d.relative_mse());
    });
    plots.push_back({"rd_class_" + cls + ".svg",
                     svg_plot({"The " + cls + " tensors: their bytes vs their relative MSE", "stored bytes (share of the stream groups)",
                               "relative MSE", false, true},
                              series)});
  }
  return plots;
}

}  // namespace pgolf::cli
