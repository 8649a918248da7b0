// `pgolf compress --auto --budget B`: a codec per tensor, chosen to fit a byte budget with the
// least sensitivity-weighted squared error. Every tensor the plan would quantize is encoded under
// every candidate spec; each candidate's bytes are estimated (order-0 entropy of its symbol streams
// times the byte codec's overhead over it, measured per candidate on one stream; its float streams
// compressed on their own) and its error measured: in output space, tr(ΔW H ΔWᵀ), when every
// tensor chosen for has a calibration Hessian, else squared weight error; quant/budget.h
// chooses; the artifact is built from one spec per tensor (the fitted spec measured, so
// ecsq:totalrelmse keeps the step it was measured with) and checked against the budget. When it does not fit, the estimates are scaled by what the build showed and the
// solver runs again, a few times at most.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "artifact/artifact.h"

namespace pgolf {

class ByteCodec;
class Calibration;
class GptqEngine;

// What pgolf sensitivity measured: loss increase per unit of squared error, in weight space or (with
// calibration) in output space; the solver takes them only in the space it minimises.
struct SensitivityWeights {
  bool output_space = false;
  std::map<std::string, double> weights;
};

struct BudgetPlanOptions {
  std::vector<std::string> candidates;        // codec specs; empty: default_budget_candidates()
  std::vector<std::string> rules;             // the user's REGEX=SPEC rules: tensors they match stay as they say
  SensitivityWeights sensitivity;             // tensor name -> weight of its squared error (default 1)
  unsigned threads = 0;                       // 0: all cores
  ProgressReport progress;                    // stage "measuring candidates", one unit per candidate
  const Calibration* calibration = nullptr;   // Hessians: gptq candidates and the output-space error
  const GptqEngine* gptq = nullptr;           // null: the CPU
};

struct TensorChoice {
  std::string name;
  std::string spec;            // the fitted spec, as the artifact was built with it
  double estimated_bytes = 0;  // what the solver counted
  double weight = 1;           // its sensitivity
  Distortion distortion;       // of the chosen spec
};

struct BudgetPlan {
  std::vector<std::string> candidates;  // the specs measured
  std::vector<TensorChoice> tensors;    // the tensors chosen for, in the checkpoint's order
  std::vector<std::string> specs;       // one per tensor of the checkpoint, as the artifact was built
  bool output_space = false;            // the error minimised was tr(ΔW H ΔWᵀ), not squared weight error
  double estimated_bytes = 0;           // the whole artifact, as the last solve estimated it (calibrated)
  int attempts = 0;                     // builds in all: until one fit, then refining it
  int attempts_to_fit = 0;              // builds until the first that fit
  CompressResult artifact;              // built with `specs`; at most the budget
};

// The default sweep's one-codec points: int_n_sweep_specs(), k-means (K 16, 64 and 256; Lloyd and
// ECSQ), prune (1, 3, 5% before int6), the ECSQ ladder and, calibrated, its GPTQ variants and
// GPTQ over int-N.
std::vector<std::string> default_budget_candidates(bool calibrated = false);

// InputError when the budget is below the smallest size reachable (the message says it), when a
// candidate or rule is bad, or when a sensitivity names a tensor the checkpoint lacks.
BudgetPlan plan_for_budget(const Checkpoint& checkpoint, uint64_t budget, const ByteCodec& compressor,
                           const BudgetPlanOptions& options);

// {"tensor name": weight, ...}, weights finite and >= 0. InputError naming the file otherwise.
SensitivityWeights read_sensitivity_file(const std::string& path);

}  // namespace pgolf
