// A portable source of random numbers: mt19937_64's output is fixed by the standard, the
// standard distributions are not, so the conversions are spelt out here.
#pragma once
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace pgolf {

class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {  // Box-Muller
    double u = 1.0 - uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * uniform());
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace pgolf
