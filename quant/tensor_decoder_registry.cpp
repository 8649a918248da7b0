// The table of tensor decoders: what an artifact's decoder specs may name. A codec is one row here,
// one in tensor_codec_registry.cpp, and its encoder and decoder files (gptq, which only chooses
// symbols, has no decoder: its artifacts name their grid's).
#include "quant/tensor_decoder_registry.h"

#include "quant/codec_pipeline.h"

namespace pgolf {

namespace {

struct TensorDecoderEntry {
  std::string_view name;
  bool takes_number;
  Role role;
  std::string_view usage;
  std::unique_ptr<TensorDecoder> (*make_leaf)(const SpecStage&);
  std::unique_ptr<TensorDecoder> (*make_composite)(const SpecStage&, std::unique_ptr<TensorDecoder>);
};

constexpr TensorDecoderEntry kTensorDecoders[] = {
    {"int", true, Role::Leaf, "intN", make_int_n_decoder, nullptr},
    {"fp16", false, Role::Leaf, "fp16", make_float_decoder, nullptr},
    {"bf16", false, Role::Leaf, "bf16", make_float_decoder, nullptr},
    {"fp32", false, Role::Leaf, "fp32", make_float_decoder, nullptr},
    {"kmeans", false, Role::Leaf, "kmeans", make_kmeans_decoder, nullptr},
    {"ecsq", false, Role::Leaf, "ecsq", make_ecsq_decoder, nullptr},
    {"prune", false, Role::Wrapper, "prune+INNER", nullptr, make_prune_decoder},
    {"lowrank", false, Role::Wrapper, "lowrank+INNER", nullptr, make_lowrank_decoder},
    {"lrcorr", false, Role::Corrector, "BASE+lrcorr", nullptr, make_lowrank_correction_decoder},
};

}  // namespace

int64_t TensorShape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}
int64_t TensorShape::rows() const { return dims.size() < 2 ? 1 : dims[0]; }
int64_t TensorShape::cols() const { return rows() == 0 ? 0 : numel() / rows(); }

std::unique_ptr<TensorDecoder> make_tensor_decoder(std::string_view spec) {
  return CodecPipeline<TensorDecoder, TensorDecoderEntry>(kTensorDecoders, "codec").build(spec);
}

}  // namespace pgolf
