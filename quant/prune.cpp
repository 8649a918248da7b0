// Magnitude pruning, a wrapper: "prune:F[,scope=tensor|row]+INNER" sets the fraction F of the
// tensor's (or of each row's) elements with the smallest |w| to 0; "prune:threshold=T+INNER" sets
// every |w| < T to 0. INNER then encodes the pruned tensor. (Pruning by one threshold across all
// tensors needs the whole checkpoint, so it is not a per-tensor codec.)
//
// Zeros must decode exactly. When INNER decodes an input 0 as 0 (int-N, fp16, ...) its streams are
// all there is; otherwise a bitmap of the zero positions follows them (group "mask") and decoding
// forces those positions to 0. Which of the two is decided once per codec, on a probe, so that a
// codec's stream count depends on its spec alone (the low-rank composites split stream lists by
// count); every encode checks the decision on the real tensor.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "core/error.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"

namespace pgolf {

namespace {

struct PruneRule {
  bool by_threshold = false;
  double fraction = 0;    // of the elements, per tensor or per row
  bool per_row = false;
  double threshold = 0;   // |w| < threshold becomes 0

  std::string spec() const {
    char buf[64];
    if (by_threshold) {
      std::snprintf(buf, sizeof buf, "prune:threshold=%.10g", threshold);
      return buf;
    }
    std::snprintf(buf, sizeof buf, "prune:%.10g", fraction);
    return std::string(buf) + (per_row ? ",scope=row" : "");
  }
};

// Sets the `count` elements with the smallest |w| to 0; among equal |w| the earlier ones go first.
void zero_smallest(std::span<float> values, size_t count) {
  count = std::min(count, values.size());
  if (count == 0) return;
  std::vector<float> magnitudes(values.size());
  std::transform(values.begin(), values.end(), magnitudes.begin(), [](float x) { return std::fabs(x); });
  std::nth_element(magnitudes.begin(), magnitudes.begin() + static_cast<std::ptrdiff_t>(count - 1), magnitudes.end());
  float cut = magnitudes[count - 1];
  size_t below = static_cast<size_t>(std::count_if(values.begin(), values.end(), [cut](float x) { return std::fabs(x) < cut; }));
  size_t ties_left = count - below;
  for (float& x : values) {
    float m = std::fabs(x);
    if (m < cut) {
      x = 0;
    } else if (m == cut && ties_left > 0) {
      x = 0;
      --ties_left;
    }
  }
}

size_t count_for(double fraction, size_t n) { return static_cast<size_t>(std::llround(fraction * static_cast<double>(n))); }

void prune(std::span<float> values, const TensorShape& shape, const PruneRule& rule) {
  if (rule.by_threshold) {
    for (float& x : values)
      if (std::fabs(x) < rule.threshold) x = 0;
  } else if (rule.per_row) {
    size_t cols = static_cast<size_t>(shape.cols());
    for (int64_t r = 0; r < shape.rows(); ++r)
      zero_smallest(values.subspan(static_cast<size_t>(r) * cols, cols), count_for(rule.fraction, cols));
  } else {
    zero_smallest(values, count_for(rule.fraction, values.size()));
  }
}

// True when the codec decodes every 0 of a probe as exactly 0. The probe is built so that a codec
// that only sometimes keeps zeros fails on it: two rows (not proportional, so of rank 2) of 1,024
// dense values ramping through 0 asymmetrically, one in 64 replaced by 0. A codebook of at most 256
// entries cannot give so rare a 0 a centroid of its own, no rounding error cancels by symmetry, and
// any factorization short of the exact one misses the zeros.
bool keeps_zeros(const TensorCodec& codec) {
  constexpr int64_t kCols = 1024;
  TensorShape shape{{2, kCols}};
  std::vector<float> probe(2 * kCols);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t c = 0; c < kCols; ++c)
      probe[static_cast<size_t>(r * kCols + c)] =
          c % 64 == 5 + r ? 0.f : (static_cast<float>(c) - 300.3f - 17.f * static_cast<float>(r)) * 1e-4f * static_cast<float>(r + 1);
  auto decoded = decode_streams(codec, codec.encode(probe, shape), shape);
  for (size_t i = 0; i < probe.size(); ++i)
    if (probe[i] == 0.f && decoded[i] != 0.f) return false;
  return true;
}

class PruneCodec final : public TensorCodec {
 public:
  PruneCodec(PruneRule rule, std::unique_ptr<TensorCodec> inner)
      : rule_(rule), inner_(std::move(inner)), needs_mask_(!keeps_zeros(*inner_)) {}
  std::string spec() const override { return rule_.spec() + "+" + inner_->spec(); }
  bool is_passthrough() const override { return false; }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    std::vector<float> pruned(values.begin(), values.end());
    prune(pruned, shape, rule_);
    auto streams = inner_->encode(pruned, shape);
    if (needs_mask_) {
      Stream mask{"mask", std::vector<uint8_t>((pruned.size() + 7) / 8), 1};
      for (size_t i = 0; i < pruned.size(); ++i)
        if (pruned[i] == 0.f) mask.bytes[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      streams.push_back(std::move(mask));
      return streams;
    }
    auto decoded = decode_streams(*inner_, streams, shape);
    for (size_t i = 0; i < pruned.size(); ++i)
      if (pruned[i] == 0.f && decoded[i] != 0.f)
        throw std::logic_error(spec() + ": the inner codec kept zeros on the probe but not on this tensor");
    return streams;
  }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    size_t n = static_cast<size_t>(shape.numel());
    if (!needs_mask_) return inner_->decode(streams, shape);
    require(!streams.empty() && streams.back().size() == (n + 7) / 8, spec() + ": the mask's size does not match the tensor's shape");
    const auto& mask = streams.back();
    require(n % 8 == 0 || (mask.back() >> (n % 8)) == 0, spec() + ": the mask has bits set past the tensor's end");
    auto out = inner_->decode(streams.first(streams.size() - 1), shape);
    for (size_t i = 0; i < n; ++i)
      if ((mask[i / 8] >> (i % 8)) & 1u) out[i] = 0.f;
    return out;
  }

 private:
  PruneRule rule_;
  std::unique_ptr<TensorCodec> inner_;
  bool needs_mask_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_prune_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner) {
  const std::string kUsage = " (accepted: prune:F[,scope=tensor|row] with F in [0, 1], or prune:threshold=T with T >= 0)";
  PruneRule rule;
  bool has_fraction = false, has_scope = false;
  for (const auto& [key, value] : stage.params) {
    if (key.empty() && !has_fraction && !rule.by_threshold) {
      has_fraction = true;
      rule.fraction = parse_number(value, "prune fraction");
      require(rule.fraction >= 0 && rule.fraction <= 1, "prune: fraction " + value + " is not in [0, 1]");
    } else if (key == "scope" && !has_scope) {
      has_scope = true;
      require(value == "tensor" || value == "row", "prune: unknown scope '" + value + "'" + kUsage);
      rule.per_row = value == "row";
    } else if (key == "threshold" && !has_fraction && !rule.by_threshold) {
      rule.by_threshold = true;
      rule.threshold = parse_number(value, "prune threshold");
      require(rule.threshold >= 0, "prune: threshold " + value + " is negative");
    } else {
      throw InputError("prune: parameter '" + (key.empty() ? value : key) + "' is unknown, repeated or conflicting" + kUsage);
    }
  }
  require(has_fraction || rule.by_threshold, "prune needs a fraction or a threshold" + kUsage);
  require(!(has_scope && rule.by_threshold), "prune: scope goes with a fraction, not a threshold" + kUsage);
  return std::make_unique<PruneCodec>(rule, std::move(inner));
}

}  // namespace pgolf
