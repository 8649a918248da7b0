// The table of tensor codecs: adding one is one row here and one file beside this one.
#include "quant/tensor_codec_registry.h"

#include <cmath>

#include "core/error.h"

namespace pgolf {

namespace {

struct TensorCodecEntry {
  std::string_view name;     // exact name, or a prefix followed by digits (int6)
  bool takes_number;
  std::string_view usage;
  std::unique_ptr<TensorCodec> (*make)(const SpecStage&);
};

constexpr TensorCodecEntry kTensorCodecs[] = {
    {"int", true, "intN[:clip=absmax|quantile:P|std:K|mse], N = 2..8", make_int_n_codec},
    {"fp16", false, "fp16", make_float_codec},
    {"bf16", false, "bf16", make_float_codec},
    {"fp32", false, "fp32", make_float_codec},
};

bool matches(const TensorCodecEntry& e, std::string_view name) {
  if (!e.takes_number) return name == e.name;
  return name.size() > e.name.size() && name.starts_with(e.name) &&
         name.find_first_not_of("0123456789", e.name.size()) == std::string_view::npos;
}

}  // namespace

int64_t TensorShape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}
int64_t TensorShape::rows() const { return dims.size() < 2 ? 1 : dims[0]; }
int64_t TensorShape::cols() const { return rows() == 0 ? 0 : numel() / rows(); }

std::vector<std::string> tensor_codec_names() {
  std::vector<std::string> names;
  for (const auto& e : kTensorCodecs) names.emplace_back(e.usage);
  return names;
}

std::unique_ptr<TensorCodec> make_tensor_codec(std::string_view spec) {
  auto stages = parse_spec(spec);
  require(stages.size() == 1, "codec '" + std::string(spec) + "': pipelines are not supported yet");
  for (const auto& e : kTensorCodecs)
    if (matches(e, stages[0].name)) return e.make(stages[0]);
  std::string known;
  for (const auto& n : tensor_codec_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("unknown codec '" + std::string(spec) + "' (known: " + known + ")");
}

void require_finite(std::span<const float> values, std::string_view codec) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw InputError(std::string(codec) + " refuses non-finite values: element " + std::to_string(i) +
                                          " is " + std::to_string(values[i]) + "; store this tensor as fp32 or bf16");
}

}  // namespace pgolf
