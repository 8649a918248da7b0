#include "plan/budget_plan.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "plan/budget.h"
#include "plan/plan.h"
#include "plan/sweep.h"

namespace pgolf {

namespace {

constexpr int kMaxAttempts = 8;
// A build that fits but leaves more than this share of the budget unused is built again with the
// solver given more (the sensitivity-weighted pr212 pack once left 2% unused after 3 attempts).
constexpr double kUnusedShare = 0.002;

double entropy_bytes(const Stream& s) {
  SymbolHistogram h;
  h.add(s.bytes);
  return h.entropy_bytes();
}

// What the byte codec makes of a candidate's symbols per byte of their order-0 entropy, measured
// on the largest symbol stream of the tensors chosen for (zstd:22 lands within ~1% of the entropy;
// zstd:3 4% above on int4 symbols and 7-11% on int8).
double coding_overhead(const EncodedCheckpoint& encoded, const std::vector<bool>& tunable, const ByteCodec& compressor) {
  const Stream* largest = nullptr;
  for (size_t i = 0; i < encoded.tensors.size(); ++i)
    if (tunable[i])
      for (const auto& s : encoded.tensors[i].streams)
        if (s.element_bytes == 1 && (!largest || s.bytes.size() > largest->bytes.size())) largest = &s;
  double entropy = largest ? entropy_bytes(*largest) : 0;
  return entropy > 0 ? static_cast<double>(compressor.encode(largest->bytes).size()) / entropy : 1.0;
}

// The bytes a tensor's streams will take: symbol-like streams (1-byte elements) at their order-0
// entropy times the coding overhead, wider streams compressed on their own as the
// artifact codes them (group_codec_spec).
double estimate_bytes(const std::vector<Stream>& streams, const ByteCodec& compressor, double overhead) {
  double bytes = 0;
  for (const auto& s : streams) {
    if (s.element_bytes == 1) {
      bytes += entropy_bytes(s) * overhead;
    } else {
      auto codec = make_byte_codec(group_codec_spec(s, compressor));
      bytes += static_cast<double>(codec->encode(s.bytes).size());
    }
  }
  return bytes;
}

// One candidate of one tensor, as measured.
struct Measured {
  double bytes = 0;
  Distortion distortion;
  std::string spec;  // fitted
};

}  // namespace

std::vector<std::string> default_budget_candidates(bool calibrated) {
  std::vector<std::string> skipped;
  std::vector<std::string> specs;
  for (const auto& point : default_sweep(skipped, calibrated))
    if (point.rules.empty()) specs.push_back(point.codec);
  return specs;
}

BudgetPlan plan_for_budget(const Checkpoint& checkpoint, uint64_t budget, const ByteCodec& compressor,
                           const BudgetPlanOptions& options) {
  BudgetPlan plan;
  plan.candidates = options.candidates.empty() ? default_budget_candidates(options.calibration != nullptr) : options.candidates;
  require(!plan.candidates.empty(), "no candidate codecs");
  for (const auto& [name, weight] : options.sensitivity.weights)
    require(checkpoint.find(name) != nullptr, "sensitivity names tensor '" + name + "', which the checkpoint lacks");
  const auto& refs = checkpoint.tensors();
  const CompressOptions threads{options.threads, nullptr, options.calibration, options.gptq};

  // Encode under every candidate: a tensor is chosen for when every candidate's plan gives it
  // that candidate (the default plan quantizes it and no user rule claims it).
  std::vector<std::vector<Measured>> measured(refs.size());
  std::vector<bool> tunable(refs.size(), true);
  EncodedCheckpoint first;  // the first candidate's encoding: its other tensors are the fixed part
  std::vector<std::string> first_specs;
  ProgressCounter measured_count(options.progress, "measuring candidates", plan.candidates.size());
  for (size_t c = 0; c < plan.candidates.size(); ++c) {
    const std::string& spec = plan.candidates[c];
    EncodedCheckpoint encoded;
    std::vector<std::string> specs;
    try {
      specs = Plan(spec, options.rules).specs_for(checkpoint);
      encoded = encode_checkpoint(checkpoint, specs, threads);
    } catch (const InputError& e) {
      throw InputError("candidate '" + spec + "': " + e.what());
    }
    for (size_t i = 0; i < refs.size(); ++i) tunable[i] = tunable[i] && specs[i] == spec;
    const double overhead = coding_overhead(encoded, tunable, compressor);
    std::vector<Measured> row(refs.size());
    parallel_for(refs.size(), [&](size_t i) {
      if (tunable[i])
        row[i] = {estimate_bytes(encoded.tensors[i].streams, compressor, overhead), encoded.tensors[i].report.distortion,
                  encoded.tensors[i].report.codec};
    }, options.threads ? options.threads : default_threads());
    for (size_t i = 0; i < refs.size(); ++i) measured[i].push_back(row[i]);
    if (c == 0) first = std::move(encoded), first_specs = std::move(specs);
    measured_count.advance();
  }

  // Output-space error when every tensor chosen for has it (errors of different kinds do not add).
  plan.output_space = options.calibration != nullptr;
  for (size_t i = 0; i < refs.size(); ++i)
    if (tunable[i])
      for (const auto& m : measured[i]) plan.output_space = plan.output_space && m.distortion.has_output();
  require(options.sensitivity.weights.empty() || options.sensitivity.output_space == plan.output_space,
          std::string("the sensitivity weights are per unit of ") + (options.sensitivity.output_space ? "output" : "weight") +
              " error and the solver minimises " + (plan.output_space ? "output" : "weight") +
              " error: measure them with pgolf sensitivity" + (plan.output_space ? " --calibration" : " without --calibration"));
  std::vector<BudgetItem> items;
  std::vector<size_t> item_tensor;
  std::vector<double> item_weight;
  EncodedCheckpoint fixed{first.metadata, {}};
  for (size_t i = 0; i < refs.size(); ++i) {
    if (!tunable[i]) {
      fixed.tensors.push_back(std::move(first.tensors[i]));
      continue;
    }
    auto it = options.sensitivity.weights.find(refs[i].name);
    item_tensor.push_back(i);
    item_weight.push_back(it == options.sensitivity.weights.end() ? 1.0 : it->second);
  }
  // The solver sees the weights over their largest: the same choice (it only compares), and no
  // weight (1e308) can carry an error past the range of a double.
  const double largest = item_weight.empty() ? 0 : *std::max_element(item_weight.begin(), item_weight.end());
  for (size_t k = 0; k < item_tensor.size(); ++k) {
    const double weight = largest > 0 ? item_weight[k] / largest : item_weight[k];
    BudgetItem item{refs[item_tensor[k]].name, {}};
    for (const auto& m : measured[item_tensor[k]])
      item.points.push_back({m.bytes, weight * (plan.output_space ? m.distortion.output_sq_error : m.distortion.sum_sq_error)});
    items.push_back(std::move(item));
  }
  require(!items.empty(), "no tensor is left for the budget solver to choose a codec for");
  // The bytes that do not depend on the choice: the other tensors, header and manifest, as an
  // artifact of those tensors alone.
  const double fixed_bytes = static_cast<double>(pack_artifact(fixed, compressor, threads).bytes.size());

  // Each build calibrates the estimate: `scale` is the real bytes per estimated byte of the tensors
  // chosen for (byte codecs weaker than zstd's top levels land well above the order-0 entropy),
  // and when a calibrated choice still overshoots, the overshoot is held back from later solves.
  // Once a build fits, the estimate stays and `raise` gives the solver what the fitting build left
  // unused, bisecting back towards the last fit after an overshoot; the fitting build of least
  // (weighted) error is kept.
  double scale = 1, held_back = 0, raise = 0, fit_raise = 0, over_raise = INFINITY, best_error = INFINITY;
  std::optional<BudgetPlan> best;
  std::vector<std::vector<size_t>> built;  // every choice built so far; the last is plan.artifact's
  for (plan.attempts = 1;; ++plan.attempts) {
    std::vector<BudgetItem> scaled = items;
    for (auto& item : scaled)
      for (auto& p : item.points) p.bytes *= scale;
    BudgetSolution solution = solve_budget(scaled, static_cast<double>(budget) + raise, fixed_bytes + held_back);
    plan.tensors.clear();
    plan.specs = first_specs;
    for (size_t k = 0; k < items.size(); ++k) {
      size_t i = item_tensor[k], c = solution.choice[k];
      const Measured& m = measured[i][c];
      plan.tensors.push_back({refs[i].name, m.spec, scale * m.bytes, item_weight[k], m.distortion});
      plan.specs[i] = m.spec;
    }
    plan.estimated_bytes = fixed_bytes + solution.bytes;
    if (best && std::find(built.begin(), built.end(), solution.choice) != built.end()) {
      --plan.attempts;  // refining found no choice between those built: nothing new to build
      break;
    }
    if (built.empty() || solution.choice != built.back())  // a calibration that moved no choice builds nothing new
      plan.artifact = compress_checkpoint(checkpoint, plan.specs, compressor, threads);
    built.push_back(solution.choice);
    const double actual = static_cast<double>(plan.artifact.bytes.size()), unused = static_cast<double>(budget) - actual;
    if (unused >= 0) {
      if (!best) plan.attempts_to_fit = plan.attempts;
      if (solution.distortion < best_error) best_error = solution.distortion, best = plan;
      if (unused <= kUnusedShare * static_cast<double>(budget) || plan.attempts == kMaxAttempts) break;
      fit_raise = raise;
      raise = std::isfinite(over_raise) ? (fit_raise + over_raise) / 2 : raise + unused;
      continue;
    }
    if (plan.attempts == kMaxAttempts) {
      if (best) break;
      throw InputError("could not fit the budget of " + std::to_string(budget) + " bytes in " + std::to_string(kMaxAttempts) +
                       " attempts: the last artifact was " + std::to_string(plan.artifact.bytes.size()) +
                       " bytes against an estimate of " + std::to_string(std::llround(plan.estimated_bytes)));
    }
    if (best) {  // refining overshot: halfway back to the last fit
      over_raise = raise;
      raise = (fit_raise + over_raise) / 2;
      continue;
    }
    if (plan.attempts > 1) held_back += -unused;
    scale *= (actual - fixed_bytes) / solution.bytes;
  }
  best->attempts = plan.attempts, best->attempts_to_fit = plan.attempts_to_fit;
  return std::move(*best);
}

// {"space": "weight" | "output", "weights": {"tensor": w}}, or (as pgolf sensitivity wrote it before
// it measured in output space) the weights alone, in weight space.
SensitivityWeights read_sensitivity_file(const std::string& path) {
  std::ifstream in(path);
  require(in.good(), path + ": cannot read");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  const std::string kForm = path + ": not {\"space\": \"weight\" or \"output\", \"weights\": {\"tensor\": weight, ...}}";
  require(!j.is_discarded() && j.is_object(), kForm);
  const bool described = j.contains("weights");
  require(!described || (j["weights"].is_object() && (j.value("space", "") == "weight" || j.value("space", "") == "output")),
          kForm);
  SensitivityWeights out;
  out.output_space = described && j["space"] == "output";
  for (const auto& [name, value] : (described ? j["weights"] : j).items()) {
    require(value.is_number() && std::isfinite(value.get<double>()) && value.get<double>() >= 0,
            path + ": the weight of '" + name + "' is not a finite number >= 0");
    out.weights[name] = value.get<double>();
  }
  return out;
}

}  // namespace pgolf
