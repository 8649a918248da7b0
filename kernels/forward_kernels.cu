// The forward pass's row-wise and elementwise kernels (attention is in attention.cu).
#include <cfloat>
#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/forward_kernels.h"
#include "kernels/warp_rows.cuh"

namespace pgolf::cuda {

namespace {

// One warp's row: v = a + scale · b (b null: a alone), kept in `kept` and normed into `normed`,
// each where given.
template <int kVectors>
__device__ void add_scaled_row(const float* a, const float* b, float scale, int dim, float* kept, float* normed) {
  float4 v[kVectors];
  float sum_sq = 0;
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    const int c = row_column(k);
    if (c >= dim) continue;
    v[k] = load4(a + c);
    if (b) v[k] = v[k] + load4(b + c) * scale;
    if (kept) store4(kept + c, v[k]);
    sum_sq += dot(v[k], v[k]);
  }
  if (normed) warp_write_normed(v, sum_sq, dim, normed);
}

template <int kVectors>
__global__ void embedding_rms_norm_kernel(const float* tok_emb, const uint16_t* ids, const float* extra,
                                          const float* extra_scale, int64_t rows, int dim, float* sum, float* out) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  add_scaled_row<kVectors>(tok_emb + int64_t(ids[row]) * dim, extra ? extra + row * dim : nullptr,
                           extra ? *extra_scale : 0.0f, dim, sum ? sum + row * dim : nullptr,
                           out ? out + row * dim : nullptr);
}

template <int kVectors>
__global__ void smear_v2_kernel(const float* x, const float* w, int window, const float* lambda, const uint16_t* ids,
                                int bos, int64_t rows, int seq_len, int dim, float* smeared, float* normed) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const float* x_t = x + row * dim;
  const float coefficient = smear_v2_coefficient(x_t, w, window, *lambda, smear_v2_mixes(row, ids, bos, seq_len));
  add_scaled_row<kVectors>(x_t, coefficient != 0.0f ? x_t - dim : nullptr, coefficient, dim,
                           smeared ? smeared + row * dim : nullptr, normed + row * dim);
}

// A warp per (row, head).
template <typename In, typename Out>
__global__ void xsa_kernel(const In* heads_out, const In* qkv, int64_t rows, int heads, int kv_heads, int head_dim,
                           Out* out) {
  const int64_t item = warp_item();
  if (item >= rows * heads) return;
  const int64_t row = item / heads;
  const int h = int(item % heads);
  const In* v = xsa_value(qkv, row, heads, kv_heads, h / (heads / kv_heads), head_dim);
  const In* y = heads_out + item * head_dim;
  const float inv = xsa_inverse_norm(v, head_dim);
  float y_v = 0;
  for (int j = lane(); j < head_dim; j += kWarp) y_v += to_float(y[j]) * to_float(v[j]);
  const float along = warp_sum(y_v) * inv * inv;  // (y · u) u = (y · v) v / |v|²
  for (int j = lane(); j < head_dim; j += kWarp)
    put(out + item * head_dim + j, to_float(y[j]) - along * to_float(v[j]));
}

__global__ void gather_rows_kernel(const float* table, const uint16_t* ids, int64_t rows, int width, float* out) {
  const int64_t count = rows * width;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = table[int64_t(ids[i / width]) * width + i % width];
}

__global__ void smear_kernel(const float* x, const float* gate, int64_t rows, int seq_len, int dim, float* out) {
  const int64_t count = rows * dim;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / dim;
    const float mix = 1.0f / (1.0f + expf(-gate[i % dim]));
    const float kept = x[i] * (1.0f - mix);
    out[i] = row % seq_len == 0 ? kept : kept + x[i - dim] * mix;
  }
}

// One warp per row; the sum stays in registers for the norm.
template <int kVectors, typename Y, typename T>
__global__ void scaled_sum_kernel(const float* x, const float* x_scale, const Y* y, const float* y_scale,
                                  int64_t rows, int dim, float* out, T* normed) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const int64_t base = row * dim;
  float4 v[kVectors];
  float sum_sq = 0;
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    const int c = row_column(k);
    if (c >= dim) continue;
    const float4 a = load4(x + base + c);
    v[k] = x_scale ? a * load4(x_scale + c) : a;
    if (y) v[k] = v[k] + load4(y + base + c) * load4(y_scale + c);
    if (out) store4(out + base + c, v[k]);
    sum_sq += dot(v[k], v[k]);
  }
  if (normed) warp_write_normed(v, sum_sq, dim, normed + base);
}

// One warp per row: both lanes' outputs, and with `mean` their mean (and its norm) from the same registers.
template <int kVectors, typename Y, typename T>
__global__ void parallel_lanes_kernel(const float* in0, const float* in1, const float* attn_out, const float* attn_scale,
                                      const Y* mlp_out, const float* mlp_scale, const float* lanes, int64_t rows,
                                      int dim, float* out0, float* out1, float* mean, T* normed) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const int64_t base = row * dim;
  const float r0 = lanes[0], r1 = lanes[1], a0 = lanes[2], a1 = lanes[3], m0 = lanes[4], m1 = lanes[5];
  float4 v[kVectors];
  float sum_sq = 0;
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    const int c = row_column(k);
    if (c >= dim) continue;
    const float4 a = load4(attn_out + base + c) * load4(attn_scale + c), m = load4(mlp_out + base + c) * load4(mlp_scale + c);
    const float4 o0 = load4(in0 + base + c) * r0 + a * a0 + m * m0, o1 = load4(in1 + base + c) * r1 + a * a1 + m * m1;
    store4(out0 + base + c, o0);
    store4(out1 + base + c, o1);
    if (!mean) continue;
    v[k] = (o0 + o1) * 0.5f;
    store4(mean + base + c, v[k]);
    sum_sq += dot(v[k], v[k]);
  }
  if (normed) warp_write_normed(v, sum_sq, dim, normed + base);
}

template <typename In, typename T>
__global__ void leaky_relu_square_kernel(const In* x, int64_t count, float slope, T* out) {
  grid_stride_by_4(
      count, [&](int64_t i) { const float4 p = leaky4(load4(x + i), slope); store4(out + i, p * p); },
      [&](int64_t i) { const float p = leaky(to_float(x[i]), slope); put(out + i, p * p); });
}

template <typename In, typename T>
__global__ void qk_norm_rope_kernel(const In* raw, int rows, int rows_per_block, int seq_len, int heads,
                                    int kv_heads, int head_dim, int rotated_dims, const float* rope_cos,
                                    const float* rope_sin, const float* q_gain, T* qkv) {
  const RopeLane l = rope_lane(rows, rows_per_block, heads + 2 * kv_heads, head_dim);
  const int half = head_dim / 2;
  const RopeColumns col = rope_columns(l.j, head_dim, rotated_dims);
  float4 x1 = zero4(), x2 = zero4();
  if (l.active) x1 = load4(raw + l.offset + col.first), x2 = load4(raw + l.offset + col.second);
  const float sum_sq = head_sum(dot(x1, x1) + dot(x2, x2), head_dim);
  if (!l.active) return;
  T* out = qkv + l.offset;
  if (l.head >= heads + kv_heads) {  // a v head
    store4(out + col.first, x1);
    store4(out + col.second, x2);
    return;
  }
  const float inv_rms = 1.0f / sqrtf(sum_sq / float(head_dim) + FLT_EPSILON);
  const float gain = l.head < heads ? q_gain[l.head] : 1.0f;
  const int64_t at = int64_t(l.row % seq_len) * half + l.j;
  const float4 c = load4(rope_cos + at), s = load4(rope_sin + at), y1 = x1 * inv_rms, y2 = x2 * inv_rms;
  store4(out + col.first, (y1 * c + y2 * s) * gain);
  store4(out + col.second, (y2 * c - y1 * s) * gain);
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

void embedding_rms_norm(const float* tok_emb, const uint16_t* ids, const float* extra, const float* extra_scale,
                        int64_t rows, int dim, float* sum, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  with_row_vectors("embedding_rms_norm", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    embedding_rms_norm_kernel<kVectors>
        <<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(tok_emb, ids, extra, extra_scale, rows, dim, sum, out);
  });
  PGOLF_CUDA_CHECK_LAUNCH("embedding_rms_norm");
}

void gather_rows(const float* table, const uint16_t* ids, int64_t rows, int width, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  gather_rows_kernel<<<elementwise_blocks(rows * width), kThreadsPerBlock, 0, stream>>>(table, ids, rows, width, out);
  PGOLF_CUDA_CHECK_LAUNCH("gather_rows");
}

void smear_v2(const float* x, const float* w, int window, const float* lambda, const uint16_t* ids, int bos,
              int64_t rows, int seq_len, int dim, float* smeared, float* normed, cudaStream_t stream) {
  if (rows == 0) return;
  check_smear_window("smear_v2", window, dim);
  with_row_vectors("smear_v2", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    smear_v2_kernel<kVectors><<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(x, w, window, lambda, ids, bos, rows,
                                                                                seq_len, dim, smeared, normed);
  });
  PGOLF_CUDA_CHECK_LAUNCH("smear_v2");
}

void smear(const float* x, const float* gate, int64_t rows, int seq_len, int dim, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  smear_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, gate, rows, seq_len, dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("smear");
}

template <typename Y, typename T>
void scaled_sum(const float* x, const float* x_scale, const Y* y, const float* y_scale, int64_t rows, int dim,
                float* out, T* normed, cudaStream_t stream) {
  if (rows == 0) return;
  with_row_vectors("scaled_sum", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    scaled_sum_kernel<kVectors><<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(x, x_scale, y, y_scale, rows, dim,
                                                                                  out, normed);
  });
  PGOLF_CUDA_CHECK_LAUNCH("scaled_sum");
}
template void scaled_sum(const float*, const float*, const float*, const float*, int64_t, int, float*, float*,
                         cudaStream_t);
template void scaled_sum(const float*, const float*, const float*, const float*, int64_t, int, float*,
                         __nv_bfloat16*, cudaStream_t);
template void scaled_sum(const float*, const float*, const __nv_bfloat16*, const float*, int64_t, int, float*,
                         float*, cudaStream_t);
template void scaled_sum(const float*, const float*, const __nv_bfloat16*, const float*, int64_t, int, float*,
                         __nv_bfloat16*, cudaStream_t);

template <typename Y, typename T>
void parallel_lanes(const float* in0, const float* in1, const float* attn_out, const float* attn_scale, const Y* mlp_out,
                    const float* mlp_scale, const float* lanes, int64_t rows, int dim, float* out0, float* out1,
                    float* mean, T* normed, cudaStream_t stream) {
  if (rows == 0) return;
  if (normed && !mean) throw std::invalid_argument("parallel_lanes: the norm is of the mean");
  with_row_vectors("parallel_lanes", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    parallel_lanes_kernel<kVectors><<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(
        in0, in1, attn_out, attn_scale, mlp_out, mlp_scale, lanes, rows, dim, out0, out1, mean, normed);
  });
  PGOLF_CUDA_CHECK_LAUNCH("parallel_lanes");
}
template void parallel_lanes(const float*, const float*, const float*, const float*, const float*, const float*,
                             const float*, int64_t, int, float*, float*, float*, float*, cudaStream_t);
template void parallel_lanes(const float*, const float*, const float*, const float*, const float*, const float*,
                             const float*, int64_t, int, float*, float*, float*, __nv_bfloat16*, cudaStream_t);
template void parallel_lanes(const float*, const float*, const float*, const float*, const __nv_bfloat16*,
                             const float*, const float*, int64_t, int, float*, float*, float*, float*, cudaStream_t);
template void parallel_lanes(const float*, const float*, const float*, const float*, const __nv_bfloat16*,
                             const float*, const float*, int64_t, int, float*, float*, float*, __nv_bfloat16*,
                             cudaStream_t);

template <typename In, typename T>
void leaky_relu_square(const In* x, int64_t count, float negative_slope, T* out, cudaStream_t stream) {
  if (count == 0) return;
  leaky_relu_square_kernel<<<vector_blocks(count), kThreadsPerBlock, 0, stream>>>(x, count, negative_slope, out);
  PGOLF_CUDA_CHECK_LAUNCH("leaky_relu_square");
}
template void leaky_relu_square(const float*, int64_t, float, float*, cudaStream_t);
template void leaky_relu_square(const float*, int64_t, float, __nv_bfloat16*, cudaStream_t);
template void leaky_relu_square(const __nv_bfloat16*, int64_t, float, float*, cudaStream_t);
template void leaky_relu_square(const __nv_bfloat16*, int64_t, float, __nv_bfloat16*, cudaStream_t);

template <typename In, typename T>
void qk_norm_rope(const In* raw, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim, int rotated_dims,
                  const float* rope_cos, const float* rope_sin, const float* q_gain, T* qkv, cudaStream_t stream) {
  if (rows == 0) return;
  const RopeLaunch launch = rope_launch("qk_norm_rope", rows, heads, kv_heads, head_dim, rotated_dims);
  qk_norm_rope_kernel<<<launch.blocks, launch.threads, 0, stream>>>(raw, int(rows), launch.rows_per_block, seq_len,
                                                                    heads, kv_heads, head_dim, rotated_dims, rope_cos,
                                                                    rope_sin, q_gain, qkv);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope");
}
template void qk_norm_rope(const float*, int64_t, int, int, int, int, int, const float*, const float*, const float*,
                           float*, cudaStream_t);
template void qk_norm_rope(const float*, int64_t, int, int, int, int, int, const float*, const float*, const float*,
                           __nv_bfloat16*, cudaStream_t);
template void qk_norm_rope(const __nv_bfloat16*, int64_t, int, int, int, int, int, const float*, const float*,
                           const float*, float*, cudaStream_t);
template void qk_norm_rope(const __nv_bfloat16*, int64_t, int, int, int, int, int, const float*, const float*,
                           const float*, __nv_bfloat16*, cudaStream_t);

template <typename In, typename Out>
void xsa(const In* heads_out, const In* qkv, int64_t rows, int heads, int kv_heads, int head_dim, Out* out,
         cudaStream_t stream) {
  if (rows == 0) return;
  if (head_dim > 256) throw std::invalid_argument("xsa: head_dim " + std::to_string(head_dim) + " is over 256");
  xsa_kernel<<<row_blocks(rows * heads), kThreadsPerBlock, 0, stream>>>(heads_out, qkv, rows, heads, kv_heads,
                                                                        head_dim, out);
  PGOLF_CUDA_CHECK_LAUNCH("xsa");
}
template void xsa(const float*, const float*, int64_t, int, int, int, float*, cudaStream_t);
template void xsa(const float*, const float*, int64_t, int, int, int, __nv_bfloat16*, cudaStream_t);
template void xsa(const __nv_bfloat16*, const __nv_bfloat16*, int64_t, int, int, int, float*, cudaStream_t);
template void xsa(const __nv_bfloat16*, const __nv_bfloat16*, int64_t, int, int, int, __nv_bfloat16*, cudaStream_t);

void softcap_cross_entropy(const float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                           double* losses, cudaStream_t stream) {
  if (rows == 0) return;
  softcap_cross_entropy_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(logits, targets, rows, vocab,
                                                                                   softcap, losses);
  PGOLF_CUDA_CHECK_LAUNCH("softcap_cross_entropy");
}

}  // namespace pgolf::cuda
