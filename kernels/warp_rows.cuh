// What the row-wise kernels share: one warp per row (or per head of a row), eight warps a block,
// warp reductions, 16-byte accesses, rows held in registers, and the grid sizes of row and
// grid-stride elementwise kernels.
#pragma once
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/forward_kernels.h"

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

// Stores v into an output of either precision (bf16: rounded to nearest even).
__device__ inline void put(float* at, float v) { *at = v; }
__device__ inline void put(__nv_bfloat16* at, float v) { *at = __float2bfloat16_rn(v); }

// Four consecutive values (16-byte aligned for float, 8-byte for bf16): a float4 in registers.
__device__ inline float4 load4(const float* at) { return *reinterpret_cast<const float4*>(at); }
__device__ inline float4 load4(const __nv_bfloat16* at) {
  const uint2 packed = *reinterpret_cast<const uint2*>(at);
  const float2 low = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.x));
  const float2 high = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.y));
  return make_float4(low.x, low.y, high.x, high.y);
}
__device__ inline void store4(float* at, float4 v) { *reinterpret_cast<float4*>(at) = v; }
__device__ inline void store4(__nv_bfloat16* at, float4 v) {
  const __nv_bfloat162 low = __floats2bfloat162_rn(v.x, v.y), high = __floats2bfloat162_rn(v.z, v.w);
  *reinterpret_cast<uint2*>(at) =
      make_uint2(*reinterpret_cast<const uint32_t*>(&low), *reinterpret_cast<const uint32_t*>(&high));
}
__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// XSA's unit value vector: where (row, KV head) starts in qkv's layout, and 1 / max(|v|, 1e-12).
template <typename T>
__device__ inline const T* xsa_value(const T* qkv, int64_t row, int heads, int kv_heads, int kv, int head_dim) {
  return qkv + row * int64_t(heads + 2 * kv_heads) * head_dim + int64_t(heads + kv_heads + kv) * head_dim;
}
template <typename T>
__device__ inline float xsa_inverse_norm(const T* v, int head_dim) {
  float sum = 0;
  for (int j = lane(); j < head_dim; j += kWarp) sum += to_float(v[j]) * to_float(v[j]);
  return 1.0f / fmaxf(sqrtf(warp_sum(sum)), 1e-12f);
}

__device__ inline float4 operator+(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }
__device__ inline float4 operator-(float4 a, float4 b) { return make_float4(a.x - b.x, a.y - b.y, a.z - b.z, a.w - b.w); }
__device__ inline float4 operator*(float4 a, float4 b) { return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w); }
__device__ inline float4 operator*(float4 a, float s) { return make_float4(a.x * s, a.y * s, a.z * s, a.w * s); }
__device__ inline float dot(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ inline float4 zero4() { return make_float4(0.f, 0.f, 0.f, 0.f); }
// max(v, 0) + slope · min(v, 0): LeakyReLU, and exactly ReLU (zeros +0) at slope 0.
__device__ inline float leaky(float v, float slope) { return fmaxf(v, 0.f) + slope * fminf(v, 0.f); }
__device__ inline float4 leaky4(float4 v, float slope) {
  return make_float4(leaky(v.x, slope), leaky(v.y, slope), leaky(v.z, slope), leaky(v.w, slope));
}

// An elementwise pass over count values, 16 bytes at a time: vector(i) for i = 0, 4, 8, ... over a
// grid stride, then scalar(i) for the last count % 4 (grid: vector_blocks(count)).
template <typename Vector, typename Scalar>
__device__ void grid_stride_by_4(int64_t count, Vector&& vector, Scalar&& scalar) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = 4 * first; i + 3 < count; i += 4 * stride) vector(i);
  for (int64_t i = count / 4 * 4 + first; i < count; i += stride) scalar(i);
}

// A warp's row of `dim` floats (dim a multiple of 4) in registers: lane l holds the float4 at
// columns 4 (l + 32 k) for k < kVectors, where that is inside the row.
__device__ inline int row_column(int k) { return 4 * (lane() + kWarp * k); }

// Runs launch(std::integral_constant<int, V>{}) with V, float4 per lane, the fewest of 1, 2, 4, 8
// or 16 that hold a row of dim floats; throws std::invalid_argument when no V does or dim % 4 != 0.
template <typename Launch>
void with_row_vectors(const char* what, int dim, Launch&& launch) {
  static_assert(16 * 4 * kWarp == 2048, "row_kernels_support_dim's limit");
  if (!row_kernels_support_dim(dim))
    throw std::invalid_argument(std::string(what) + ": the row width " + std::to_string(dim) +
                                " is not a multiple of 4 from 4 to 2048");
  const int per_lane = (dim / 4 + kWarp - 1) / kWarp;
  if (per_lane <= 1) return launch(std::integral_constant<int, 1>{});
  if (per_lane <= 2) return launch(std::integral_constant<int, 2>{});
  if (per_lane <= 4) return launch(std::integral_constant<int, 4>{});
  if (per_lane <= 8) return launch(std::integral_constant<int, 8>{});
  return launch(std::integral_constant<int, 16>{});
}

// Writes row * inv_rms, where inv_rms = 1 / sqrt(sum_sq / dim + eps) and sum_sq is this lane's
// share of the row's squares (summed over the warp here).
template <int kVectors, typename T>
__device__ void warp_write_normed(const float4 (&row)[kVectors], float sum_sq, int dim, T* out) {
  const float inv_rms = 1.0f / sqrtf(warp_sum(sum_sq) / float(dim) + FLT_EPSILON);
#pragma unroll
  for (int k = 0; k < kVectors; ++k)
    if (row_column(k) < dim) store4(out + row_column(k), row[k] * inv_rms);
}

__device__ inline float softcap(float logit, float cap) { return cap * tanhf(logit / cap); }

// Over the whole warp, of a row of logits z after the softcap: the max, and the sum of exp(z - max)
// (each term in float, summed in double as the CPU model's log-softmax).
struct SoftcapSoftmax {
  float max;
  double sum;
};
__device__ inline SoftcapSoftmax warp_softcap_softmax(const float* z, int vocab, float cap) {
  float max = -INFINITY;
  for (int j = lane(); j < vocab; j += kWarp) max = fmaxf(max, softcap(z[j], cap));
  max = warp_max(max);
  double sum = 0;
  for (int j = lane(); j < vocab; j += kWarp) sum += expf(softcap(z[j], cap) - max);
  return {max, warp_sum(sum)};
}

// qk_norm_rope and its backward: a thread per 4 rotation pairs of one head (columns j .. j + 3
// and half + j .. half + j + 3, j a multiple of 4), so that every access is 16 bytes. A head's
// head_dim / 8 threads are adjacent lanes of one warp (head_sum sums over them); a block holds
// whole rows, rounded up to whole warps, and its threads past its rows or past the last row are
// idle but take part in the sums.
struct RopeLane {
  int row, head, j;
  bool active;
  int64_t offset;  // the head's first column in the [rows, (heads + 2 kv_heads) head_dim] layout
};
__device__ inline RopeLane rope_lane(int rows, int rows_per_block, int all_heads, int head_dim) {
  const int per_head = head_dim / 8, per_row = all_heads * per_head;
  const int r = int(threadIdx.x) / per_row, c = int(threadIdx.x) % per_row;
  RopeLane l;
  l.row = int(blockIdx.x) * rows_per_block + r;
  l.head = c / per_head;
  l.j = 4 * (c % per_head);
  l.active = r < rows_per_block && l.row < rows;
  l.offset = (int64_t(l.row) * all_heads + l.head) * head_dim;
  return l;
}
// SmearGate v2: whether row t mixes in the row before it (not at a sequence's first row, nor at a
// BOS when bos >= 0), and the coefficient λ σ(w · x_t[0 : window]) (0 where it does not mix),
// over the whole warp (lanes below window / 4 hold the window's float4).
__device__ inline bool smear_v2_mixes(int64_t row, const uint16_t* ids, int bos, int seq_len) {
  return row % seq_len != 0 && (bos < 0 || ids[row] != bos);
}
__device__ inline float smear_v2_gate(const float* x_t, const float* w, int window) {
  const float z = warp_sum(4 * lane() < window ? dot(load4(x_t + 4 * lane()), load4(w + 4 * lane())) : 0.0f);
  return 1.0f / (1.0f + expf(-z));
}
__device__ inline float smear_v2_coefficient(const float* x_t, const float* w, int window, float lambda, bool mixes) {
  const float gate = smear_v2_gate(x_t, w, window);
  return mixes ? lambda * gate : 0.0f;
}
inline void check_smear_window(const char* what, int window, int dim) {
  if (window <= 0 || window % 4 != 0 || window > 4 * kWarp || window > dim)
    throw std::invalid_argument(std::string(what) + ": the gate's window " + std::to_string(window) +
                                " is not a multiple of 4 up to 128 and the row width");
}

// The columns (within the head) of the lane's first x1 and first x2: rotation pairs p .. p + 3
// (p = l.j) are (p, R/2 + p) for p < R/2 (R = rotated_dims); the pairs after turn by cos 1, sin 0
// and cover the dims from R on the same way, (R + q, R + (head_dim − R)/2 + q) with q = p − R/2.
struct RopeColumns {
  int first, second;
};
__device__ inline RopeColumns rope_columns(int p, int head_dim, int rotated_dims) {
  const int half = rotated_dims / 2;
  if (p < half) return {p, half + p};
  const int q = p - half;
  return {rotated_dims + q, rotated_dims + (head_dim - rotated_dims) / 2 + q};
}

// The sum over an aligned group of `lanes` adjacent lanes (a power of two up to 32; every lane of
// the warp calls it).
__device__ inline float group_sum(float v, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ inline float head_sum(float v, int head_dim) { return group_sum(v, head_dim / 8); }
struct RopeLaunch {
  unsigned blocks;
  int threads, rows_per_block;
};
inline RopeLaunch rope_launch(const char* what, int64_t rows, int heads, int kv_heads, int head_dim,
                              int rotated_dims) {
  if (head_dim < 8 || head_dim > 256 || (head_dim & (head_dim - 1)) != 0)
    throw std::invalid_argument(std::string(what) + ": head_dim " + std::to_string(head_dim) +
                                " is not 8, 16, 32, 64, 128 or 256");
  if (!rope_kernels_support(head_dim, rotated_dims))
    throw std::invalid_argument(std::string(what) + ": RoPE on " + std::to_string(rotated_dims) + " of " +
                                std::to_string(head_dim) + " dims; it takes the whole head or a multiple of 8");
  const int per_row = (heads + 2 * kv_heads) * head_dim / 8;
  if (per_row > 1024 || rows > INT32_MAX)
    throw std::invalid_argument(std::string(what) + ": more than 8,192 q, k and v columns or 2^31 rows");
  const int rows_per_block = per_row < kThreadsPerBlock ? kThreadsPerBlock / per_row : 1;
  return {unsigned((rows + rows_per_block - 1) / rows_per_block), (per_row * rows_per_block + kWarp - 1) / kWarp * kWarp,
          rows_per_block};
}

inline unsigned row_blocks(int64_t items) { return unsigned((items + kWarpsPerBlock - 1) / kWarpsPerBlock); }

// Grid-stride elementwise kernels: enough blocks to fill the GPU several times over.
inline unsigned elementwise_blocks(int64_t count) {
  const int64_t blocks = (count + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return unsigned(blocks < 8192 ? blocks : 8192);
}
inline unsigned vector_blocks(int64_t count) { return elementwise_blocks((count + 3) / 4); }

}  // namespace pgolf::cuda
