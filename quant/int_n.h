// Int-N per row: symmetric, values in ±(2^(N-1)-1), one fp16 scale per row, chosen by a
// clip rule; a scalar grid (quant/scalar_grid.h), so it rounds to nearest or under GPTQ. The same
// rule serves the packer and (later) QAT's fake quantizer.
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace pgolf {

enum class ClipMode { AbsMax, Quantile, StdDev, MseSearch };

struct IntNRule {
  int bits = 6;                     // 2..8
  ClipMode clip = ClipMode::AbsMax;
  double clip_param = 0;            // quantile p in (0, 1], or k for k·std

  int qmax() const { return (1 << (bits - 1)) - 1; }
  std::string spec() const;         // "int6", "int5:clip=quantile:0.9999", "int6:clip=std:12.85", "int8:clip=mse"
};

// The fp16 scale (raw bits) of one row under the rule. Throws InputError when the row needs a
// scale beyond fp16's range.
uint16_t choose_row_scale(std::span<const float> row, const IntNRule& rule);
void dequantize_row(std::span<const int8_t> q, float scale, std::span<float> out);

}  // namespace pgolf
