// What the row-wise kernels share: one warp per row (or per head of a row), eight warps a block,
// warp reductions, and the grid sizes of row and grid-stride elementwise kernels.
#pragma once
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

namespace pgolf::cuda {

inline constexpr int kWarp = 32;
inline constexpr int kWarpsPerBlock = 8;
inline constexpr int kThreadsPerBlock = kWarp * kWarpsPerBlock;

__device__ inline float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline double warp_sum(double v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The warp's item: a row, or a (row, head) pair.
__device__ inline int64_t warp_item() { return int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; }
__device__ inline int lane() { return threadIdx.x % kWarp; }

// 1 / sqrt(mean(x^2) + eps) of x[0..width), summed by the whole warp (eps as F.rms_norm's for fp32).
__device__ inline float warp_inv_rms(const float* x, int width) {
  float sum = 0;
  for (int j = lane(); j < width; j += kWarp) sum += x[j] * x[j];
  return 1.0f / sqrtf(warp_sum(sum) / float(width) + FLT_EPSILON);
}

// Stores v into an output of either precision (bf16: rounded to nearest even), and reads one back.
__device__ inline void put(float* at, float v) { *at = v; }
__device__ inline void put(__nv_bfloat16* at, float v) { *at = __float2bfloat16_rn(v); }
__device__ inline float get(const float* at) { return *at; }
__device__ inline float get(const __nv_bfloat16* at) { return __bfloat162float(*at); }

__device__ inline float softcap(float logit, float cap) { return cap * tanhf(logit / cap); }

// Over the whole warp, of a row of logits z after the softcap: the max, and the sum of exp(z - max)
// in double (the CPU model's log-softmax precision).
struct SoftcapSoftmax {
  float max;
  double sum;
};
__device__ inline SoftcapSoftmax warp_softcap_softmax(const float* z, int vocab, float cap) {
  float max = -INFINITY;
  for (int j = lane(); j < vocab; j += kWarp) max = fmaxf(max, softcap(z[j], cap));
  max = warp_max(max);
  double sum = 0;
  for (int j = lane(); j < vocab; j += kWarp) sum += exp(double(softcap(z[j], cap)) - double(max));
  return {max, warp_sum(sum)};
}

inline unsigned row_blocks(int64_t items) { return unsigned((items + kWarpsPerBlock - 1) / kWarpsPerBlock); }

// Grid-stride elementwise kernels: enough blocks to fill the GPU several times over.
inline unsigned elementwise_blocks(int64_t count) {
  const int64_t blocks = (count + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return unsigned(blocks < 8192 ? blocks : 8192);
}

}  // namespace pgolf::cuda
