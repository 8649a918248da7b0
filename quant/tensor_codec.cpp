#include "quant/tensor_codec.h"

#include <cmath>

#include "core/error.h"

namespace pgolf {

int64_t TensorShape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}
int64_t TensorShape::rows() const { return dims.size() < 2 ? 1 : dims[0]; }
int64_t TensorShape::cols() const { return rows() == 0 ? 0 : numel() / rows(); }

void require_finite(std::span<const float> values, std::string_view codec) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw InputError(std::string(codec) + " refuses non-finite values: element " + std::to_string(i) +
                                          " is " + std::to_string(values[i]) + "; store this tensor as fp32 or bf16");
}

FittedCodecs TensorCodec::fit(std::span<const FitTensor> tensors, const FitOptions&) const {
  std::shared_ptr<const TensorCodec> self = make_tensor_codec(spec());
  return FittedCodecs(tensors.size(), self);
}

FittedCodecs fit_tensor_codec(std::string_view spec, std::span<const FitTensor> tensors, const FitOptions& options) {
  return make_tensor_codec(spec)->fit(tensors, options);
}

std::vector<float> decode_streams(const TensorCodec& codec, const std::vector<Stream>& streams, const TensorShape& shape) {
  std::vector<std::span<const uint8_t>> views;
  for (const auto& s : streams) views.emplace_back(s.bytes);
  return codec.decode(views, shape);
}

}  // namespace pgolf
