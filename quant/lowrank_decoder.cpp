// The low-rank decoder (lowrank.cpp): W = A·B, the rank from its own stream, A's and B's streams
// decoded by INNER; and the factor product lrcorr decodes with too.
#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class LowRankDecoder final : public TensorDecoder {
 public:
  LowRankDecoder(LowRankRule rule, std::unique_ptr<TensorDecoder> inner) : rule_(rule), inner_(std::move(inner)) {}
  size_t stream_count() const override { return 1 + 2 * inner_->stream_count(); }
  bool keeps_zeros() const override { return false; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    const std::string spec = rule_.spec();
    int64_t rows = shape.rows(), cols = shape.cols();
    require(streams.size() == stream_count() && streams[0].size() == 4, spec + ": the streams are not a rank and two factors");
    uint32_t rank = 0;
    for (int i = 0; i < 4; ++i) rank |= static_cast<uint32_t>(streams[0][static_cast<size_t>(i)]) << (8 * i);
    int64_t max_rank = std::min(rows, cols);
    if (rule_.rank > 0) max_rank = std::min(max_rank, rule_.rank);
    require(rank <= max_rank, spec + ": rank " + std::to_string(rank) + " is beyond what this shape allows");
    std::vector<float> out(static_cast<size_t>(shape.numel()), 0.f);
    add_decoded_factors(*inner_, streams.subspan(1), rows, rank, cols, out);
    return out;
  }

 private:
  LowRankRule rule_;
  std::unique_ptr<TensorDecoder> inner_;
};

}  // namespace

std::string LowRankRule::spec() const {
  char buf[64];
  if (rank > 0)
    std::snprintf(buf, sizeof buf, "lowrank:rank=%lld", static_cast<long long>(rank));
  else
    std::snprintf(buf, sizeof buf, "lowrank:energy=%.10g", energy);
  return buf;
}

LowRankRule lowrank_rule(const SpecStage& stage) {
  const std::string kUsage = " (accepted: lowrank:rank=R with R >= 1, or lowrank:energy=E with E in (0, 1])";
  require(stage.params.size() == 1, "lowrank takes one parameter" + kUsage);
  const auto& [key, value] = stage.params[0];
  if (key == "rank") {
    long rank = parse_integer(value, "lowrank rank");
    require(rank >= 1, "lowrank: rank " + value + " is below 1" + kUsage);
    return {rank, 0.0};
  }
  if (key == "energy") {
    double energy = parse_number(value, "lowrank energy");
    require(energy > 0 && energy <= 1, "lowrank: energy " + value + " is not in (0, 1]" + kUsage);
    return {0, energy};
  }
  throw InputError("lowrank: unknown parameter '" + (key.empty() ? value : key) + "'" + kUsage);
}


void add_product(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t rank, int64_t cols,
                 std::span<float> out) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = out.data() + i * cols;
    for (int64_t j = 0; j < rank; ++j) {
      float aij = a[static_cast<size_t>(i * rank + j)];
      const float* brow = b.data() + j * cols;
      for (int64_t c = 0; c < cols; ++c) row[c] += aij * brow[c];
    }
  }
}

void add_decoded_factors(const TensorDecoder& factors, std::span<const std::span<const uint8_t>> streams, int64_t rows,
                         int64_t rank, int64_t cols, std::span<float> out) {
  const size_t per_factor = factors.stream_count();
  require(streams.size() == 2 * per_factor, "the low-rank factors have " + std::to_string(streams.size()) +
                                                " streams, not " + std::to_string(2 * per_factor));
  auto a = factors.decode(streams.first(per_factor), TensorShape{{rows, rank}});
  auto b = factors.decode(streams.subspan(per_factor), TensorShape{{rank, cols}});
  add_product(a, b, rows, rank, cols, out);
}

std::unique_ptr<TensorDecoder> make_lowrank_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> inner) {
  return std::make_unique<LowRankDecoder>(lowrank_rule(stage), std::move(inner));
}

}  // namespace pgolf
