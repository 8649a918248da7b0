// RoPE's cos and sin tables, computed on the host once for every engine: the CPU reference model
// (trainer/model.cpp) and the CUDA kernels (qk_norm_rope) read the same floats.
#pragma once
#include <string>
#include <vector>

namespace pgolf {

// How the table is rounded. kFloat32: as the reference computes it in float32. kBf16: as the
// Parameter Golf baseline's train_gpt.py computes it eagerly, because its model.bfloat16() casts
// Rotary's inv_freq buffer: positions, inv_freq, their products and cos/sin each rounded to
// bfloat16 (positions exact only up to 256). kBf16Compiled: as the same script's torch.compile'd
// graph does by Inductor's defaults (a fused pointwise chain runs in float32 and rounds only what it
// stores): inv_freq (a stored buffer) and the stored cos/sin rounded, positions and angles exact.
// A model trained one way scores worse another way.
enum class RopeRounding { kFloat32, kBf16, kBf16Compiled };
// "fp32" / "bf16" / "bf16-compiled" and back; InputError naming the text otherwise.
RopeRounding parse_rope_rounding(const std::string& text);
std::string rope_rounding_name(RopeRounding rounding);

// cos and sin [positions, head_dim / 2], row-major: inv_freq[j] = 1 / base^(2j / R) over the
// R = rotated_dims dims that turn, angle = position * inv_freq[j]; the pairs from R / 2 on (partial
// RoPE) get cos 1 and sin 0.
struct RopeTable {
  std::vector<float> cos, sin;
};
RopeTable rope_table(int positions, int head_dim, int rotated_dims, double base,
                     RopeRounding rounding = RopeRounding::kFloat32);

}  // namespace pgolf
