// One rounding rule for the CPU and the GPU: the symbol of x on a scalar grid row (step, clamp to
// ±max_symbol, and the optional rate model of rate-aware rounding), as ScalarGrid::round and the
// CUDA GPTQ kernel both compute it. Plain data and no standard library, so nvcc compiles it for
// the device; products and sums are rounded one at a time (no fused multiply-add) so both sides
// give the same float bits.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define PGOLF_HOST_DEVICE __host__ __device__
#else
#define PGOLF_HOST_DEVICE
#endif

namespace pgolf {

struct GridRateModel {
  float rdo = 0;                      // 0: round to nearest
  int32_t offset = 0;                 // bits[q + offset] for |q| <= offset
  const float* bits = nullptr;
  float escape = 0;                   // bits of |q| > offset
};

PGOLF_HOST_DEVICE inline float mul_rounded(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

PGOLF_HOST_DEVICE inline float add_rounded(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// The value a symbol decodes to: symbol · step, in float.
PGOLF_HOST_DEVICE inline float grid_value(int32_t symbol, float step) { return mul_rounded(static_cast<float>(symbol), step); }

// The nearest symbol (ties to even) of x on `step`, clamped to ±max_symbol; 0 where the step is 0.
// With a rate model, the neighbour of least (x/step − q)² + rdo · scale · bits(q).
PGOLF_HOST_DEVICE inline int32_t round_on_grid(float x, float step, int32_t max_symbol, const GridRateModel& rate,
                                               float scale) {
  if (step == 0) return 0;
  const float m = static_cast<float>(max_symbol);
  const float t = mul_rounded(x, 1.0f / step);
  if (rate.rdo == 0) return static_cast<int32_t>(fminf(fmaxf(rintf(t), -m), m));
  const float lo = fminf(fmaxf(floorf(t), -m), m), hi = fminf(fmaxf(lo + 1, -m), m);
  auto cost = [&](float q) {
    const int32_t s = static_cast<int32_t>(q);
    const float bits = (s <= rate.offset && s >= -rate.offset) ? rate.bits[s + rate.offset] : rate.escape;
    const float d = t - q;
    return add_rounded(mul_rounded(d, d), mul_rounded(mul_rounded(rate.rdo, scale), bits));
  };
  return static_cast<int32_t>(cost(hi) < cost(lo) ? hi : lo);
}

}  // namespace pgolf
