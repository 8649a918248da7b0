#include "plan/sensitivity.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "quant/calibration.h"
#include "quant/distortion.h"
#include "quant/gptq.h"

namespace pgolf {

Sensitivity measure_sensitivity(std::map<std::string, FloatTensor>& tensors, const std::vector<std::string>& names,
                                const LossOf& loss_of, const SensitivityOptions& options) {
  require(!names.empty(), "no tensor to probe");
  // The probe is fitted on every probed tensor at once, as compress fits it (ecsq:totalrelmse's
  // shared step means the same thing here), though each tensor is then quantized alone.
  std::vector<FitTensor> fit;
  for (const std::string& name : names) {
    const FloatTensor& t = tensors.at(name);
    const InputHessian* hessian = options.calibration ? options.calibration->find(name) : nullptr;
    require(!options.calibration || hessian, "tensor '" + name + "' has no Hessian in the calibration: its sensitivity "
                                             "cannot be measured in output space");
    fit.push_back({name, t.values, TensorShape{t.shape}, hessian});
  }
  const FittedCodecs codecs = fit_tensor_codec(options.probe_spec, fit, options.fit);

  Sensitivity s;
  s.output_space = options.calibration != nullptr;
  s.base_loss = loss_of(tensors);
  ProgressCounter probed(options.progress, "sensitivity", names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    SensitivityProbe p{names[i]};
    FloatTensor& t = tensors.at(p.name);
    const std::vector<float> original = t.values;
    const TensorShape shape{t.shape};
    try {
      t.values = decode_streams(*codecs[i], codecs[i]->encode(original, shape), shape);
    } catch (const InputError& e) {
      t.values = original;
      throw InputError("tensor '" + p.name + "': " + e.what());
    }
    p.sum_sq_error = s.output_space ? output_error(original, t.values, shape, *fit[i].hessian).error
                                    : Distortion::measure(original, t.values).sum_sq_error;
    p.loss = loss_of(tensors);
    t.values = original;
    s.probes.push_back(p);
    probed.advance();
  }
  // A tensor whose loss did not measurably grow still may not be quantized for free: it gets the
  // smallest weight measured above zero (the probe only shows it is below the evaluation's noise).
  double floor = 0;
  for (auto& p : s.probes) {
    p.weight = p.sum_sq_error > 0 ? std::max(0.0, p.loss - s.base_loss) / p.sum_sq_error : 0;
    if (p.weight > 0) floor = floor > 0 ? std::min(floor, p.weight) : p.weight;
  }
  for (auto& p : s.probes)
    if (p.weight <= 0) p.weight = floor > 0 ? floor : 1;
  return s;
}

std::string sensitivity_json(const Sensitivity& sensitivity) {
  nlohmann::json weights = nlohmann::json::object();
  for (const auto& p : sensitivity.probes) weights[p.name] = p.weight;
  return nlohmann::json{{"space", sensitivity.output_space ? "output" : "weight"}, {"weights", weights}}.dump(2) + "\n";
}

}  // namespace pgolf
