#include "quant/scalar_grid.h"

namespace pgolf {

std::vector<Stream> ScalarGridCodec::encode(std::span<const float> values, const TensorShape& shape) const {
  require_finite(values, spec());
  ScalarGrid g = grid(values, shape);
  const int64_t cols = shape.cols();
  std::vector<int32_t> symbols(values.size());
  for (size_t i = 0; i < values.size(); ++i) symbols[i] = g.round(static_cast<int64_t>(i) / cols, values[i]);
  return write(symbols, g, shape);
}

}  // namespace pgolf
