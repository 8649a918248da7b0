// The table of tensor codecs: adding one is one row here and one file beside this one.
#include "quant/tensor_codec_registry.h"

#include <algorithm>

#include "quant/codec_pipeline.h"

namespace pgolf {

namespace {

struct TensorCodecEntry {
  std::string_view name;  // exact name, or a prefix followed by digits (int6)
  bool takes_number;
  Role role;
  std::string_view usage;
  std::string_view examples;  // canonical specs, ';'-separated: what tests, fuzz targets and --help run
  std::unique_ptr<TensorCodec> (*make_leaf)(const SpecStage&);
  std::unique_ptr<TensorCodec> (*make_composite)(const SpecStage&, std::unique_ptr<TensorCodec>);
};

constexpr TensorCodecEntry kTensorCodecs[] = {
    {"int", true, Role::Leaf, "intN[:clip=absmax|quantile:P|std:K|mse,rdo=MU], N = 2..8",
     "int8;int6;int4:clip=quantile:0.999;int5:clip=std:3;int3:clip=mse;int2;int6:clip=quantile:0.999,rdo=0.5", make_int_n_codec,
     nullptr},
    {"fp16", false, Role::Leaf, "fp16", "fp16", make_float_codec, nullptr},
    {"bf16", false, Role::Leaf, "bf16", "bf16", make_float_codec, nullptr},
    {"fp32", false, Role::Leaf, "fp32", "fp32", make_float_codec, nullptr},
    {"kmeans", false, Role::Leaf, "kmeans:k=K[,init=quantile|kmeanspp,groups=rows:R,method=lloyd|exact|ecsq,lambda=L,iters=N,seed=S]",
     "kmeans:k=4;kmeans:k=16,init=kmeanspp;kmeans:k=8,method=exact;kmeans:k=8,groups=rows:2,method=ecsq,lambda=1e-05",
     make_kmeans_codec, nullptr},
    {"ecsq", false, Role::Leaf, "ecsq:relmse=R|bits=B|step=S|totalrelmse=T[,scope=tensor|row,rdo=MU]",
     "ecsq:relmse=0.01;ecsq:bits=3,scope=row;ecsq:step=0.01;ecsq:totalrelmse=0.001;ecsq:step=0.01,rdo=0.5", make_ecsq_codec,
     nullptr},
    {"prune", false, Role::Wrapper, "prune:F[,scope=tensor|row]+INNER or prune:threshold=T+INNER",
     "prune:0.1+int6;prune:threshold=0.01+int4;prune:0.5,scope=row+fp16", nullptr, make_prune_codec},
    {"lowrank", false, Role::Wrapper, "lowrank:rank=R|energy=E+INNER (float factors: +fp16)",
     "lowrank:rank=8+fp16;lowrank:energy=0.9+int8", nullptr, make_lowrank_codec},
    {"gptq", false, Role::Wrapper, "gptq[:order=act|natural,damp=D,block=B]+GRID (GRID intN or ecsq; needs --calibration)",
     "gptq+int6;gptq:order=natural+ecsq:step=0.01;gptq+ecsq:step=0.01,rdo=0.5;gptq+ecsq:step=0.01+lrcorr:rank=1,weight=hessian", nullptr,
     make_gptq_codec},
    {"lrcorr", false, Role::Corrector, "BASE+lrcorr:rank=R[,factors=SPEC,weight=plain|hessian] (factors int8 by default)",
     "int6+lrcorr:rank=2;int4+lrcorr:rank=1,factors=fp16", nullptr, make_lowrank_correction_codec},
};

}  // namespace

std::vector<TensorCodecRow> tensor_codec_table() {
  std::vector<TensorCodecRow> rows;
  for (const auto& e : kTensorCodecs) {
    TensorCodecRow row{std::string(e.usage), {}};
    for (size_t at = 0; at <= e.examples.size();) {
      const size_t end = std::min(e.examples.find(';', at), e.examples.size());
      row.examples.emplace_back(e.examples.substr(at, end - at));
      at = end + 1;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::unique_ptr<TensorCodec> make_tensor_codec(std::string_view spec) {
  return CodecPipeline<TensorCodec, TensorCodecEntry>(kTensorCodecs, "codec").build(spec);
}

}  // namespace pgolf
