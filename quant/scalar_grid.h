// A per-element scalar grid: element (r, c) decodes as symbol · step[r], |symbol| <= max_symbol.
// int-N (fp16 scale per row, clamped to ±qmax) and ECSQ (one step, 16-bit symbols) are grids. A
// grid codec fixes its grid from the weights, then rounds onto it; GPTQ keeps the grid and
// chooses the symbols itself, and the same codec writes them, so the decoder never changes.
//
// Rate-aware rounding (rdo=μ): the entropy coder spends −log2 p(q) bits on a symbol, so rounding to
// the nearest point is not the best trade of error for bytes. With a rate model, x rounds to the
// one of its two neighbouring symbols that minimises (x/step − q)² + μ · bits(q): values near a
// midpoint go to the likelier (cheaper) symbol, mostly toward zero. bits(q) comes from the symbols
// round-to-nearest gives the same values. At high rate a uniform quantizer trades error for rate at
// dD/dR = −2 ln 2 · step²/12 per element, so μ ≈ 0.12 is the slope the step itself implies.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/spec.h"
#include "core/grid_round.h"
#include "quant/tensor_codec.h"

namespace pgolf {

struct ScalarGrid {
  ScalarGrid(std::vector<float> steps, int32_t max) : row_steps(std::move(steps)), max_symbol(max) {}

  std::vector<float> row_steps;  // one per row (a tensor-wide step repeated)
  int32_t max_symbol = 0;
  // The rate model (empty: round to nearest): bits[q + rate_offset] for |q| <= rate_offset,
  // rate_escape beyond.
  float rdo = 0;
  int32_t rate_offset = 0;
  std::vector<float> rate_bits;
  float rate_escape = 0;

  // The nearest symbol (ties to even) of x in row r, clamped; 0 where the step is 0. x · (1/step)
  // in float, as every grid codec has always rounded. With a rate model, the neighbour of least
  // (x/step − q)² + rdo · scale · bits(q); `scale` weighs rate against this element's error (GPTQ
  // gives columns of more output error per unit of weight error a smaller one).
  int32_t round(int64_t row, float x, float scale = 1) const {
    return round_on_grid(x, row_steps[static_cast<size_t>(row)], max_symbol, rate_model(), scale);
  }
  GridRateModel rate_model() const {
    return rate_bits.empty() ? GridRateModel{} : GridRateModel{rdo, rate_offset, rate_bits.data(), rate_escape};
  }
  float value(int64_t row, int32_t symbol) const { return grid_value(symbol, row_steps[static_cast<size_t>(row)]); }

  // Sets the rate model of `rdo` from the round-to-nearest symbols of `values` ([rows, cols] on
  // this grid); rdo = 0 leaves round to nearest.
  void fit_rates(std::span<const float> values, int64_t cols, float rdo);
};

// The encoder-only "rdo=MU" parameter of a grid codec's spec: removed from `stage` (what is left is
// the decoder's spec) and returned, 0 when absent.
float take_rdo_param(SpecStage& stage);
// `decoder_spec` with ",rdo=MU" appended when MU > 0 (the encoder's spec).
std::string with_rdo_param(const std::string& decoder_spec, float rdo);

class ScalarGridCodec : public TensorCodec {
 public:
  // The grid for these weights (scales and steps chosen from them). Every value is finite.
  virtual ScalarGrid grid(std::span<const float> values, const TensorShape& shape) const = 0;
  // The streams of these symbols (row-major, on `grid`), as decode() reads them.
  virtual std::vector<Stream> write(std::span<const int32_t> symbols, const ScalarGrid& grid,
                                    const TensorShape& shape) const = 0;
  // Round to nearest (or rate-aware, with a rate model): write(round(values on grid(values))).
  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override;
};

}  // namespace pgolf
