// Low-rank factorization, a wrapper: "lowrank:rank=R+INNER" or "lowrank:energy=E+INNER" stores the
// truncated SVD of the [rows, cols] matrix, W ≈ A·B with A = U_r·S_r [rows, r] and B = V_rᵀ [r, cols],
// each factor encoded by INNER (whose per-row scales are then per row of A and of B). rank=R keeps
// min(R, rows, cols) components; energy=E the fewest whose squared singular values hold at least E
// of the total. Float factors are spelt out like any other inner codec: "lowrank:rank=64+fp16".
// Streams: r as 4 bytes little-endian (group "lowrank.meta"), A's streams, B's streams.
#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "quant/svd.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"

namespace pgolf {

namespace {

class LowRankCodec final : public TensorCodec {
 public:
  // rank > 0 keeps that many components; otherwise energy chooses.
  LowRankCodec(int64_t rank, double energy, std::unique_ptr<TensorCodec> inner)
      : rank_(rank), energy_(energy), inner_(std::move(inner)) {}

  std::string spec() const override {
    char buf[64];
    if (rank_ > 0)
      std::snprintf(buf, sizeof buf, "lowrank:rank=%lld", static_cast<long long>(rank_));
    else
      std::snprintf(buf, sizeof buf, "lowrank:energy=%.10g", energy_);
    return std::string(buf) + "+" + inner_->spec();
  }
  bool is_passthrough() const override { return false; }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    int64_t rows = shape.rows(), cols = shape.cols();
    auto svd = thin_svd(values, rows, cols);
    int64_t rank = rank_ > 0 ? std::min(rank_, std::min(rows, cols)) : rank_for_energy(svd.singular_values, energy_);
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

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    int64_t rows = shape.rows(), cols = shape.cols();
    require(!streams.empty() && streams[0].size() == 4, spec() + ": the rank stream is not 4 bytes");
    uint32_t rank = 0;
    for (int i = 0; i < 4; ++i) rank |= static_cast<uint32_t>(streams[0][static_cast<size_t>(i)]) << (8 * i);
    int64_t max_rank = std::min(rows, cols);
    if (rank_ > 0) max_rank = std::min(max_rank, rank_);
    require(rank <= max_rank, spec() + ": rank " + std::to_string(rank) + " is beyond what this shape allows");
    std::vector<float> out(static_cast<size_t>(shape.numel()), 0.f);
    add_decoded_factors(*inner_, streams.subspan(1), rows, rank, cols, out);
    return out;
  }

 private:
  int64_t rank_;
  double energy_;
  std::unique_ptr<TensorCodec> inner_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_lowrank_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner) {
  const std::string kUsage = " (accepted: lowrank:rank=R with R >= 1, or lowrank:energy=E with E in (0, 1])";
  require(stage.params.size() == 1, "lowrank takes one parameter" + kUsage);
  const auto& [key, value] = stage.params[0];
  if (key == "rank") {
    long rank = parse_integer(value, "lowrank rank");
    require(rank >= 1, "lowrank: rank " + value + " is below 1" + kUsage);
    return std::make_unique<LowRankCodec>(rank, 0.0, std::move(inner));
  }
  if (key == "energy") {
    double energy = parse_number(value, "lowrank energy");
    require(energy > 0 && energy <= 1, "lowrank: energy " + value + " is not in (0, 1]" + kUsage);
    return std::make_unique<LowRankCodec>(0, energy, std::move(inner));
  }
  throw InputError("lowrank: unknown parameter '" + (key.empty() ? value : key) + "'" + kUsage);
}

}  // namespace pgolf
