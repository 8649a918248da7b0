// RoPE's cos and sin tables, computed on the host once for every engine: the CPU reference model
// (trainer/model.cpp) and the CUDA kernels (qk_norm_rope) read the same floats.
#pragma once
#include <vector>

namespace pgolf {

// cos and sin [positions, head_dim / 2], row-major, as the reference computes them in float32:
// inv_freq[j] = 1 / base^(2j / R) over the R = rotated_dims dims that turn, angle = position *
// inv_freq[j]; the pairs from R / 2 on (partial RoPE) get cos 1 and sin 0.
struct RopeTable {
  std::vector<float> cos, sin;
};
RopeTable rope_table(int positions, int head_dim, int rotated_dims, double base);

}  // namespace pgolf
