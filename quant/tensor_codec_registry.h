// The factories behind make_tensor_codec; one per implementation file.
#pragma once
#include <memory>

#include "core/spec.h"
#include "quant/tensor_codec.h"

namespace pgolf {

std::unique_ptr<TensorCodec> make_int_n_codec(const SpecStage& stage);   // int2 .. int8
std::unique_ptr<TensorCodec> make_float_codec(const SpecStage& stage);   // fp16, bf16, fp32
std::unique_ptr<TensorCodec> make_kmeans_codec(const SpecStage& stage);  // kmeans:k=K,...
std::unique_ptr<TensorCodec> make_ecsq_codec(const SpecStage& stage);    // ecsq:relmse=R,...
std::unique_ptr<TensorCodec> make_prune_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner);
std::unique_ptr<TensorCodec> make_lowrank_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner);
std::unique_ptr<TensorCodec> make_gptq_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner);
std::unique_ptr<TensorCodec> make_lowrank_correction_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> base);

}  // namespace pgolf
