// The prune decoder: INNER's decode, then the mask's positions set to 0 where INNER does not keep
// zeros itself (prune.cpp).
#include <cstdio>

#include "core/error.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class PruneDecoder final : public TensorDecoder {
 public:
  explicit PruneDecoder(std::unique_ptr<TensorDecoder> inner) : inner_(std::move(inner)), mask_(!inner_->keeps_zeros()) {}
  size_t stream_count() const override { return inner_->stream_count() + (mask_ ? 1 : 0); }
  bool keeps_zeros() const override { return true; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    size_t n = static_cast<size_t>(shape.numel());
    if (!mask_) return inner_->decode(streams, shape);
    require(!streams.empty() && streams.back().size() == (n + 7) / 8, "prune: the mask's size does not match the tensor's shape");
    const auto& mask = streams.back();
    require(n % 8 == 0 || (mask.back() >> (n % 8)) == 0, "prune: the mask has bits set past the tensor's end");
    auto out = inner_->decode(streams.first(streams.size() - 1), shape);
    for (size_t i = 0; i < n; ++i)
      if ((mask[i / 8] >> (i % 8)) & 1u) out[i] = 0.f;
    return out;
  }

 private:
  std::unique_ptr<TensorDecoder> inner_;
  bool mask_;
};

}  // namespace

std::string PruneRule::spec() const {
  char buf[64];
  if (by_threshold) {
    std::snprintf(buf, sizeof buf, "prune:threshold=%.10g", threshold);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "prune:%.10g", fraction);
  return std::string(buf) + (per_row ? ",scope=row" : "");
}

PruneRule prune_rule(const SpecStage& stage) {
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
  return rule;
}


std::unique_ptr<TensorDecoder> make_prune_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> inner) {
  prune_rule(stage);
  return std::make_unique<PruneDecoder>(std::move(inner));
}

}  // namespace pgolf
