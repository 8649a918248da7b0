// The factories behind make_tensor_decoder, one per decoder file, and the spec readers that
// encoder and decoder share, so both accept exactly the same parameters.
#pragma once
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/spec.h"
#include "quant/ecsq.h"
#include "quant/int_n.h"
#include "quant/kmeans.h"
#include "quant/tensor_decoder.h"

namespace pgolf {

std::unique_ptr<TensorDecoder> make_int_n_decoder(const SpecStage& stage);
std::unique_ptr<TensorDecoder> make_float_decoder(const SpecStage& stage);
std::unique_ptr<TensorDecoder> make_kmeans_decoder(const SpecStage& stage);
std::unique_ptr<TensorDecoder> make_ecsq_decoder(const SpecStage& stage);
std::unique_ptr<TensorDecoder> make_prune_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> inner);
std::unique_ptr<TensorDecoder> make_lowrank_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> inner);
std::unique_ptr<TensorDecoder> make_lowrank_correction_decoder(const SpecStage& stage, std::unique_ptr<TensorDecoder> base);

IntNRule int_n_rule(const SpecStage& stage);
DType float_codec_type(const SpecStage& stage);  // fp16, bf16, fp32
KmeansRule kmeans_rule(const SpecStage& stage);
EcsqRule ecsq_rule(const SpecStage& stage);

struct PruneRule {
  bool by_threshold = false;
  double fraction = 0;    // of the elements, per tensor or per row
  bool per_row = false;
  double threshold = 0;   // |w| < threshold becomes 0
  std::string spec() const;
};
PruneRule prune_rule(const SpecStage& stage);

struct LowRankRule {
  int64_t rank = 0;    // > 0 keeps that many components; otherwise energy chooses
  double energy = 0;
  std::string spec() const;
};
LowRankRule lowrank_rule(const SpecStage& stage);

struct LowRankCorrectionRule {
  static constexpr const char* kDefaultFactorSpec = "int8";
  int64_t rank = 0;
  std::string factor_spec = kDefaultFactorSpec;  // a one-stage codec
  bool hessian_weighted = false;                 // the encoder's choice; decoding is the same
};
LowRankCorrectionRule lowrank_correction_rule(const SpecStage& stage);

// out[rows, cols] += a[rows, rank]·b[rank, cols] in float, summing over rank in ascending order
// (the same bytes on every run).
void add_product(std::span<const float> a, std::span<const float> b, int64_t rows, int64_t rank, int64_t cols,
                 std::span<float> out);
// out[rows, cols] += A·B, A's streams then B's decoded by `factors` (2 · its stream_count() streams).
void add_decoded_factors(const TensorDecoder& factors, std::span<const std::span<const uint8_t>> streams, int64_t rows,
                         int64_t rank, int64_t cols, std::span<float> out);

}  // namespace pgolf
