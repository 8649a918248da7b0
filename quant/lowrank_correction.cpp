// Low-rank correction of another codec's error (LQER), a corrector: "BASE+lrcorr:rank=R[,factors=SPEC]"
// encodes W with BASE, takes the error E = W − decode(BASE(W)) and stores its best rank-r
// approximation E ≈ A·B, A = U_r·S_r [rows, r], B = V_rᵀ [r, cols], r = min(R, rows, cols), both
// factors encoded by the factor codec (int8 per row unless factors=SPEC names another one-stage
// codec). Decoding is BASE's decode plus A·B. Streams: BASE's, then A's, then B's.
// weight=hessian takes the SVD in output space instead: the best rank-r E·H^½ (H the tensor's
// calibration Hessian, damped as GPTQ damps it), so that A·B minimises tr((E − AB) H (E − AB)ᵀ);
// B = V_rᵀ H^-½. It needs the fit step; BASE is fitted too (gptq+...+lrcorr composes).
// (LQER's own layout, A as INT2 and B as INT4 in groups of 64, needs grouped int-N scales, which
// the int-N codec does not have.)
#include <Eigen/Eigenvalues>
#include <algorithm>

#include "core/error.h"
#include "quant/svd.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

constexpr double kHessianDamp = 0.01;  // of mean(diag H), as gptq's default

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The best rank-r factors of E in the H-weighted norm: SVD of E·H^½, then B ← B·H^-½.
LowRankFactors hessian_weighted_factors(const std::vector<float>& error, int64_t rows, int64_t cols, int64_t rank,
                                        const InputHessian& hessian) {
  require(hessian.dim == cols, "its Hessian is " + std::to_string(hessian.dim) + "x" + std::to_string(hessian.dim) +
                                   ", not " + std::to_string(cols) + "x" + std::to_string(cols));
  MatrixD h = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                  hessian.values.data(), cols, cols).cast<double>();
  require(h.allFinite(), "its Hessian has a non-finite entry");
  h.diagonal().array() += kHessianDamp * std::max(h.diagonal().mean(), 1e-30);
  Eigen::SelfAdjointEigenSolver<MatrixD> eig(h);
  require(eig.info() == Eigen::Success && eig.eigenvalues().minCoeff() > 0,
          "its Hessian is not positive semi-definite (an eigenvalue is negative after damping)");
  const auto& q = eig.eigenvectors();
  MatrixD root = q * eig.eigenvalues().cwiseSqrt().asDiagonal() * q.transpose();
  MatrixD inverse_root = q * eig.eigenvalues().cwiseSqrt().cwiseInverse().asDiagonal() * q.transpose();
  MatrixD weighted = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                         error.data(), rows, cols).cast<double>() * root;
  std::vector<float> weighted_f(weighted.data(), weighted.data() + weighted.size());
  LowRankFactors f = leading_factors(thin_svd(weighted_f, rows, cols), rank);
  MatrixD b = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                  f.b.data(), rank, cols).cast<double>() * inverse_root;
  for (int64_t i = 0; i < b.size(); ++i) f.b[static_cast<size_t>(i)] = static_cast<float>(b.data()[i]);
  return f;
}

class LowRankCorrectionCodec final : public TensorCodec {
 public:
  LowRankCorrectionCodec(int64_t rank, bool hessian_weighted, std::shared_ptr<const TensorCodec> factors,
                         std::shared_ptr<const TensorCodec> base, const InputHessian* hessian = nullptr)
      : rank_(rank), hessian_weighted_(hessian_weighted), factors_(std::move(factors)), base_(std::move(base)),
        hessian_(hessian) {}

  std::string spec() const override {
    std::string s = base_->spec() + "+lrcorr:rank=" + std::to_string(rank_);
    if (factors_->spec() != LowRankCorrectionRule::kDefaultFactorSpec) s += ",factors=" + factors_->spec();
    return s + (hessian_weighted_ ? ",weight=hessian" : "");
  }
  std::string decoder_spec() const override {
    std::string s = base_->decoder_spec() + "+lrcorr:rank=" + std::to_string(rank_);
    return factors_->spec() != LowRankCorrectionRule::kDefaultFactorSpec ? s + ",factors=" + factors_->spec() : s;
  }
  bool is_passthrough() const override { return false; }

  FittedCodecs fit(std::span<const FitTensor> tensors, const FitOptions& options) const override {
    FittedCodecs bases = base_->fit(tensors, options);
    FittedCodecs out;
    for (size_t i = 0; i < tensors.size(); ++i) {
      require(!hessian_weighted_ || tensors[i].hessian != nullptr,
              "tensor '" + tensors[i].name + "': lrcorr weight=hessian needs its calibration Hessian, and there is none");
      out.push_back(std::make_shared<LowRankCorrectionCodec>(rank_, hessian_weighted_, factors_, bases[i], tensors[i].hessian));
    }
    return out;
  }

  std::string clamped(const TensorShape& shape) const override {
    const std::string note = rank_clamp_note(rank_, shape);
    return note.empty() ? base_->clamped(shape) : note;
  }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    int64_t rows = shape.rows(), cols = shape.cols();
    auto streams = base_->encode(values, shape);
    auto error = decode_streams(*base_, streams, shape);
    for (size_t i = 0; i < error.size(); ++i) error[i] = values[i] - error[i];
    int64_t rank = std::min(rank_, std::min(rows, cols));
    LowRankFactors factors;  // rank 0: nothing to correct
    if (rank > 0 && hessian_weighted_) {
      require(hessian_ != nullptr, spec() + " needs calibration: give compress --calibration H.safetensors");
      factors = hessian_weighted_factors(error, rows, cols, rank, *hessian_);
    } else if (rank > 0) {
      factors = leading_factors(thin_svd(error, rows, cols), rank);
    }
    encode_factors(*factors_, factors, rows, cols, streams);
    return streams;
  }

 private:
  int64_t rank_;
  bool hessian_weighted_;
  std::shared_ptr<const TensorCodec> factors_;
  std::shared_ptr<const TensorCodec> base_;
  const InputHessian* hessian_;  // set by fit; lives as long as the calibration
};

}  // namespace

std::unique_ptr<TensorCodec> make_lowrank_correction_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> base) {
  const LowRankCorrectionRule rule = lowrank_correction_rule(stage);
  return std::make_unique<LowRankCorrectionCodec>(rule.rank, rule.hessian_weighted, make_tensor_codec(rule.factor_spec),
                                                  std::move(base));
}

}  // namespace pgolf
