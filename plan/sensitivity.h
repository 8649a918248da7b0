// Per-tensor sensitivity: how much the model's loss grows per unit of squared error in each tensor.
// Each probed tensor is quantized alone with a probe codec (fitted on all of them at once, as
// compress fits it) and the loss measured; weight = loss increase / squared error: in weight space,
// or with calibration in output space, tr(ΔW H ΔWᵀ), the error compress --auto --calibration
// minimises. The budget solver (compress --auto --sensitivity) then minimises the predicted loss
// increase; the two spaces do not mix.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/float_tensor.h"
#include "core/progress.h"
#include "quant/tensor_codec.h"

namespace pgolf {

class Calibration;

struct SensitivityProbe {
  std::string name;
  double sum_sq_error = 0;      // in the space the weight is per: weight, or output (tr(ΔW H ΔWᵀ))
  double loss = 0;    // the loss with this tensor alone quantized
  double weight = 0;  // (loss - base) / sum_sq_error; a tensor with no measurable increase gets the least weight seen
};

struct Sensitivity {
  bool output_space = false;  // every probed tensor had a Hessian: weights per unit of output error
  double base_loss = 0;
  std::vector<SensitivityProbe> probes;
};

struct SensitivityOptions {
  std::string probe_spec = "int4";
  const Calibration* calibration = nullptr;  // for gptq probes; weights in output space (every probed tensor needs its Hessian)
  FitOptions fit;
  ProgressReport progress;  // stage "sensitivity", one unit per probe
};

// The loss of the model with these weights.
using LossOf = std::function<double(const std::map<std::string, FloatTensor>&)>;

// Probes the named tensors of `tensors` (left as they were); InputError naming a tensor the probe refuses.
// The weights as compress --auto --sensitivity reads them: {"space": "weight" | "output", "weights": {"tensor": w}}.
std::string sensitivity_json(const Sensitivity& sensitivity);

Sensitivity measure_sensitivity(std::map<std::string, FloatTensor>& tensors, const std::vector<std::string>& names,
                                const LossOf& loss_of, const SensitivityOptions& options);

}  // namespace pgolf
