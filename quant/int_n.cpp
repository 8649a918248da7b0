#include "quant/int_n.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/spec.h"
#include "quant/scalar_grid.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

constexpr int kMseGridSteps = 50;  // clip fractions 1.00, 0.99, ..., 0.50 of the row's max |w|

float abs_max(std::span<const float> row) {
  float m = 0;
  for (float x : row) m = std::max(m, std::fabs(x));
  return m;
}

// Linear interpolation between order statistics, as torch.quantile does.
float abs_quantile(std::span<const float> row, double p) {
  std::vector<float> a(row.size());
  std::transform(row.begin(), row.end(), a.begin(), [](float x) { return std::fabs(x); });
  double pos = p * static_cast<double>(a.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, a.size() - 1);
  std::nth_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(lo), a.end());
  float v_lo = a[lo];
  float v_hi = hi == lo ? v_lo : *std::min_element(a.begin() + static_cast<std::ptrdiff_t>(lo) + 1, a.end());
  return static_cast<float>(v_lo + (v_hi - v_lo) * (pos - static_cast<double>(lo)));
}

// Unbiased standard deviation of the row, as torch.std does.
double std_dev(std::span<const float> row) {
  if (row.size() < 2) return 0;
  double mean = 0;
  for (float x : row) mean += x;
  mean /= static_cast<double>(row.size());
  double ss = 0;
  for (float x : row) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(row.size() - 1));
}

// The fp16 scale for a clip value; a positive clip never gets a zero scale.
uint16_t scale_for_clip(double clip, int qmax) {
  if (clip <= 0) return 0;
  uint16_t s = float_to_fp16(static_cast<float>(clip / qmax));
  if ((s & 0x7fffu) >= 0x7c00u)
    throw InputError("a row's max |w| " + std::to_string(clip) +
                     " needs a scale beyond fp16's range; use fp32 or bf16 for this tensor");
  return s == 0 ? uint16_t{1} : s;
}

double row_squared_error(std::span<const float> row, float scale, int qmax) {
  double err = 0;
  float inv = 1.0f / scale;
  for (float x : row) {
    float q = std::clamp(std::nearbyint(x * inv), static_cast<float>(-qmax), static_cast<float>(qmax));
    double e = static_cast<double>(x) - static_cast<double>(q * scale);
    err += e * e;
  }
  return err;
}

}  // namespace

uint16_t choose_row_scale(std::span<const float> row, const IntNRule& rule) {
  if (row.empty()) return 0;
  float max_abs = abs_max(row);
  int qmax = rule.qmax();
  switch (rule.clip) {
    case ClipMode::AbsMax: return scale_for_clip(max_abs, qmax);
    // A clip of zero (a constant row's std, a mostly-zero row's quantile) would erase the row:
    // fall back to its max |w|.
    case ClipMode::Quantile: {
      float clip = abs_quantile(row, rule.clip_param);
      return scale_for_clip(clip > 0 ? clip : max_abs, qmax);
    }
    case ClipMode::StdDev: {
      double clip = std::min<double>(max_abs, rule.clip_param * std_dev(row));
      return scale_for_clip(clip > 0 ? clip : max_abs, qmax);
    }
    case ClipMode::MseSearch: {
      uint16_t best = scale_for_clip(max_abs, qmax);
      if (best == 0) return best;
      double best_err = row_squared_error(row, fp16_to_float(best), qmax);
      for (int step = 1; step <= kMseGridSteps; ++step) {
        uint16_t s = scale_for_clip(max_abs * (1.0 - 0.01 * step), qmax);
        double err = row_squared_error(row, fp16_to_float(s), qmax);
        if (err < best_err) best_err = err, best = s;
      }
      return best;
    }
  }
  return 0;
}

namespace {

class IntNCodec final : public ScalarGridCodec {
 public:
  IntNCodec(IntNRule rule, float rdo) : rule_(rule), rdo_(rdo) {}
  // rdo only changes which symbols are written; the decoder does not see it.
  std::string spec() const override { return with_rdo_param(rule_.spec(), rdo_); }
  std::string decoder_spec() const override { return rule_.spec(); }
  bool is_passthrough() const override { return false; }

  ScalarGrid grid(std::span<const float> values, const TensorShape& shape) const override {
    int64_t rows = shape.rows(), cols = shape.cols();
    ScalarGrid g{std::vector<float>(static_cast<size_t>(rows)), rule_.qmax()};
    for (int64_t r = 0; r < rows; ++r)
      g.row_steps[r] = fp16_to_float(choose_row_scale(values.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)), rule_));
    g.fit_rates(values, cols, rdo_);
    return g;
  }

  std::vector<Stream> write(std::span<const int32_t> symbols, const ScalarGrid& grid, const TensorShape& shape) const override {
    int64_t rows = shape.rows();
    Stream q{"int" + std::to_string(rule_.bits), std::vector<uint8_t>(symbols.size()), 1};
    for (size_t i = 0; i < symbols.size(); ++i) q.bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(symbols[i]));
    Stream scales{"scale.fp16", std::vector<uint8_t>(static_cast<size_t>(rows) * 2), 2};
    for (int64_t r = 0; r < rows; ++r) {
      uint16_t s = float_to_fp16(grid.row_steps[r]);  // exact: the step came from fp16
      std::memcpy(scales.bytes.data() + 2 * r, &s, 2);
    }
    std::vector<Stream> out;
    out.push_back(std::move(q));
    out.push_back(std::move(scales));
    return out;
  }

 private:
  IntNRule rule_;
  float rdo_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_int_n_codec(const SpecStage& stage) {
  SpecStage rule_stage = stage;
  float rdo = take_rdo_param(rule_stage);
  return std::make_unique<IntNCodec>(int_n_rule(rule_stage), rdo);
}

}  // namespace pgolf
