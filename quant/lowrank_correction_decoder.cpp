// The lrcorr decoder (lowrank_correction.cpp): BASE's decode plus A·B, the factors decoded by the
// factor codec; streams: BASE's, then A's, then B's.
#include <algorithm>

#include "core/error.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class LowRankCorrectionDecoder final : public TensorDecoder {
 public:
  LowRankCorrectionDecoder(int64_t rank, std::unique_ptr<TensorDecoder> factors, std::unique_ptr<TensorDecoder> base)
      : rank_(rank), factors_(std::move(factors)), base_(std::move(base)) {}
  size_t stream_count() const override { return base_->stream_count() + 2 * factors_->stream_count(); }
  bool keeps_zeros() const override { return false; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    int64_t rows = shape.rows(), cols = shape.cols();
    require(streams.size() == stream_count(), "lrcorr: " + std::to_string(streams.size()) + " streams, not " +
                                                  std::to_string(stream_count()));
    const size_t base_streams = base_->stream_count();
    auto out = base_->decode(streams.first(base_streams), shape);
    add_decoded_factors(*factors_, streams.subspan(base_streams), rows, std::min(rank_, std::min(rows, cols)), cols, out);
    return out;
  }

 private:
  int64_t rank_;
  std::unique_ptr<TensorDecoder> factors_;
  std::unique_ptr<TensorDecoder> base_;
};

}  // namespace

LowRankCorrectionRule lowrank_correction_rule(const SpecStage& stage) {
  const std::string kUsage =
      " (accepted: lrcorr:rank=R[,factors=SPEC,weight=plain|hessian], R >= 0, SPEC a one-stage codec such as int4)";
  LowRankCorrectionRule rule;
  rule.rank = -1;
  bool has_factors = false, has_weight = false;
  for (const auto& [key, value] : stage.params) {
    if (key == "rank" && rule.rank < 0) {
      rule.rank = parse_integer(value, "lrcorr rank");
      require(rule.rank >= 0, "lrcorr: rank " + value + " is negative" + kUsage);
    } else if (key == "factors" && !has_factors) {
      has_factors = true;
      rule.factor_spec = value;
    } else if (key == "weight" && !has_weight) {
      has_weight = true;
      require(value == "plain" || value == "hessian", "lrcorr: weight is plain or hessian" + kUsage);
      rule.hessian_weighted = value == "hessian";
    } else {
      throw InputError("lrcorr: parameter '" + (key.empty() ? value : key) + "' is unknown or repeated" + kUsage);
    }
  }
  require(rule.rank >= 0, "lrcorr needs rank=R" + kUsage);
  return rule;
}

std::unique_ptr<TensorDecoder> make_lowrank_correction_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> base) {
  const LowRankCorrectionRule rule = lowrank_correction_rule(stage);
  return std::make_unique<LowRankCorrectionDecoder>(rule.rank, make_tensor_decoder(rule.factor_spec), std::move(base));
}

}  // namespace pgolf
