#include "core/rope_table.h"

#include <cmath>

namespace pgolf {

RopeTable rope_table(int positions, int head_dim, int rotated_dims, double base) {
  const int half = head_dim / 2;
  RopeTable table{std::vector<float>(static_cast<size_t>(positions) * half, 1.0f),
                  std::vector<float>(static_cast<size_t>(positions) * half, 0.0f)};
  for (int j = 0; j < rotated_dims / 2; ++j) {
    float inv_freq =
        1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * j) / static_cast<float>(rotated_dims));
    for (int t = 0; t < positions; ++t) {
      float angle = static_cast<float>(t) * inv_freq;
      table.cos[static_cast<size_t>(t) * half + j] = static_cast<float>(std::cos(static_cast<double>(angle)));
      table.sin[static_cast<size_t>(t) * half + j] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return table;
}

}  // namespace pgolf
