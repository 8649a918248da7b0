// The forward pass's row-wise and elementwise kernels (attention is in attention.cu).
#include <cfloat>
#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/forward_kernels.h"
#include "kernels/warp_rows.cuh"

namespace pgolf::cuda {

namespace {

template <typename T>
__device__ void warp_rms_norm_row(const float* x, int width, T* out) {
  const float inv_rms = warp_inv_rms(x, width);
  for (int j = lane(); j < width; j += kWarp) put(out + j, x[j] * inv_rms);
}

__global__ void embedding_rms_norm_kernel(const float* tok_emb, const uint16_t* ids, int64_t rows, int dim,
                                          float* out) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_row(tok_emb + int64_t(ids[row]) * dim, dim, out + row * dim);
}

template <typename T>
__global__ void rms_norm_kernel(const float* x, int64_t rows, int dim, T* out) {
  const int64_t row = warp_item();
  if (row < rows) warp_rms_norm_row(x + row * dim, dim, out + row * dim);
}

__global__ void resid_mix_kernel(const float* x, const float* x0, const float* mix, int64_t count, int dim,
                                 float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int channel = int(i % dim);
    out[i] = mix[channel] * x[i] + mix[dim + channel] * x0[i];
  }
}

__global__ void add_scaled_kernel(const float* x, const float* y, const float* scale, int64_t count, int dim,
                                  float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = x[i] + scale[i % dim] * y[i];
}

template <typename T>
__global__ void relu_square_kernel(const float* x, int64_t count, T* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float r = fmaxf(x[i], 0.0f);
    put(out + i, r * r);
  }
}

// One warp per (row, head) over every head: q and k heads normalised and rotated, v heads copied.
template <typename T>
__global__ void qk_norm_rope_kernel(const float* raw, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim,
                                    const float* rope_cos, const float* rope_sin, const float* q_gain, T* qkv) {
  const int all_heads = heads + 2 * kv_heads;
  const int64_t item = warp_item();
  if (item >= rows * all_heads) return;
  const int64_t row = item / all_heads;
  const int head = int(item % all_heads);
  const int64_t offset = row * all_heads * head_dim + int64_t(head) * head_dim;
  const float* x = raw + offset;
  T* out = qkv + offset;
  if (head >= heads + kv_heads) {  // a v head
    for (int j = lane(); j < head_dim; j += kWarp) put(out + j, x[j]);
    return;
  }
  const int half = head_dim / 2;
  const int64_t position = row % seq_len;
  const float inv_rms = warp_inv_rms(x, head_dim);  // every lane has read x before any writes (out may be raw)
  const float gain = head < heads ? q_gain[head] : 1.0f;
  for (int j = lane(); j < half; j += kWarp) {
    const float c = rope_cos[position * half + j], s = rope_sin[position * half + j];
    const float x1 = x[j] * inv_rms, x2 = x[half + j] * inv_rms;
    put(out + j, (x1 * c + x2 * s) * gain);
    put(out + half + j, (x2 * c - x1 * s) * gain);
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

template <typename T>
void rms_norm(const float* x, int64_t rows, int dim, T* out, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(x, rows, dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("rms_norm");
}
template void rms_norm(const float*, int64_t, int, float*, cudaStream_t);
template void rms_norm(const float*, int64_t, int, __nv_bfloat16*, cudaStream_t);

void resid_mix(const float* x, const float* x0, const float* mix, int64_t rows, int dim, float* out,
               cudaStream_t stream) {
  if (rows == 0) return;
  resid_mix_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, x0, mix, rows * dim, dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("resid_mix");
}

void add_scaled(const float* x, const float* y, const float* scale, int64_t rows, int dim, float* out,
                cudaStream_t stream) {
  if (rows == 0) return;
  add_scaled_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, y, scale, rows * dim, dim,
                                                                                     out);
  PGOLF_CUDA_CHECK_LAUNCH("add_scaled");
}

template <typename T>
void relu_square(const float* x, int64_t count, T* out, cudaStream_t stream) {
  if (count == 0) return;
  relu_square_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("relu_square");
}
template void relu_square(const float*, int64_t, float*, cudaStream_t);
template void relu_square(const float*, int64_t, __nv_bfloat16*, cudaStream_t);

template <typename T>
void qk_norm_rope(const float* raw, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim,
                  const float* rope_cos, const float* rope_sin, const float* q_gain, T* qkv, cudaStream_t stream) {
  if (rows == 0) return;
  qk_norm_rope_kernel<<<row_blocks(rows * (heads + 2 * kv_heads)), kThreadsPerBlock, 0, stream>>>(
      raw, rows, seq_len, heads, kv_heads, head_dim, rope_cos, rope_sin, q_gain, qkv);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope");
}
template void qk_norm_rope(const float*, int64_t, int, int, int, int, const float*, const float*, const float*, float*,
                           cudaStream_t);
template void qk_norm_rope(const float*, int64_t, int, int, int, int, const float*, const float*, const float*,
                           __nv_bfloat16*, cudaStream_t);

void softcap_cross_entropy(const float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                           double* losses, cudaStream_t stream) {
  if (rows == 0) return;
  softcap_cross_entropy_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(logits, targets, rows, vocab,
                                                                                   softcap, losses);
  PGOLF_CUDA_CHECK_LAUNCH("softcap_cross_entropy");
}

}  // namespace pgolf::cuda
