// Training's row-wise, reduction and optimizer kernels (attention's backward is in
// attention_backward.cu).
#include <cfloat>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/train_kernels.h"
#include "kernels/warp_rows.cuh"

namespace pgolf::cuda {

namespace {

#define PGOLF_GRID_STRIDE(i, count) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (count); i += int64_t(gridDim.x) * blockDim.x)

// dx = inv_rms * (dy - y * mean(dy * y)) with y = x * inv_rms, over one warp's row of width.
__device__ void warp_rms_norm_backward(const float* x, const float* dy, int width, float* dx, bool accumulate) {
  float sum_sq = 0, sum_dot = 0;
  for (int j = lane(); j < width; j += kWarp) {
    sum_sq += x[j] * x[j];
    sum_dot += dy[j] * x[j];
  }
  const float inv_rms = 1.0f / sqrtf(warp_sum(sum_sq) / float(width) + FLT_EPSILON);
  const float mean_dot = warp_sum(sum_dot) * inv_rms / float(width);  // mean(dy * y)
  for (int j = lane(); j < width; j += kWarp) {
    const float g = inv_rms * (dy[j] - x[j] * inv_rms * mean_dot);
    dx[j] = accumulate ? dx[j] + g : g;
  }
}

__global__ void rms_norm_backward_kernel(const float* x, const float* dy, int64_t rows, int width, float* dx,
                                         bool accumulate) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_backward(x + row * width, dy + row * width, width, dx + row * width, accumulate);
}

__global__ void embedding_rms_norm_backward_kernel(const float* tok_emb, const uint16_t* ids, const float* dy,
                                                   int64_t rows, int dim, float* d_rows) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_backward(tok_emb + int64_t(ids[row]) * dim, dy + row * dim, dim, d_rows + row * dim, false);
}

// One warp per (row, head) over every head (v heads: copied into d_raw, unless it is d_qkv).
constexpr int kMaxHeadDim = 256;
template <typename T>
__global__ void qk_norm_rope_backward_kernel(const float* raw, const float* d_qkv, int64_t rows, int seq_len, int heads,
                                             int kv_heads, int head_dim, const float* rope_cos, const float* rope_sin,
                                             const float* q_gain, T* d_raw, float* d_gain_partial) {
  const int all_heads = heads + 2 * kv_heads;
  const int64_t item = warp_item();
  if (item >= rows * all_heads) return;
  const int64_t row = item / all_heads;
  const int head = int(item % all_heads);
  const int64_t offset = row * all_heads * head_dim + int64_t(head) * head_dim;
  const float* x = raw + offset;
  const float* d = d_qkv + offset;
  T* out = d_raw + offset;
  if (head >= heads + kv_heads) {
    if (static_cast<const void*>(out) != static_cast<const void*>(d))
      for (int j = lane(); j < head_dim; j += kWarp) put(out + j, d[j]);
    return;
  }
  const int half = head_dim / 2;
  const int64_t position = row % seq_len;
  float sum_sq = 0;
  for (int j = lane(); j < head_dim; j += kWarp) sum_sq += x[j] * x[j];
  const float inv_rms = 1.0f / sqrtf(warp_sum(sum_sq) / float(head_dim) + FLT_EPSILON);
  const float gain = head < heads ? q_gain[head] : 1.0f;
  // Forward: y = norm(x); r = rotate(y); out = gain * r. Backward: d_gain = d_out . r,
  // d_r = gain * d_out, d_y = rotate^T(d_r) (kept in registers: a lane's j, j + 32, ...); then
  // through the norm.
  constexpr int kMaxPerLane = kMaxHeadDim / 2 / kWarp;
  float dy1[kMaxPerLane], dy2[kMaxPerLane];
  float gain_dot = 0, y_dot = 0;
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int j = lane() + k * kWarp;
    if (j >= half) break;
    const float c = rope_cos[position * half + j], s = rope_sin[position * half + j];
    const float y1 = x[j] * inv_rms, y2 = x[half + j] * inv_rms;
    const float d1 = d[j], d2 = d[half + j];
    gain_dot += d1 * (y1 * c + y2 * s) + d2 * (y2 * c - y1 * s);
    dy1[k] = gain * (d1 * c - d2 * s), dy2[k] = gain * (d1 * s + d2 * c);
    y_dot += dy1[k] * y1 + dy2[k] * y2;
  }
  gain_dot = warp_sum(gain_dot);
  const float mean_dot = warp_sum(y_dot) / float(head_dim);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int j = lane() + k * kWarp;
    if (j >= half) break;
    put(out + j, inv_rms * (dy1[k] - x[j] * inv_rms * mean_dot));
    put(out + half + j, inv_rms * (dy2[k] - x[half + j] * inv_rms * mean_dot));
  }
  if (head < heads && lane() == 0) d_gain_partial[row * heads + head] = gain_dot;
}

template <typename T>
__global__ void relu_square_backward_kernel(const float* pre, const float* d, int64_t count, T* out) {
  PGOLF_GRID_STRIDE(i, count) put(out + i, d[i] * 2.0f * fmaxf(pre[i], 0.0f));
}

// Stage 1 of column_sum: block (column tile of 32, row chunk) sums its rows into partial[chunk][column].
// With `scaled`, the same pass also writes (or adds) a * scale[column] there.
constexpr int kColumnChunks = 256;
template <typename T>
__global__ void column_sum_partial_kernel(const float* a, const float* b, int64_t rows, int dim, float* partial,
                                          const float* scale, T* scaled, bool accumulate_scaled) {
  const int column = blockIdx.x * kWarp + threadIdx.x % kWarp;
  const int64_t chunk_rows = (rows + kColumnChunks - 1) / kColumnChunks;
  const int64_t first = blockIdx.y * chunk_rows, last = min(rows, first + chunk_rows);
  __shared__ float sums[kWarpsPerBlock][kWarp];
  float sum = 0;
  if (column < dim)
    for (int64_t t = first + threadIdx.x / kWarp; t < last; t += kWarpsPerBlock) {
      const int64_t i = t * dim + column;
      const float value = a[i];  // read before `scaled` (which may be a) is written
      sum += b ? value * b[i] : value;
      if (scaled) {
        const float v = value * scale[column];
        put(scaled + i, accumulate_scaled ? get(scaled + i) + v : v);
      }
    }
  sums[threadIdx.x / kWarp][threadIdx.x % kWarp] = sum;
  __syncthreads();
  if (threadIdx.x < kWarp && column < dim) {
    float total = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) total += sums[w][threadIdx.x];
    partial[int64_t(blockIdx.y) * dim + column] = total;
  }
}

__global__ void column_sum_final_kernel(const float* partial, int dim, float* out, bool accumulate) {
  const int column = blockIdx.x * blockDim.x + threadIdx.x;
  if (column >= dim) return;
  float total = 0;
  for (int k = 0; k < kColumnChunks; ++k) total += partial[int64_t(k) * dim + column];
  out[column] = accumulate ? out[column] + total : total;
}

template <typename T>
__global__ void softcap_cross_entropy_backward_kernel(const float* logits, const uint16_t* targets, int64_t rows,
                                                      int vocab, float cap, float weight, T* d_logits,
                                                      double* losses) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const float* z = logits + row * vocab;
  T* out = d_logits + row * vocab;
  const auto [max, sum] = warp_softcap_softmax(z, vocab, cap);
  const int target = targets[row];
  const float target_capped = softcap(z[target], cap);  // read by every lane before any write
  __syncwarp();
  for (int j = lane(); j < vocab; j += kWarp) {
    const float t = tanhf(z[j] / cap);
    const double p = exp(double(cap * t) - double(max)) / sum;
    const double d = (p - (j == target ? 1.0 : 0.0)) * weight;
    put(out + j, float(d) * (1.0f - t * t));
  }
  if (lane() == 0) losses[row] = log(sum) + double(max) - double(target_capped);
}

// Stage 1 of embedding_backward, one warp per segment: partial[s] = sum of its rows.
__global__ void embedding_segment_kernel(const float* d_rows, const int32_t* order, const int32_t* segments,
                                         int64_t segment_count, int dim, float* partial) {
  const int64_t segment = warp_item();
  if (segment >= segment_count) return;
  for (int j = lane(); j < dim; j += kWarp) {
    float sum = 0;
    for (int k = segments[segment]; k < segments[segment + 1]; ++k) sum += d_rows[int64_t(order[k]) * dim + j];
    partial[segment * dim + j] = sum;
  }
}

// Stage 2, one warp per token id: d_tok_emb[v] += its segments' sums, in order.
__global__ void embedding_token_kernel(const float* partial, const int32_t* token_segments, int vocab, int dim,
                                       float* d_tok_emb) {
  const int64_t v = warp_item();
  if (v >= vocab) return;
  for (int j = lane(); j < dim; j += kWarp) {
    float sum = 0;
    for (int s = token_segments[v]; s < token_segments[v + 1]; ++s) sum += partial[int64_t(s) * dim + j];
    d_tok_emb[v * dim + j] += sum;
  }
}

__global__ void muon_momentum_kernel(float* buf, float* g, int64_t count, float momentum) {
  PGOLF_GRID_STRIDE(i, count) {
    const float b = momentum * buf[i] + g[i];
    buf[i] = b;
    g[i] += momentum * b;
  }
}

// The block's sum of x[i] (squared when kSquare) over a grid stride, left in thread 0's `out`.
template <bool kSquare>
__device__ void block_sum(const float* x, int64_t count, float* out) {
  __shared__ float sums[1024 / kWarp];
  float sum = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    sum += kSquare ? x[i] * x[i] : x[i];
  sum = warp_sum(sum);
  if (lane() == 0) sums[threadIdx.x / kWarp] = sum;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    float total = threadIdx.x < blockDim.x / kWarp ? sums[threadIdx.x] : 0.0f;
    total = warp_sum(total);
    if (threadIdx.x == 0) *out = total;
  }
}

__global__ void squared_norm_partial_kernel(const float* x, int64_t count, float* partials) {
  block_sum<true>(x, count, partials + blockIdx.x);
}

__global__ void squared_norm_final_kernel(float* out) { block_sum<false>(out + 1, kSquaredNormBlocks, out); }

__global__ void to_bf16_kernel(const float* x, int64_t count, __nv_bfloat16* out) {
  PGOLF_GRID_STRIDE(i, count) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void divide_by_norm_kernel(float* x, const float* squared_norm, int64_t count) {
  const float divisor = sqrtf(*squared_norm) + 1e-7f;
  PGOLF_GRID_STRIDE(i, count) x[i] /= divisor;
}

__global__ void apply_update_kernel(float* w, const float* u, int64_t count, float lr) {
  PGOLF_GRID_STRIDE(i, count) w[i] -= lr * u[i];
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2,
                            float eps, float step_size, float root_c2) {
  PGOLF_GRID_STRIDE(i, count) {
    const float m_i = beta1 * m[i] + (1 - beta1) * g[i];
    const float v_i = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    m[i] = m_i, v[i] = v_i;
    w[i] -= step_size * m_i / (sqrtf(v_i) / root_c2 + eps);
  }
}

__global__ void clip_by_norm_kernel(float* x, const float* squared_norm, int64_t count, float max_norm) {
  const float factor = max_norm / (sqrtf(*squared_norm) + 1e-6f);
  if (factor >= 1.0f) return;
  PGOLF_GRID_STRIDE(i, count) x[i] *= factor;
}

}  // namespace

void rms_norm_backward(const float* x, const float* dy, int64_t rows, int width, float* dx, bool accumulate,
                       cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_backward_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(x, dy, rows, width, dx, accumulate);
  PGOLF_CUDA_CHECK_LAUNCH("rms_norm_backward");
}

void embedding_rms_norm_backward(const float* tok_emb, const uint16_t* ids, const float* dy, int64_t rows, int dim,
                                 float* d_rows, cudaStream_t stream) {
  if (rows == 0) return;
  embedding_rms_norm_backward_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(tok_emb, ids, dy, rows, dim,
                                                                                       d_rows);
  PGOLF_CUDA_CHECK_LAUNCH("embedding_rms_norm_backward");
}

template <typename T>
void qk_norm_rope_backward(const float* raw, const float* d_qkv, int64_t rows, int seq_len, int heads, int kv_heads,
                           int head_dim, const float* rope_cos, const float* rope_sin, const float* q_gain, T* d_raw,
                           float* d_gain_partial, cudaStream_t stream) {
  if (rows == 0) return;
  if (head_dim > kMaxHeadDim || head_dim % 2)
    throw std::invalid_argument("qk_norm_rope_backward: head_dim " + std::to_string(head_dim) +
                                " is odd or above " + std::to_string(kMaxHeadDim));
  qk_norm_rope_backward_kernel<<<row_blocks(rows * (heads + 2 * kv_heads)), kThreadsPerBlock, 0, stream>>>(
      raw, d_qkv, rows, seq_len, heads, kv_heads, head_dim, rope_cos, rope_sin, q_gain, d_raw, d_gain_partial);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope_backward");
}
template void qk_norm_rope_backward(const float*, const float*, int64_t, int, int, int, int, const float*,
                                    const float*, const float*, float*, float*, cudaStream_t);
template void qk_norm_rope_backward(const float*, const float*, int64_t, int, int, int, int, const float*,
                                    const float*, const float*, __nv_bfloat16*, float*, cudaStream_t);

template <typename T>
void relu_square_backward(const float* pre, const float* d, int64_t count, T* out, cudaStream_t stream) {
  if (count == 0) return;
  relu_square_backward_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(pre, d, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("relu_square_backward");
}
template void relu_square_backward(const float*, const float*, int64_t, float*, cudaStream_t);
template void relu_square_backward(const float*, const float*, int64_t, __nv_bfloat16*, cudaStream_t);

int64_t column_sum_scratch(int dim) { return int64_t(kColumnChunks) * dim; }

template <typename T>
void launch_column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate,
                       float* scratch, const float* scale, T* scaled, bool accumulate_scaled, cudaStream_t stream) {
  if (dim == 0) return;
  const dim3 grid(unsigned((dim + kWarp - 1) / kWarp), kColumnChunks);
  column_sum_partial_kernel<<<grid, kThreadsPerBlock, 0, stream>>>(a, b, rows, dim, scratch, scale, scaled,
                                                                   accumulate_scaled);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_partial");
  column_sum_final_kernel<<<unsigned((dim + 255) / 256), 256, 0, stream>>>(scratch, dim, out, accumulate);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_final");
}

void column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate, float* scratch,
                cudaStream_t stream) {
  launch_column_sum<float>(a, b, rows, dim, out, accumulate, scratch, nullptr, nullptr, false, stream);
}

template <typename T>
void scaled_add_backward(const float* d, const float* y, const float* scale, int64_t rows, int dim, float* d_scale,
                         T* d_y, bool accumulate_d_y, float* scratch, cudaStream_t stream) {
  launch_column_sum(d, y, rows, dim, d_scale, true, scratch, scale, d_y, accumulate_d_y, stream);
}
template void scaled_add_backward(const float*, const float*, const float*, int64_t, int, float*, float*, bool, float*,
                                  cudaStream_t);
template void scaled_add_backward(const float*, const float*, const float*, int64_t, int, float*, __nv_bfloat16*,
                                  bool, float*, cudaStream_t);


template <typename T>
void softcap_cross_entropy_backward(const float* logits, const uint16_t* targets, int64_t rows, int vocab,
                                    float softcap, float weight, T* d_logits, double* losses, cudaStream_t stream) {
  if (rows == 0) return;
  softcap_cross_entropy_backward_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(
      logits, targets, rows, vocab, softcap, weight, d_logits, losses);
  PGOLF_CUDA_CHECK_LAUNCH("softcap_cross_entropy_backward");
}
template void softcap_cross_entropy_backward(const float*, const uint16_t*, int64_t, int, float, float, float*,
                                             double*, cudaStream_t);
template void softcap_cross_entropy_backward(const float*, const uint16_t*, int64_t, int, float, float,
                                             __nv_bfloat16*, double*, cudaStream_t);

void embedding_backward(const float* d_rows, const int32_t* order, const int32_t* segments,
                        const int32_t* token_segments, int64_t segment_count, int vocab, int dim, float* scratch,
                        float* d_tok_emb, cudaStream_t stream) {
  if (segment_count > 0) {
    embedding_segment_kernel<<<row_blocks(segment_count), kThreadsPerBlock, 0, stream>>>(d_rows, order, segments,
                                                                                         segment_count, dim, scratch);
    PGOLF_CUDA_CHECK_LAUNCH("embedding_backward");
  }
  embedding_token_kernel<<<row_blocks(vocab), kThreadsPerBlock, 0, stream>>>(scratch, token_segments, vocab, dim,
                                                                             d_tok_emb);
  PGOLF_CUDA_CHECK_LAUNCH("embedding_backward");
}

void muon_momentum(float* buf, float* g, int64_t count, float momentum, cudaStream_t stream) {
  if (count == 0) return;
  muon_momentum_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(buf, g, count, momentum);
  PGOLF_CUDA_CHECK_LAUNCH("muon_momentum");
}

void squared_norm(const float* x, int64_t count, float* out, cudaStream_t stream) {
  squared_norm_partial_kernel<<<kSquaredNormBlocks, 1024, 0, stream>>>(x, count, out + 1);
  PGOLF_CUDA_CHECK_LAUNCH("squared_norm");
  squared_norm_final_kernel<<<1, 1024, 0, stream>>>(out);
  PGOLF_CUDA_CHECK_LAUNCH("squared_norm");
}

void to_bf16(const float* x, int64_t count, __nv_bfloat16* out, cudaStream_t stream) {
  if (count == 0) return;
  to_bf16_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("to_bf16");
}

void divide_by_norm(float* x, const float* squared_norm, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  divide_by_norm_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, squared_norm, count);
  PGOLF_CUDA_CHECK_LAUNCH("divide_by_norm");
}

void apply_update(float* w, const float* u, int64_t count, float lr, cudaStream_t stream) {
  if (count == 0) return;
  apply_update_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(w, u, count, lr);
  PGOLF_CUDA_CHECK_LAUNCH("apply_update");
}

void adam(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2, float eps,
          float step_size, float root_c2, cudaStream_t stream) {
  if (count == 0) return;
  adam_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(w, g, m, v, count, beta1, beta2, eps,
                                                                          step_size, root_c2);
  PGOLF_CUDA_CHECK_LAUNCH("adam");
}

void clip_by_norm(float* x, const float* squared_norm, int64_t count, float max_norm, cudaStream_t stream) {
  if (count == 0) return;
  clip_by_norm_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, squared_norm, count, max_norm);
  PGOLF_CUDA_CHECK_LAUNCH("clip_by_norm");
}

}  // namespace pgolf::cuda
