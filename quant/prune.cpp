// Magnitude pruning, a wrapper: "prune:F[,scope=tensor|row]+INNER" sets the fraction F of the
// tensor's (or of each row's) elements with the smallest |w| to 0; "prune:threshold=T+INNER" sets
// every |w| < T to 0. INNER then encodes the pruned tensor. (Pruning by one threshold across all
// tensors needs the whole checkpoint, so it is not a per-tensor codec.)
//
// Zeros must decode exactly. When INNER decodes an input 0 as 0 (int-N, fp16, ...) its streams are
// all there is; otherwise a bitmap of the zero positions follows them (group "mask") and decoding
// forces those positions to 0. Which of the two follows from INNER's decoder (keeps_zeros), so that
// a codec's stream count depends on its spec alone; every encode checks it on the real tensor.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "core/error.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

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

class PruneCodec final : public TensorCodec {
 public:
  PruneCodec(PruneRule rule, std::unique_ptr<TensorCodec> inner)
      : rule_(rule), inner_(std::move(inner)), needs_mask_(!make_tensor_decoder(inner_->decoder_spec())->keeps_zeros()) {}
  std::string spec() const override { return rule_.spec() + "+" + inner_->spec(); }
  std::string decoder_spec() const override { return rule_.spec() + "+" + inner_->decoder_spec(); }
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
        throw std::logic_error(spec() + ": the inner codec's decoder says it keeps zeros, and it did not on this tensor");
    return streams;
  }

 private:
  PruneRule rule_;
  std::unique_ptr<TensorCodec> inner_;
  bool needs_mask_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_prune_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner) {
  return std::make_unique<PruneCodec>(prune_rule(stage), std::move(inner));
}

}  // namespace pgolf
