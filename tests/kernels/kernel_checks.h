// What the kernel tests share: NaN-poisoned outputs, the relative error against a CPU twin, and a
// fixture with fresh random inputs every run (the seed is in any failure message). GPU only.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <cuda_bf16.h>

#include "gpu/cuda_eval.h"
#include "kernels/device_buffer.h"

namespace pgolf::test {

inline constexpr double kTolerance = 1e-4;
// A bf16 output holds the twin's value rounded to 8 significant bits: at most 2^-9 relative each.
inline constexpr double kBf16RoundingTolerance = 3e-3;

// values as floats (from bf16 or float).
template <typename T>
std::vector<float> floats(const std::vector<T>& values) {
  std::vector<float> out;
  for (const T& v : values) out.push_back(float(v));
  return out;
}

// values rounded to bf16 (to nearest even), as a bf16 kernel input.
inline std::vector<__nv_bfloat16> bf16_values(const std::vector<float>& values) {
  std::vector<__nv_bfloat16> out;
  for (float v : values) out.push_back(__float2bfloat16_rn(v));
  return out;
}

// Every byte 0xFF: a NaN (float or bf16) wherever a kernel fails to write.
template <typename T = float>
cuda::DeviceBuffer<T> poisoned(size_t count) {
  cuda::DeviceBuffer<T> buffer(count);
  PGOLF_CUDA_CHECK(cudaMemset(buffer.data(), 0xFF, count * sizeof(T)));
  return buffer;
}

// ||got - want|| / ||want||; infinite when got holds a NaN or an infinity.
template <typename T>
double relative_error(const std::vector<T>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(double(got[i]))) return std::numeric_limits<double>::infinity();
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

template <typename T>
void expect_close(const std::string& what, const std::vector<T>& got, const std::vector<double>& want,
                  double tolerance = kTolerance) {
  const double error = relative_error(got, want);
  std::printf("  %-56s relative error %.3g\n", what.c_str(), error);
  EXPECT_LT(error, tolerance) << what;
}

// q and KV heads and head_dim for qk_norm_rope and its backward (a thread per 8 columns of a head):
// rows that fill a block of 256 threads (4/2 x 8, 4/2 x 64), rows that leave idle threads in it
// (3/1 x 8: 5 threads a row; 6/3 x 32), heads of 16 and 32 threads (128, 256).
struct HeadShape {
  int heads, kv_heads, head_dim;
};
inline std::vector<HeadShape> qk_shapes() {
  return {{4, 2, 8}, {3, 1, 8}, {4, 2, 64}, {6, 3, 32}, {2, 1, 128}, {1, 1, 256}};
}
// The rotated dims qk_norm_rope takes at a head_dim: all of them, and 8 where that is fewer.
inline std::vector<int> rotated_dims_of(int head_dim) {
  if (head_dim > 8) return {head_dim, 8};
  return {head_dim};
}
inline std::string shape_name(const HeadShape& s) {
  return std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + " heads x " + std::to_string(s.head_dim);
}

class CudaKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  }
  std::vector<float> normal(size_t count, float stddev) {
    std::normal_distribution<float> dist(0.f, stddev);
    std::vector<float> v(count);
    for (float& x : v) x = dist(rng_);
    return v;
  }
  std::vector<uint16_t> ids(size_t count, int below) {
    std::uniform_int_distribution<int> dist(0, below - 1);
    std::vector<uint16_t> v(count);
    for (uint16_t& x : v) x = static_cast<uint16_t>(dist(rng_));
    return v;
  }

 private:
  // Fresh inputs every run; the seed is in the failure message.
  const uint64_t seed_ = std::random_device{}();
  std::mt19937_64 rng_{seed_};
  ::testing::ScopedTrace trace_{__FILE__, __LINE__, "random seed " + std::to_string(seed_)};
};

}  // namespace pgolf::test
