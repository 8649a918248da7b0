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

std::vector<float> decode_streams(const TensorCodec& codec, const std::vector<Stream>& streams, const TensorShape& shape) {
  std::vector<std::span<const uint8_t>> views;
  for (const auto& s : streams) views.emplace_back(s.bytes);
  return codec.decode(views, shape);
}

}  // namespace pgolf
