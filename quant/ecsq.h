// ECSQ (entropy-coded scalar quantization): one uniform step per tensor or per row, round to
// nearest, no clamp; the symbols' order-0 entropy is what the byte codec (rans) then reaches.
// At high rate a uniform quantizer's squared error is step^2/12 per element whatever the values'
// distribution, so one step shared by all tensors gives the least total squared error for a
// given total entropy: that is "ecsq:totalrelmse=T", whose fit step finds that step for every
// tensor the spec encodes.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pgolf {

// Symbols are stored as int8 when every |q| <= 127, else in 16 bits.
inline constexpr int32_t kEcsqMaxSymbol = 32767;
inline constexpr int32_t kEcsqMaxNarrowSymbol = 127;

enum class EcsqTarget { Step, RelMse, Bits, TotalRelMse };
struct EcsqRule {
  EcsqTarget target = EcsqTarget::RelMse;
  double value = 0;
  bool per_row = false;  // one step per row (relmse and bits only)
  std::string spec() const;
};

// The largest step that gives `tensors` together a relative MSE (sum of squared errors over
// sum of squares) of at most `target`. Every tensor is finite.
float ecsq_shared_step(std::span<const std::span<const float>> tensors, double target);

}  // namespace pgolf
