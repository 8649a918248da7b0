// A per-element scalar grid: element (r, c) decodes as symbol · step[r], |symbol| <= max_symbol.
// int-N (fp16 scale per row, clamped to ±qmax) and ECSQ (one step, 16-bit symbols) are grids. A
// grid codec fixes its grid from the weights, then rounds onto it; GPTQ keeps the grid and
// chooses the symbols itself, and the same codec writes them, so the decoder never changes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "quant/tensor_codec.h"

namespace pgolf {

struct ScalarGrid {
  std::vector<float> row_steps;  // one per row (a tensor-wide step repeated)
  int32_t max_symbol = 0;

  // The nearest symbol (ties to even) of x in row r, clamped; 0 where the step is 0. x · (1/step)
  // in float, as every grid codec has always rounded.
  int32_t round(int64_t row, float x) const {
    float step = row_steps[static_cast<size_t>(row)];
    if (step == 0) return 0;
    float m = static_cast<float>(max_symbol);
    return static_cast<int32_t>(std::clamp(std::nearbyint(x * (1.0f / step)), -m, m));
  }
  float value(int64_t row, int32_t symbol) const { return static_cast<float>(symbol) * row_steps[static_cast<size_t>(row)]; }
};

class ScalarGridCodec : public TensorCodec {
 public:
  // The grid for these weights (scales and steps chosen from them). Every value is finite.
  virtual ScalarGrid grid(std::span<const float> values, const TensorShape& shape) const = 0;
  // The streams of these symbols (row-major, on `grid`), as decode() reads them.
  virtual std::vector<Stream> write(std::span<const int32_t> symbols, const ScalarGrid& grid,
                                    const TensorShape& shape) const = 0;
  // Round to nearest: write(round(values on grid(values))).
  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override;
};

}  // namespace pgolf
