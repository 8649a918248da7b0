// The table of tensor codecs: adding one is one row here and one file beside this one.
#include "quant/tensor_codec_registry.h"

#include <algorithm>

#include "core/error.h"

namespace pgolf {

namespace {

// A spec is a pipeline (core/spec.h). A leaf codec stands alone ("int6"); a wrapper takes the
// rest of the pipeline as its inner codec ("prune:0.03+int6"); a corrector takes everything
// before it as its base codec ("int6+lrcorr:rank=4").
enum class Role { Leaf, Wrapper, Corrector };

using LeafFactory = std::unique_ptr<TensorCodec> (*)(const SpecStage&);
using CompositeFactory = std::unique_ptr<TensorCodec> (*)(const SpecStage&, std::unique_ptr<TensorCodec>);

struct TensorCodecEntry {
  std::string_view name;  // exact name, or a prefix followed by digits (int6)
  bool takes_number;
  Role role;
  std::string_view usage;
  std::string_view examples;        // canonical specs, ';'-separated: what tests, fuzz targets and --help run
  LeafFactory make_leaf;            // for Role::Leaf
  CompositeFactory make_composite;  // for wrappers and correctors
};

constexpr TensorCodecEntry kTensorCodecs[] = {
    {"int", true, Role::Leaf, "intN[:clip=absmax|quantile:P|std:K|mse], N = 2..8",
     "int8;int6;int4:clip=quantile:0.999;int5:clip=std:3;int3:clip=mse;int2", make_int_n_codec, nullptr},
    {"fp16", false, Role::Leaf, "fp16", "fp16", make_float_codec, nullptr},
    {"bf16", false, Role::Leaf, "bf16", "bf16", make_float_codec, nullptr},
    {"fp32", false, Role::Leaf, "fp32", "fp32", make_float_codec, nullptr},
    {"kmeans", false, Role::Leaf, "kmeans:k=K[,init=quantile|kmeanspp,groups=rows:R,method=lloyd|exact|ecsq,lambda=L,iters=N,seed=S]",
     "kmeans:k=4;kmeans:k=16,init=kmeanspp;kmeans:k=8,method=exact;kmeans:k=8,groups=rows:2,method=ecsq,lambda=1e-05",
     make_kmeans_codec, nullptr},
    {"ecsq", false, Role::Leaf, "ecsq:relmse=R|bits=B|step=S|totalrelmse=T[,scope=tensor|row]",
     "ecsq:relmse=0.01;ecsq:bits=3,scope=row;ecsq:step=0.01;ecsq:totalrelmse=0.001", make_ecsq_codec, nullptr},
    {"prune", false, Role::Wrapper, "prune:F[,scope=tensor|row]+INNER or prune:threshold=T+INNER",
     "prune:0.1+int6;prune:threshold=0.01+int4;prune:0.5,scope=row+fp16", nullptr, make_prune_codec},
    {"lowrank", false, Role::Wrapper, "lowrank:rank=R|energy=E+INNER (float factors: +fp16)",
     "lowrank:rank=8+fp16;lowrank:energy=0.9+int8", nullptr, make_lowrank_codec},
    {"gptq", false, Role::Wrapper, "gptq[:order=act|natural,damp=D,block=B]+GRID (GRID intN or ecsq; needs --calibration)",
     "gptq+int6;gptq:order=natural+ecsq:step=0.01;gptq+ecsq:step=0.01+lrcorr:rank=1,weight=hessian", nullptr,
     make_gptq_codec},
    {"lrcorr", false, Role::Corrector, "BASE+lrcorr:rank=R[,factors=SPEC,weight=plain|hessian] (factors int8 by default)",
     "int6+lrcorr:rank=2;int4+lrcorr:rank=1,factors=fp16", nullptr, make_lowrank_correction_codec},
};

bool matches(const TensorCodecEntry& e, std::string_view name) {
  if (!e.takes_number) return name == e.name;
  return name.size() > e.name.size() && name.starts_with(e.name) &&
         name.find_first_not_of("0123456789", e.name.size()) == std::string_view::npos;
}

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

namespace {

const TensorCodecEntry& find_entry(const SpecStage& stage, std::string_view spec) {
  for (const auto& e : kTensorCodecs)
    if (matches(e, stage.name)) return e;
  std::string known;
  for (const auto& e : kTensorCodecs) known += (known.empty() ? "" : ", ") + std::string(e.usage);
  throw InputError("unknown codec '" + std::string(spec) + "' (known: " + known + ")");
}

std::unique_ptr<TensorCodec> build(std::span<const SpecStage> stages, std::string_view spec) {
  const auto& last = find_entry(stages.back(), spec);
  if (last.role == Role::Corrector) {
    require(stages.size() >= 2, "codec '" + std::string(spec) + "': " + stages.back().name + " corrects a codec before it");
    return last.make_composite(stages.back(), build(stages.first(stages.size() - 1), spec));
  }
  const auto& first = find_entry(stages.front(), spec);
  if (first.role == Role::Wrapper) {
    require(stages.size() >= 2, "codec '" + std::string(spec) + "': " + stages.front().name + " needs an inner codec after '+'");
    return first.make_composite(stages.front(), build(stages.subspan(1), spec));
  }
  if (stages.size() > 1)
    throw InputError("codec '" + std::string(spec) + "': '" + stages.front().name + "' cannot be followed by '+" +
                     stages[1].name + "'");
  return first.make_leaf(stages.front());
}

}  // namespace

std::unique_ptr<TensorCodec> make_tensor_codec(std::string_view spec) {
  auto stages = parse_spec(spec);
  return build(stages, spec);
}

}  // namespace pgolf
