#include "quant/tensor_codec.h"

#include <cmath>

#include "core/error.h"

namespace pgolf {

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

std::vector<float> TensorCodec::decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const {
  return make_tensor_decoder(decoder_spec())->decode(streams, shape);
}

std::vector<float> decode_streams(const TensorCodec& codec, const std::vector<Stream>& streams, const TensorShape& shape) {
  std::vector<std::span<const uint8_t>> views;
  for (const auto& s : streams) views.emplace_back(s.bytes);
  return codec.decode(views, shape);
}

}  // namespace pgolf
