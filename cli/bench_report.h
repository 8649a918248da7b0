// What `pgolf bench` writes: the sweep as a Markdown table, CSV (totals, and per tensor), JSON,
// and SVG plots of bytes against error (in total and per tensor class) and against val_bpb.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "plan/sweep.h"

namespace pgolf::cli {

std::string bench_markdown(std::span<const SweepResult> results);
// Relative MSE per tensor class ("attn.c_q", "tok_emb", ...), one row per codec: where a codec
// spends its error (for a low-rank tok_emb, 1 - rel. MSE is the variance its rank explains).
std::string bench_class_markdown(std::span<const SweepResult> results);
std::string bench_csv(std::span<const SweepResult> results);          // one row per codec and compressor
std::string bench_tensors_csv(std::span<const SweepResult> results);  // one row per codec, compressor and tensor
nlohmann::json bench_json(std::span<const SweepResult> results);

struct PlotFile {
  std::string name;  // "rd_bytes_vs_rel_mse.svg", ...
  std::string svg;
};
// bytes vs relative MSE; bytes vs val_bpb (when evaluated; with the checkpoint's own val_bpb as a
// line, where given); per tensor class, its bytes vs its relative MSE. One polyline per codec family
// and compressor, each point labelled with its setting; the bytes axes reach Parameter Golf's cap.
std::vector<PlotFile> bench_plots(std::span<const SweepResult> results, std::optional<double> checkpoint_val_bpb = {});

}  // namespace pgolf::cli
