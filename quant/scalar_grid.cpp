#include "quant/scalar_grid.h"

#include <cstdio>

#include "core/error.h"

namespace pgolf {

float take_rdo_param(SpecStage& stage) {
  float rdo = 0;
  std::erase_if(stage.params, [&](const auto& param) {
    if (param.first != "rdo") return false;
    rdo = static_cast<float>(parse_number(param.second, stage.name + " rdo"));
    require(rdo >= 0 && std::isfinite(rdo), stage.name + ": rdo must be a finite number >= 0");
    return true;
  });
  return rdo;
}

std::string with_rdo_param(const std::string& decoder_spec, float rdo) {
  if (rdo == 0) return decoder_spec;
  char buf[32];
  std::snprintf(buf, sizeof buf, "rdo=%.9g", rdo);
  return decoder_spec + (decoder_spec.find(':') == std::string::npos ? ":" : ",") + buf;
}

void ScalarGrid::fit_rates(std::span<const float> values, int64_t cols, float rdo_weight) {
  rdo = rdo_weight;
  rate_bits.clear();
  if (rdo_weight <= 0 || values.empty()) return;
  std::vector<int32_t> q(values.size());
  int32_t widest = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    q[i] = round(static_cast<int64_t>(i) / cols, values[i]);
    widest = std::max(widest, std::abs(q[i]));
  }
  // One symbol past the widest seen on each side (rounding up can reach it), each count + 1/2.
  rate_offset = std::min(widest + 1, max_symbol);
  std::vector<double> counts(static_cast<size_t>(2 * rate_offset + 1), 0.5);
  for (int32_t s : q) counts[static_cast<size_t>(s + rate_offset)] += 1;
  const double total = static_cast<double>(values.size()) + 0.5 * static_cast<double>(counts.size());
  rate_bits.resize(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) rate_bits[i] = static_cast<float>(-std::log2(counts[i] / total));
  rate_escape = static_cast<float>(std::log2(2 * total));
}

std::vector<Stream> ScalarGridCodec::encode(std::span<const float> values, const TensorShape& shape) const {
  require_finite(values, spec());
  ScalarGrid g = grid(values, shape);
  const int64_t cols = shape.cols();
  std::vector<int32_t> symbols(values.size());
  for (size_t i = 0; i < values.size(); ++i) symbols[i] = g.round(static_cast<int64_t>(i) / cols, values[i]);
  return write(symbols, g, shape);
}

}  // namespace pgolf
