// Low-rank factorization, a wrapper: "lowrank:rank=R+INNER" or "lowrank:energy=E+INNER" stores the
// truncated SVD of the [rows, cols] matrix, W ≈ A·B with A = U_r·S_r [rows, r] and B = V_rᵀ [r, cols],
// each factor encoded by INNER (whose per-row scales are then per row of A and of B). rank=R keeps
// min(R, rows, cols) components; energy=E the fewest whose squared singular values hold at least E
// of the total. Float factors are spelt out like any other inner codec: "lowrank:rank=64+fp16".
// Streams: r as 4 bytes little-endian (group "lowrank.meta"), A's streams, B's streams.
#include <algorithm>

#include "core/error.h"
#include "quant/svd.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class LowRankCodec final : public TensorCodec {
 public:
  LowRankCodec(LowRankRule rule, std::unique_ptr<TensorCodec> inner) : rule_(rule), inner_(std::move(inner)) {}

  std::string spec() const override { return rule_.spec() + "+" + inner_->spec(); }
  std::string decoder_spec() const override { return rule_.spec() + "+" + inner_->decoder_spec(); }
  bool is_passthrough() const override { return false; }

  std::string clamped(const TensorShape& shape) const override { return rank_clamp_note(rule_.rank, shape); }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    int64_t rows = shape.rows(), cols = shape.cols();
    auto svd = thin_svd(values, rows, cols);
    int64_t rank = rule_.rank > 0 ? std::min(rule_.rank, std::min(rows, cols)) : rank_for_energy(svd.singular_values, rule_.energy);
    auto factors = leading_factors(svd, rank);
    // An SVD of values spanning the whole float range can lose them (found by fuzzing): refuse
    // rather than store factors that decode to NaN.
    require_finite(factors.a, spec());
    require_finite(factors.b, spec());
    Stream meta{"lowrank.meta", std::vector<uint8_t>(4), 1};
    for (int i = 0; i < 4; ++i) meta.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(static_cast<uint32_t>(rank) >> (8 * i));
    std::vector<Stream> streams;
    streams.push_back(std::move(meta));
    encode_factors(*inner_, factors, rows, cols, streams);
    return streams;
  }

 private:
  LowRankRule rule_;
  std::unique_ptr<TensorCodec> inner_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_lowrank_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner) {
  return std::make_unique<LowRankCodec>(lowrank_rule(stage), std::move(inner));
}

}  // namespace pgolf
