// The forward pass's row-wise and elementwise kernels (attention is in attention.cu).
#include <cfloat>
#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/forward_kernels.h"
#include "kernels/warp_rows.cuh"

namespace pgolf::cuda {

namespace {

__device__ void warp_rms_norm_row(const float* x, int width, float* out) {
  const float inv_rms = warp_inv_rms(x, width);
  for (int j = lane(); j < width; j += kWarp) out[j] = x[j] * inv_rms;
}

__global__ void embedding_rms_norm_kernel(const float* tok_emb, const uint16_t* ids, int64_t rows, int dim,
                                          float* out) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_row(tok_emb + int64_t(ids[row]) * dim, dim, out + row * dim);
}

__global__ void rms_norm_kernel(const float* x, int64_t rows, int dim, float* out) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_row(x + row * dim, dim, out + row * dim);
}

__global__ void resid_mix_kernel(float* x, const float* x0, const float* mix, int64_t count, int dim) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int channel = int(i % dim);
    x[i] = mix[channel] * x[i] + mix[dim + channel] * x0[i];
  }
}

__global__ void add_scaled_kernel(float* x, const float* y, const float* scale, int64_t count, int dim) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += scale[i % dim] * y[i];
}

__global__ void relu_square_kernel(float* x, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float r = fmaxf(x[i], 0.0f);
    x[i] = r * r;
  }
}

__global__ void qk_norm_rope_kernel(float* qkv, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim,
                                    const float* rope_cos, const float* rope_sin, const float* q_gain) {
  const int normed_heads = heads + kv_heads;  // the q heads, then the k heads
  const int64_t item = warp_item();
  if (item >= rows * normed_heads) return;
  const int64_t row = item / normed_heads;
  const int head = int(item % normed_heads);
  float* x = qkv + row * (heads + 2 * kv_heads) * head_dim + int64_t(head) * head_dim;
  const int half = head_dim / 2;
  const int64_t position = row % seq_len;
  const float inv_rms = warp_inv_rms(x, head_dim);  // every lane has read x before any writes
  const float gain = head < heads ? q_gain[head] : 1.0f;
  for (int j = lane(); j < half; j += kWarp) {
    const float c = rope_cos[position * half + j], s = rope_sin[position * half + j];
    const float x1 = x[j] * inv_rms, x2 = x[half + j] * inv_rms;
    x[j] = (x1 * c + x2 * s) * gain;
    x[half + j] = (x2 * c - x1 * s) * gain;
  }
}


__global__ void softcap_cross_entropy_kernel(const float* logits, const uint16_t* targets, int64_t rows, int vocab,
                                             float cap, double* losses) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const float* z = logits + row * vocab;
  const auto [max, sum] = warp_softcap_softmax(z, vocab, cap);
  if (lane() == 0) losses[row] = log(sum) + double(max) - double(softcap(z[targets[row]], cap));
}

}  // namespace

void embedding_rms_norm(const float* tok_emb, const uint16_t* ids, int64_t rows, int dim, float* out,
                        cudaStream_t stream) {
  if (rows == 0) return;
  embedding_rms_norm_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(tok_emb, ids, rows, dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("embedding_rms_norm");
}

void rms_norm(const float* x, int64_t rows, int dim, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(x, rows, dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("rms_norm");
}

void resid_mix(float* x, const float* x0, const float* mix, int64_t rows, int dim, cudaStream_t stream) {
  if (rows == 0) return;
  resid_mix_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, x0, mix, rows * dim, dim);
  PGOLF_CUDA_CHECK_LAUNCH("resid_mix");
}

void add_scaled(float* x, const float* y, const float* scale, int64_t rows, int dim, cudaStream_t stream) {
  if (rows == 0) return;
  add_scaled_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, y, scale, rows * dim, dim);
  PGOLF_CUDA_CHECK_LAUNCH("add_scaled");
}

void relu_square(float* x, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  relu_square_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, count);
  PGOLF_CUDA_CHECK_LAUNCH("relu_square");
}

void qk_norm_rope(float* qkv, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim,
                  const float* rope_cos, const float* rope_sin, const float* q_gain, cudaStream_t stream) {
  if (rows == 0) return;
  qk_norm_rope_kernel<<<row_blocks(rows * (heads + kv_heads)), kThreadsPerBlock, 0, stream>>>(
      qkv, rows, seq_len, heads, kv_heads, head_dim, rope_cos, rope_sin, q_gain);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope");
}

void softcap_cross_entropy(const float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                           double* losses, cudaStream_t stream) {
  if (rows == 0) return;
  softcap_cross_entropy_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(logits, targets, rows, vocab,
                                                                                   softcap, losses);
  PGOLF_CUDA_CHECK_LAUNCH("softcap_cross_entropy");
}

}  // namespace pgolf::cuda
