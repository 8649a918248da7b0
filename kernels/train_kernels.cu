// Training's row-wise, reduction and optimizer kernels (attention's backward is in
// attention_backward.cu).
#include <cfloat>
#include <cmath>

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

__global__ void qk_norm_rope_backward_kernel(const float* raw, float* d_qkv, int64_t rows, int seq_len, int heads,
                                             int kv_heads, int head_dim, const float* rope_cos, const float* rope_sin,
                                             const float* q_gain, float* d_gain_partial) {
  const int normed_heads = heads + kv_heads;
  const int64_t item = warp_item();
  if (item >= rows * normed_heads) return;
  const int64_t row = item / normed_heads;
  const int head = int(item % normed_heads);
  const int64_t offset = row * (heads + 2 * kv_heads) * head_dim + int64_t(head) * head_dim;
  const float* x = raw + offset;
  float* d = d_qkv + offset;
  const int half = head_dim / 2;
  const int64_t position = row % seq_len;
  float sum_sq = 0;
  for (int j = lane(); j < head_dim; j += kWarp) sum_sq += x[j] * x[j];
  const float inv_rms = 1.0f / sqrtf(warp_sum(sum_sq) / float(head_dim) + FLT_EPSILON);
  const float gain = head < heads ? q_gain[head] : 1.0f;
  // Forward: y = norm(x); r = rotate(y); out = gain * r. Backward: d_gain = d_out . r,
  // d_r = gain * d_out, d_y = rotate^T(d_r); then through the norm.
  float gain_dot = 0, y_dot = 0;
  for (int j = lane(); j < half; j += kWarp) {
    const float c = rope_cos[position * half + j], s = rope_sin[position * half + j];
    const float y1 = x[j] * inv_rms, y2 = x[half + j] * inv_rms;
    const float d1 = d[j], d2 = d[half + j];
    gain_dot += d1 * (y1 * c + y2 * s) + d2 * (y2 * c - y1 * s);
    const float dy1 = gain * (d1 * c - d2 * s), dy2 = gain * (d1 * s + d2 * c);
    d[j] = dy1, d[half + j] = dy2;  // each lane rewrites only what it read
    y_dot += dy1 * y1 + dy2 * y2;
  }
  gain_dot = warp_sum(gain_dot);
  const float mean_dot = warp_sum(y_dot) / float(head_dim);
  __syncwarp();
  for (int j = lane(); j < head_dim; j += kWarp) d[j] = inv_rms * (d[j] - x[j] * inv_rms * mean_dot);
  if (head < heads && lane() == 0) d_gain_partial[row * heads + head] = gain_dot;
}

__global__ void relu_square_backward_kernel(const float* pre, float* d, int64_t count) {
  PGOLF_GRID_STRIDE(i, count) d[i] *= 2.0f * fmaxf(pre[i], 0.0f);
}

// Stage 1 of column_sum: block (column tile of 32, row chunk) sums its rows into partial[chunk][column].
constexpr int kColumnChunks = 256;
__global__ void column_sum_partial_kernel(const float* a, const float* b, int64_t rows, int dim, float* partial) {
  const int column = blockIdx.x * kWarp + threadIdx.x % kWarp;
  const int64_t chunk_rows = (rows + kColumnChunks - 1) / kColumnChunks;
  const int64_t first = blockIdx.y * chunk_rows, last = min(rows, first + chunk_rows);
  __shared__ float sums[kWarpsPerBlock][kWarp];
  float sum = 0;
  if (column < dim)
    for (int64_t t = first + threadIdx.x / kWarp; t < last; t += kWarpsPerBlock)
      sum += b ? a[t * dim + column] * b[t * dim + column] : a[t * dim + column];
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

__global__ void scale_channels_kernel(const float* x, const float* scale, int64_t count, int dim, float* y,
                                      bool accumulate) {
  PGOLF_GRID_STRIDE(i, count) {
    const float v = x[i] * scale[i % dim];
    y[i] = accumulate ? y[i] + v : v;
  }
}

__global__ void softcap_cross_entropy_backward_kernel(float* logits, const uint16_t* targets, int64_t rows, int vocab,
                                                      float cap, float weight, double* losses) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  float* z = logits + row * vocab;
  const auto [max, sum] = warp_softcap_softmax(z, vocab, cap);
  const int target = targets[row];
  const float target_capped = softcap(z[target], cap);  // read by every lane before any write
  __syncwarp();
  for (int j = lane(); j < vocab; j += kWarp) {
    const float t = tanhf(z[j] / cap);
    const double p = exp(double(cap * t) - double(max)) / sum;
    const double d = (p - (j == target ? 1.0 : 0.0)) * weight;
    z[j] = float(d) * (1.0f - t * t);
  }
  if (lane() == 0) losses[row] = log(sum) + double(max) - double(target_capped);
}

__global__ void embedding_backward_kernel(const float* d_rows, const int32_t* order, const int32_t* offsets, int vocab,
                                          int dim, float* d_tok_emb) {
  const int64_t v = warp_item();
  if (v >= vocab) return;
  for (int j = lane(); j < dim; j += kWarp) {
    float sum = 0;
    for (int k = offsets[v]; k < offsets[v + 1]; ++k) sum += d_rows[int64_t(order[k]) * dim + j];
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

__global__ void squared_norm_kernel(const float* x, int64_t count, float* out) {
  __shared__ float sums[1024 / kWarp];
  float sum = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += x[i] * x[i];
  sum = warp_sum(sum);
  if (lane() == 0) sums[threadIdx.x / kWarp] = sum;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    float total = threadIdx.x < blockDim.x / kWarp ? sums[threadIdx.x] : 0.0f;
    total = warp_sum(total);
    if (threadIdx.x == 0) *out = total;
  }
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

void qk_norm_rope_backward(const float* raw, float* d_qkv, int64_t rows, int seq_len, int heads, int kv_heads,
                           int head_dim, const float* rope_cos, const float* rope_sin, const float* q_gain,
                           float* d_gain_partial, cudaStream_t stream) {
  if (rows == 0) return;
  qk_norm_rope_backward_kernel<<<row_blocks(rows * (heads + kv_heads)), kThreadsPerBlock, 0, stream>>>(
      raw, d_qkv, rows, seq_len, heads, kv_heads, head_dim, rope_cos, rope_sin, q_gain, d_gain_partial);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope_backward");
}

void relu_square_backward(const float* pre, float* d, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  relu_square_backward_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(pre, d, count);
  PGOLF_CUDA_CHECK_LAUNCH("relu_square_backward");
}

int64_t column_sum_scratch(int dim) { return int64_t(kColumnChunks) * dim; }

void column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate, float* scratch,
                cudaStream_t stream) {
  if (dim == 0) return;
  const dim3 grid(unsigned((dim + kWarp - 1) / kWarp), kColumnChunks);
  column_sum_partial_kernel<<<grid, kThreadsPerBlock, 0, stream>>>(a, b, rows, dim, scratch);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_partial");
  column_sum_final_kernel<<<unsigned((dim + 255) / 256), 256, 0, stream>>>(scratch, dim, out, accumulate);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_final");
}

void scale_channels(const float* x, const float* scale, int64_t rows, int dim, float* y, bool accumulate,
                    cudaStream_t stream) {
  if (rows == 0) return;
  scale_channels_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, scale, rows * dim, dim, y,
                                                                                        accumulate);
  PGOLF_CUDA_CHECK_LAUNCH("scale_channels");
}

void softcap_cross_entropy_backward(float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                                    float weight, double* losses, cudaStream_t stream) {
  if (rows == 0) return;
  softcap_cross_entropy_backward_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(logits, targets, rows, vocab,
                                                                                          softcap, weight, losses);
  PGOLF_CUDA_CHECK_LAUNCH("softcap_cross_entropy_backward");
}

void embedding_backward(const float* d_rows, const int32_t* order, const int32_t* offsets, int vocab, int dim,
                        float* d_tok_emb, cudaStream_t stream) {
  embedding_backward_kernel<<<row_blocks(vocab), kThreadsPerBlock, 0, stream>>>(d_rows, order, offsets, vocab, dim,
                                                                                d_tok_emb);
  PGOLF_CUDA_CHECK_LAUNCH("embedding_backward");
}

void muon_momentum(float* buf, float* g, int64_t count, float momentum, cudaStream_t stream) {
  if (count == 0) return;
  muon_momentum_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(buf, g, count, momentum);
  PGOLF_CUDA_CHECK_LAUNCH("muon_momentum");
}

void squared_norm(const float* x, int64_t count, float* out, cudaStream_t stream) {
  squared_norm_kernel<<<1, 1024, 0, stream>>>(x, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("squared_norm");
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
