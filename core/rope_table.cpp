#include "core/rope_table.h"

#include <cmath>

#include "core/error.h"
#include "core/half.h"

namespace pgolf {

RopeRounding parse_rope_rounding(const std::string& text) {
  for (RopeRounding r : {RopeRounding::kFloat32, RopeRounding::kBf16, RopeRounding::kBf16Compiled})
    if (text == rope_rounding_name(r)) return r;
  throw InputError("RoPE table '" + text + "': fp32, bf16 or bf16-compiled");
}

std::string rope_rounding_name(RopeRounding rounding) {
  switch (rounding) {
    case RopeRounding::kBf16: return "bf16";
    case RopeRounding::kBf16Compiled: return "bf16-compiled";
    default: return "fp32";
  }
}

RopeTable rope_table(int positions, int head_dim, int rotated_dims, double base, RopeRounding rounding) {
  // What is rounded: every step (eager), or only what is stored (inv_freq, cos, sin).
  const bool every = rounding == RopeRounding::kBf16, stored = every || rounding == RopeRounding::kBf16Compiled;
  auto to_bf16 = [](float x) { return bf16_to_float(float_to_bf16(x)); };
  auto round = [&](float x) { return every ? to_bf16(x) : x; };
  auto round_stored = [&](float x) { return stored ? to_bf16(x) : x; };
  const int half = head_dim / 2;
  RopeTable table{std::vector<float>(static_cast<size_t>(positions) * half, 1.0f),
                  std::vector<float>(static_cast<size_t>(positions) * half, 0.0f)};
  for (int j = 0; j < rotated_dims / 2; ++j) {
    const float inv_freq = round_stored(
        1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * j) / static_cast<float>(rotated_dims)));
    for (int t = 0; t < positions; ++t) {
      const float angle = round(round(static_cast<float>(t)) * inv_freq);
      table.cos[static_cast<size_t>(t) * half + j] = round_stored(static_cast<float>(std::cos(static_cast<double>(angle))));
      table.sin[static_cast<size_t>(t) * half + j] = round_stored(static_cast<float>(std::sin(static_cast<double>(angle))));
    }
  }
  return table;
}

}  // namespace pgolf
