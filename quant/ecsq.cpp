// "ecsq:relmse=R | bits=B | step=S | totalrelmse=T [,scope=tensor|row]": uniform step, round to
// nearest, no clamp. Streams: the symbols, as int8 when every |q| <= 127, else as 16-bit
// little-endian integers (group "ecsq16", coded by rans as one wide alphabet), and the fp32 steps
// (one per tensor, or one per row under scope=row).
#include "quant/ecsq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "core/spec.h"
#include "quant/scalar_grid.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

// Bisection steps over a step range of at most 2^16 (min_step to twice the max |x|): the step
// ends within a factor 2^(16 / 2^30) of the boundary.
constexpr int kSearchIterations = 30;

float abs_max(std::span<const float> values) {
  float m = 0;
  for (float x : values) m = std::max(m, std::fabs(x));
  return m;
}

// The smallest step whose symbols all fit in 16 bits, and at least the smallest normal float: a
// subnormal step's inverse is Inf (found by fuzz/tensor_codec_roundtrip).
float min_step(float max_abs) {
  return std::max(max_abs / kEcsqMaxSymbol * (1 + 1e-6f), std::numeric_limits<float>::min());
}

double squared_error(std::span<const float> values, float step) {
  float inv = 1.0f / step;
  double err = 0;
  for (float x : values) {
    double e = static_cast<double>(x) - static_cast<double>(std::nearbyint(x * inv) * step);
    err += e * e;
  }
  return err;
}

double sum_of_squares(std::span<const float> values) {
  double ss = 0;
  for (float x : values) ss += static_cast<double>(x) * x;
  return ss;
}

// Order-0 entropy of the symbols in bits per symbol.
double entropy_bits(std::span<const float> values, float step, float max_abs) {
  if (values.empty()) return 0;
  float inv = 1.0f / step;
  auto half = static_cast<int64_t>(std::min<double>(kEcsqMaxSymbol, std::ceil(max_abs * inv) + 1));
  std::vector<uint32_t> counts(static_cast<size_t>(2 * half + 1));
  for (float x : values) ++counts[static_cast<size_t>(static_cast<int64_t>(std::nearbyint(x * inv)) + half)];
  double n = static_cast<double>(values.size()), bits = 0;
  for (uint32_t c : counts)
    if (c) bits -= c * std::log2(c / n);
  return bits / n;
}

// Bisects [lo, hi] in log scale on a predicate of the step that is false at lo and true at hi (it
// flips once: error grows and entropy falls with the step). Returns the last false and the first
// true step found.
template <typename Pred>
std::pair<float, float> bisect_step(float lo, float hi, Pred&& pred) {
  for (int i = 0; i < kSearchIterations; ++i) {
    float mid = std::sqrt(lo) * std::sqrt(hi);
    if (mid <= lo || mid >= hi) break;
    (pred(mid) ? hi : lo) = mid;
  }
  return {lo, hi};
}

// The step for one tensor or row; every value is finite.
float choose_step(const EcsqRule& rule, std::span<const float> values) {
  float max_abs = abs_max(values);
  // At hi every symbol is 0; kept finite for values near the float maximum.
  float lo = min_step(max_abs), hi = std::max(lo, std::min(2 * max_abs, std::numeric_limits<float>::max()));
  switch (rule.target) {
    case EcsqTarget::Step:
      if (static_cast<float>(rule.value) < lo)
        throw InputError(rule.spec() + ": the step is too small for values up to " + std::to_string(max_abs) +
                         " (symbols would pass ±32767)");
      return static_cast<float>(rule.value);
    case EcsqTarget::RelMse:
    case EcsqTarget::TotalRelMse: {  // alone, a tensor's total is its own relative MSE
      if (max_abs == 0) return 1;
      double limit = rule.value * sum_of_squares(values);
      auto too_coarse = [&](float step) { return squared_error(values, step) > limit; };
      return too_coarse(lo) ? lo : bisect_step(lo, hi, too_coarse).first;
    }
    case EcsqTarget::Bits: {
      if (max_abs == 0) return 1;
      auto within = [&](float step) { return entropy_bits(values, step, max_abs) <= rule.value; };
      return within(lo) ? lo : bisect_step(lo, hi, within).second;
    }
  }
  return 1;
}

class EcsqCodec final : public ScalarGridCodec {
 public:
  EcsqCodec(EcsqRule rule, float rdo) : rule_(rule), rdo_(rdo) {}
  // rdo only changes which symbols are written; the decoder does not see it.
  std::string spec() const override { return with_rdo_param(rule_.spec(), rdo_); }
  std::string decoder_spec() const override { return rule_.spec(); }
  bool is_passthrough() const override { return false; }
  FittedCodecs fit(std::span<const FitTensor> tensors, const FitOptions& options) const override;

  ScalarGrid grid(std::span<const float> values, const TensorShape& shape) const override {
    const int64_t rows = shape.rows(), cols = shape.cols();
    ScalarGrid g{std::vector<float>(static_cast<size_t>(rows)), kEcsqMaxSymbol};
    if (!rule_.per_row) {
      std::fill(g.row_steps.begin(), g.row_steps.end(), choose_step(rule_, values));
    } else {
      for (int64_t r = 0; r < rows; ++r)
        g.row_steps[r] = choose_step(rule_, values.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)));
    }
    g.fit_rates(values, cols, rdo_);
    return g;
  }

  std::vector<Stream> write(std::span<const int32_t> q, const ScalarGrid& grid, const TensorShape& shape) const override {
    const int64_t cols = shape.cols();
    int32_t widest = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      widest = std::max(widest, std::abs(q[i]));
      // Rounding up near the float maximum can step past it: refuse rather than decode Inf.
      const int64_t row = static_cast<int64_t>(i) / cols;
      if (!std::isfinite(grid.value(row, q[i])))
        throw InputError(spec() + ": symbol " + std::to_string(q[i]) + " at index " + std::to_string(i) +
                         " decodes past the float range with step " + std::to_string(grid.row_steps[row]));
    }
    Stream symbols;
    if (widest <= kEcsqMaxNarrowSymbol) {
      symbols = {"ecsq8", std::vector<uint8_t>(q.size()), 1};
      for (size_t i = 0; i < q.size(); ++i) symbols.bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(q[i]));
    } else {
      symbols = {"ecsq16", std::vector<uint8_t>(2 * q.size()), 2, true};
      for (size_t i = 0; i < q.size(); ++i) {
        auto v = static_cast<uint16_t>(static_cast<int16_t>(q[i]));
        symbols.bytes[2 * i] = static_cast<uint8_t>(v);
        symbols.bytes[2 * i + 1] = static_cast<uint8_t>(v >> 8);
      }
    }
    // One step per tensor (an empty tensor's is 1), or one per row.
    std::vector<float> steps = rule_.per_row ? grid.row_steps : std::vector<float>{grid.row_steps.empty() ? 1.0f : grid.row_steps[0]};
    Stream step_stream{"step.fp32", std::vector<uint8_t>(4 * steps.size()), 4};
    std::memcpy(step_stream.bytes.data(), steps.data(), 4 * steps.size());
    std::vector<Stream> out;
    out.push_back(std::move(symbols));
    out.push_back(std::move(step_stream));
    return out;
  }

 private:
  EcsqRule rule_;
  float rdo_;
};

}  // namespace

float ecsq_shared_step(std::span<const std::span<const float>> tensors, double target) {
  float max_abs = 0;
  double ss = 0;
  for (auto t : tensors) {
    require_finite(t, "ecsq");
    max_abs = std::max(max_abs, abs_max(t));
    ss += sum_of_squares(t);
  }
  if (max_abs == 0) return 1;
  std::vector<double> errors(tensors.size());
  auto too_coarse = [&](float step) {
    parallel_for(tensors.size(), [&](size_t i) { errors[i] = squared_error(tensors[i], step); });
    double total = 0;
    for (double e : errors) total += e;
    return total > target * ss;
  };
  float lo = min_step(max_abs);
  return too_coarse(lo) ? lo : bisect_step(lo, 2 * max_abs, too_coarse).first;
}

// totalrelmse: one step for every tensor this spec encodes. Other targets need no fitting.
FittedCodecs EcsqCodec::fit(std::span<const FitTensor> tensors, const FitOptions& options) const {
  if (rule_.target != EcsqTarget::TotalRelMse) return TensorCodec::fit(tensors, options);
  std::vector<std::span<const float>> views;
  for (const auto& t : tensors) {
    try {
      require_finite(t.values, spec());
    } catch (const InputError& e) {
      throw InputError("tensor '" + t.name + "': " + e.what());
    }
    views.push_back(t.values);
  }
  std::shared_ptr<const TensorCodec> shared =
      std::make_unique<EcsqCodec>(EcsqRule{EcsqTarget::Step, ecsq_shared_step(views, rule_.value), false}, rdo_);
  return FittedCodecs(tensors.size(), shared);
}

std::unique_ptr<TensorCodec> make_ecsq_codec(const SpecStage& stage) {
  SpecStage rule_stage = stage;
  float rdo = take_rdo_param(rule_stage);
  return std::make_unique<EcsqCodec>(ecsq_rule(rule_stage), rdo);
}

}  // namespace pgolf
