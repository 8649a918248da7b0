// Low-rank correction of another codec's error (LQER), a corrector: "BASE+lrcorr:rank=R[,factors=SPEC]"
// encodes W with BASE, takes the error E = W − decode(BASE(W)) and stores its best rank-r
// approximation E ≈ A·B, A = U_r·S_r [rows, r], B = V_rᵀ [r, cols], r = min(R, rows, cols), both
// factors encoded by the factor codec (int8 per row unless factors=SPEC names another one-stage
// codec). Decoding is BASE's decode plus A·B. Streams: BASE's, then A's, then B's.
// (LQER's own layout, A as INT2 and B as INT4 in groups of 64, needs grouped int-N scales, which
// the int-N codec does not have.)
#include <algorithm>

#include "core/error.h"
#include "quant/svd.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"

namespace pgolf {

namespace {

constexpr const char* kDefaultFactorSpec = "int8";

class LowRankCorrectionCodec final : public TensorCodec {
 public:
  LowRankCorrectionCodec(int64_t rank, std::unique_ptr<TensorCodec> factors, std::unique_ptr<TensorCodec> base)
      : rank_(rank), factors_(std::move(factors)), base_(std::move(base)),
        // A one-stage codec's stream count does not depend on the tensor: count it once on a 1x1.
        streams_per_factor_(factors_->encode(std::vector<float>{0.f}, TensorShape{{1, 1}}).size()) {}

  std::string spec() const override {
    std::string s = base_->spec() + "+lrcorr:rank=" + std::to_string(rank_);
    if (factors_->spec() != kDefaultFactorSpec) s += ",factors=" + factors_->spec();
    return s;
  }
  bool is_passthrough() const override { return false; }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    int64_t rows = shape.rows(), cols = shape.cols();
    auto streams = base_->encode(values, shape);
    auto error = decode_streams(*base_, streams, shape);
    for (size_t i = 0; i < error.size(); ++i) error[i] = values[i] - error[i];
    int64_t rank = std::min(rank_, std::min(rows, cols));
    LowRankFactors factors;  // rank 0: nothing to correct
    if (rank > 0) factors = leading_factors(thin_svd(error, rows, cols), rank);
    encode_factors(*factors_, factors, rows, cols, streams);
    return streams;
  }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    int64_t rows = shape.rows(), cols = shape.cols();
    size_t factor_streams = 2 * streams_per_factor_;
    require(streams.size() >= factor_streams, spec() + ": too few streams");
    size_t base_streams = streams.size() - factor_streams;
    auto out = base_->decode(streams.first(base_streams), shape);
    add_decoded_factors(*factors_, streams.subspan(base_streams), rows, std::min(rank_, std::min(rows, cols)), cols, out);
    return out;
  }

 private:
  int64_t rank_;
  std::unique_ptr<TensorCodec> factors_;
  std::unique_ptr<TensorCodec> base_;
  size_t streams_per_factor_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_lowrank_correction_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> base) {
  const std::string kUsage = " (accepted: lrcorr:rank=R[,factors=SPEC], R >= 0, SPEC a one-stage codec such as int4)";
  long rank = -1;
  std::string factor_spec = kDefaultFactorSpec;
  bool has_factors = false;
  for (const auto& [key, value] : stage.params) {
    if (key == "rank" && rank < 0) {
      rank = parse_integer(value, "lrcorr rank");
      require(rank >= 0, "lrcorr: rank " + value + " is negative" + kUsage);
    } else if (key == "factors" && !has_factors) {
      has_factors = true;
      factor_spec = value;
    } else {
      throw InputError("lrcorr: parameter '" + (key.empty() ? value : key) + "' is unknown or repeated" + kUsage);
    }
  }
  require(rank >= 0, "lrcorr needs rank=R" + kUsage);
  return std::make_unique<LowRankCorrectionCodec>(rank, make_tensor_codec(factor_spec), std::move(base));
}

}  // namespace pgolf
