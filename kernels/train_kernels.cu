// Training's row-wise, reduction and optimizer kernels (attention's backward is in
// attention_backward.cu).
#include <algorithm>
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

// g += the backward of rms_norm at the warp's row x given dy: inv_rms (dy - y mean(dy y)) with
// y = x inv_rms.
template <int kVectors>
__device__ void add_rms_norm_backward(const float* x, const float* dy, int dim, float4 (&g)[kVectors]) {
  float4 xv[kVectors], dv[kVectors];
  float sum_sq = 0, sum_dot = 0;
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    const int c = row_column(k);
    if (c >= dim) continue;
    xv[k] = load4(x + c), dv[k] = load4(dy + c);
    sum_sq += dot(xv[k], xv[k]), sum_dot += dot(dv[k], xv[k]);
  }
  const float inv_rms = 1.0f / sqrtf(warp_sum(sum_sq) / float(dim) + FLT_EPSILON);
  const float mean_dot = warp_sum(sum_dot) * inv_rms / float(dim);  // mean(dy * y)
#pragma unroll
  for (int k = 0; k < kVectors; ++k)
    if (row_column(k) < dim) g[k] = g[k] + (dv[k] - xv[k] * (inv_rms * mean_dot)) * inv_rms;
}

template <int kVectors>
__global__ void embedding_rms_norm_backward_kernel(const float* tok_emb, const uint16_t* ids, const float* dy,
                                                   int64_t rows, int dim, float* d_rows) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  float4 g[kVectors];
#pragma unroll
  for (int k = 0; k < kVectors; ++k) g[k] = zero4();
  add_rms_norm_backward(tok_emb + (ids ? int64_t(ids[row]) : row) * dim, dy + row * dim, dim, g);
#pragma unroll
  for (int k = 0; k < kVectors; ++k)
    if (row_column(k) < dim) store4(d_rows + row * dim + row_column(k), g[k]);
}

// The blocks of the column-summing kernels, and so the partial sums per column.
constexpr int kColumnChunks = 256;

// partial[blockIdx.x] = the column sums of the block's warps (lane sums as a row held by
// with_row_vectors's layout), added in warp order.
template <int kVectors>
__device__ void store_block_column_sums(const float4 (&sum)[kVectors], int dim, float* partial) {
  __shared__ float4 block[kVectors * kWarp];
  const int warp = threadIdx.x / kWarp;
  for (int w = 0; w < kWarpsPerBlock; ++w) {
    if (warp == w)
#pragma unroll
      for (int k = 0; k < kVectors; ++k) {
        const int v = lane() + kWarp * k;
        if (4 * v < dim) block[v] = w == 0 ? sum[k] : block[v] + sum[k];
      }
    __syncthreads();
  }
  for (int v = threadIdx.x; 4 * v < dim; v += blockDim.x) store4(partial + int64_t(blockIdx.x) * dim + 4 * v, block[v]);
  __syncthreads();  // `block` is free again
}

// Warp w of the grid takes rows w, w + warps, ...; each block leaves its column sums in
// partial_x[blockIdx.x] and partial_y[blockIdx.x] (column_sum_final_kernel adds them up).
template <int kVectors, typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    scaled_sum_backward_kernel(ScaledSumGradient<T> p, int64_t rows, int dim, float* partial_x, float* partial_y) {
  float4 sum_x[kVectors], sum_y[kVectors];
#pragma unroll
  for (int k = 0; k < kVectors; ++k) sum_x[k] = sum_y[k] = zero4();
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t row = warp_item(); row < rows; row += warps) {
    const int64_t base = row * dim;
    float4 g[kVectors];
#pragma unroll
    for (int k = 0; k < kVectors; ++k) {
      const int c = row_column(k);
      g[k] = p.d_out && c < dim ? load4(p.d_out + base + c) : zero4();
      if (p.d_out_extra && c < dim) g[k] = g[k] + load4(p.d_out_extra + base + c);
    }
    if (p.out) add_rms_norm_backward(p.out + base, p.d_normed + base, dim, g);
    // Every read of d_out is done: d_x may be d_out.
#pragma unroll
    for (int k = 0; k < kVectors; ++k) {
      const int c = row_column(k);
      if (c >= dim) continue;
      if (p.d_x) {
        float4 v = p.x_scale ? g[k] * load4(p.x_scale + c) : g[k];
        if (p.accumulate_d_x) v = v + load4(p.d_x + base + c);
        store4(p.d_x + base + c, v);
      }
      if (p.d_x_scale) sum_x[k] = sum_x[k] + g[k] * load4(p.x + base + c);
      if (p.d_y) {
        float4 v = g[k] * load4(p.y_scale + c);
        if (p.accumulate_d_y) v = v + load4(p.d_y + base + c);
        store4(p.d_y + base + c, v);
      }
      if (p.d_y_scale) sum_y[k] = sum_y[k] + g[k] * load4(p.y + base + c);
    }
  }
  if (p.d_x_scale) store_block_column_sums(sum_x, dim, partial_x);
  if (p.d_y_scale) store_block_column_sums(sum_y, dim, partial_y);
}

// One warp per row: the lanes' gradients scaled in place, those of A and M, and the row's six products.
template <int kVectors>
__global__ void parallel_lanes_backward_kernel(float* d0, float* d1, bool from_mean, const float* in0, const float* in1,
                                               const float* attn_out, const float* attn_scale, const float* mlp_out,
                                               const float* mlp_scale, const float* lanes, int64_t rows, int dim,
                                               float* d_a, float* d_m, float* row_products) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const int64_t base = row * dim;
  const float r0 = lanes[0], r1 = lanes[1], a0 = lanes[2], a1 = lanes[3], m0 = lanes[4], m1 = lanes[5];
  float products[kLaneParams] = {};
#pragma unroll
  for (int k = 0; k < kVectors; ++k) {
    const int c = row_column(k);
    if (c >= dim) continue;
    float4 g0 = load4(d0 + base + c), g1;
    if (from_mean) {
      g0 = g0 * 0.5f, g1 = g0;
    } else {
      g1 = load4(d1 + base + c);
    }
    const float4 a = load4(attn_out + base + c) * load4(attn_scale + c), m = load4(mlp_out + base + c) * load4(mlp_scale + c);
    products[0] += dot(g0, load4(in0 + base + c)), products[1] += dot(g1, load4(in1 + base + c));
    products[2] += dot(g0, a), products[3] += dot(g1, a), products[4] += dot(g0, m), products[5] += dot(g1, m);
    store4(d_a + base + c, g0 * a0 + g1 * a1);
    store4(d_m + base + c, g0 * m0 + g1 * m1);
    store4(d0 + base + c, g0 * r0);
    store4(d1 + base + c, g1 * r1);
  }
#pragma unroll
  for (int j = 0; j < kLaneParams; ++j) {
    const float total = warp_sum(products[j]);
    if (lane() == 0) row_products[row * kLaneParams + j] = total;
  }
}

template <typename T>
__global__ void qk_norm_rope_backward_kernel(const float* raw, const float* d_qkv, int rows, int rows_per_block,
                                             int seq_len, int heads, int kv_heads, int head_dim,
                                             int rotated_dims, const float* rope_cos, const float* rope_sin,
                                             const float* q_gain,
                                             T* d_raw, float* d_gain_partial) {
  const RopeLane l = rope_lane(rows, rows_per_block, heads + 2 * kv_heads, head_dim);
  const int half = head_dim / 2;
  const RopeColumns col = rope_columns(l.j, head_dim, rotated_dims);
  float4 x1 = zero4(), x2 = zero4(), d1 = zero4(), d2 = zero4(), c = zero4(), s = zero4();
  if (l.active) {
    x1 = load4(raw + l.offset + col.first), x2 = load4(raw + l.offset + col.second);
    d1 = load4(d_qkv + l.offset + col.first), d2 = load4(d_qkv + l.offset + col.second);
    const int64_t at = int64_t(l.row % seq_len) * half + l.j;
    c = load4(rope_cos + at), s = load4(rope_sin + at);
  }
  // Forward: y = norm(x); r = rotate(y); out = gain * r. Backward: d_gain = d_out . r,
  // d_r = gain * d_out, d_y = rotate^T(d_r); then through the norm. (v heads compute and drop it.)
  const float inv_rms = 1.0f / sqrtf(head_sum(dot(x1, x1) + dot(x2, x2), head_dim) / float(head_dim) + FLT_EPSILON);
  const float gain = l.head < heads ? q_gain[l.head] : 1.0f;
  const float4 y1 = x1 * inv_rms, y2 = x2 * inv_rms;
  const float gain_dot = head_sum(dot(d1, y1 * c + y2 * s) + dot(d2, y2 * c - y1 * s), head_dim);
  const float4 dy1 = (d1 * c - d2 * s) * gain, dy2 = (d1 * s + d2 * c) * gain;
  const float mean_dot = head_sum(dot(dy1, y1) + dot(dy2, y2), head_dim) / float(head_dim);
  if (!l.active) return;
  T* out = d_raw + l.offset;
  if (l.head >= heads + kv_heads) {  // a v head: its gradient passes through
    if (static_cast<const void*>(out) != static_cast<const void*>(d_qkv + l.offset)) {
      store4(out + col.first, d1);
      store4(out + col.second, d2);
    }
    return;
  }
  store4(out + col.first, (dy1 - x1 * (inv_rms * mean_dot)) * inv_rms);
  store4(out + col.second, (dy2 - x2 * (inv_rms * mean_dot)) * inv_rms);
  if (l.head < heads && l.j == 0) d_gain_partial[int64_t(l.row) * heads + l.head] = gain_dot;
}

template <typename T>
__global__ void leaky_relu_square_backward_kernel(const float* pre, const float* d, int64_t count, float slope_squared,
                                                  T* out) {
  grid_stride_by_4(
      count, [&](int64_t i) { store4(out + i, load4(d + i) * leaky4(load4(pre + i), slope_squared) * 2.0f); },
      [&](int64_t i) { put(out + i, d[i] * 2.0f * leaky(pre[i], slope_squared)); });
}

// Stage 1 of column_sum: block (column tile of 32, row chunk) sums its rows into partial[chunk][column].
__global__ void column_sum_partial_kernel(const float* a, const float* b, int64_t rows, int dim, float* partial) {
  const int column = blockIdx.x * kWarp + threadIdx.x % kWarp;
  const int64_t chunk_rows = (rows + kColumnChunks - 1) / kColumnChunks;
  const int64_t first = blockIdx.y * chunk_rows, last = min(rows, first + chunk_rows);
  __shared__ float sums[kWarpsPerBlock][kWarp];
  float sum = 0;
  if (column < dim)
    for (int64_t t = first + threadIdx.x / kWarp; t < last; t += kWarpsPerBlock) {
      const int64_t i = t * dim + column;
      sum += b ? a[i] * b[i] : a[i];
    }
  sums[threadIdx.x / kWarp][threadIdx.x % kWarp] = sum;
  __syncthreads();
  if (threadIdx.x < kWarp && column < dim) {
    float total = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) total += sums[w][threadIdx.x];
    partial[int64_t(blockIdx.y) * dim + column] = total;
  }
}

// Stage 2: out[column] (+)= the sum of partial[0 .. chunks)[column], in order.
__global__ void column_sum_final_kernel(const float* partial, int chunks, int dim, float* out, bool accumulate) {
  const int column = blockIdx.x * blockDim.x + threadIdx.x;
  if (column >= dim) return;
  float total = 0;
  for (int k = 0; k < chunks; ++k) total += partial[int64_t(k) * dim + column];
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
  const float inv_sum = float(1.0 / sum);
  for (int j = lane(); j < vocab; j += kWarp) {
    const float t = tanhf(z[j] / cap);
    const float p = expf(cap * t - max) * inv_sum;
    put(out + j, (p - (j == target ? 1.0f : 0.0f)) * weight * (1.0f - t * t));
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

// Per row t of smear_v2: coefficient[t] = λ σ(z_t) where it mixes (else 0), d_z[t] = the gradient of
// the gate's input z_t = w · x_t[0 : window], and the row's shares of λ's and w's gradients.
__global__ void smear_v2_rows_kernel(const float* x, const float* w, int window, const float* lambda,
                                     const uint16_t* ids, int bos, const float* dy, int64_t rows, int seq_len, int dim,
                                     float* coefficient, float* d_z, float* d_lambda_rows, float* d_w_rows) {
  const int64_t row = warp_item();
  if (row >= rows) return;
  const float* x_t = x + row * dim;
  const bool mixes = smear_v2_mixes(row, ids, bos, seq_len);
  const float gate = smear_v2_gate(x_t, w, window);
  float seen = 0;  // dy_t · x_{t−1}
  if (mixes)
    for (int c = 4 * lane(); c < dim; c += 4 * kWarp) seen += dot(load4(dy + row * dim + c), load4(x_t - dim + c));
  seen = warp_sum(seen);
  const float dz = mixes ? *lambda * seen * gate * (1.0f - gate) : 0.0f;
  if (4 * lane() < window) store4(d_w_rows + row * window + 4 * lane(), load4(x_t + 4 * lane()) * dz);
  if (lane() == 0) {
    coefficient[row] = mixes ? *lambda * gate : 0.0f;
    d_z[row] = dz;
    d_lambda_rows[row] = mixes ? gate * seen : 0.0f;
  }
}

// dx = dy + coefficient[t + 1] dy[t + 1] (0 past the last row; a sequence's first row has
// coefficient 0) + d_z[t] w on the window's columns.
__global__ void smear_v2_dx_kernel(const float* w, int window, const float* dy, const float* coefficient,
                                   const float* d_z, int64_t rows, int dim, float* dx) {
  PGOLF_GRID_STRIDE(i, rows * dim) {
    const int64_t row = i / dim;
    const int column = int(i % dim);
    float g = dy[i];
    if (row + 1 < rows) g += coefficient[row + 1] * dy[i + dim];
    if (column < window) g += d_z[row] * w[column];
    dx[i] = g;
  }
}

// A warp per (row, KV head), over the group's heads in order; each lane holds its columns j =
// lane + 32 k of the value's gradient.
template <typename T>
__global__ void xsa_backward_kernel(const T* heads_out, const T* qkv, const T* d_out, int64_t rows, int heads,
                                    int kv_heads, int head_dim, T* d_in, float* d_v) {
  constexpr int kMaxPerLane = 256 / kWarp;
  const int64_t item = warp_item();
  if (item >= rows * kv_heads) return;
  const int64_t row = item / kv_heads;
  const int kv = int(item % kv_heads), group = heads / kv_heads;
  const T* v = xsa_value(qkv, row, heads, kv_heads, kv, head_dim);
  const float inv = xsa_inverse_norm(v, head_dim);
  float u[kMaxPerLane], d_u[kMaxPerLane];
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int j = lane() + kWarp * k;
    u[k] = j < head_dim ? to_float(v[j]) * inv : 0.0f;
    d_u[k] = 0;
  }
  for (int h = kv * group; h < (kv + 1) * group; ++h) {
    const int64_t at = (row * heads + h) * head_dim;
    float y_u = 0, dy_u = 0;
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int j = lane() + kWarp * k;
      if (j < head_dim) y_u += to_float(heads_out[at + j]) * u[k], dy_u += to_float(d_out[at + j]) * u[k];
    }
    y_u = warp_sum(y_u), dy_u = warp_sum(dy_u);
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int j = lane() + kWarp * k;
      if (j >= head_dim) continue;
      const float dy = to_float(d_out[at + j]);
      d_u[k] -= y_u * dy + dy_u * to_float(heads_out[at + j]);
      put(d_in + at + j, dy - dy_u * u[k]);  // after every read of this (row, head) by this lane
    }
  }
  // u = v / max(|v|, eps): through the norm where it is |v|.
  const bool normed = inv < 1e12f;
  float du_u = 0;
  for (int k = 0; k < kMaxPerLane; ++k) du_u += d_u[k] * u[k];
  du_u = normed ? warp_sum(du_u) : 0.0f;
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int j = lane() + kWarp * k;
    if (j < head_dim) d_v[(row * kv_heads + kv) * head_dim + j] = (d_u[k] - du_u * u[k]) * inv;
  }
}

__global__ void add_sum_kernel(const float* x, int64_t count, float* out) {
  __shared__ float total;
  block_sum<false>(x, count, &total);
  if (threadIdx.x == 0) *out += total;  // block_sum's thread 0 wrote it
}

__global__ void scale_kernel(const float* x, const float* factor, int64_t count, float* out) {
  const float f = *factor;
  PGOLF_GRID_STRIDE(i, count) out[i] = f * x[i];
}

__global__ void smear_backward_kernel(const float* x, const float* gate, const float* dy, int64_t rows, int seq_len,
                                      int dim, float* dx, float* d_gate_rows) {
  PGOLF_GRID_STRIDE(i, rows * dim) {
    const int64_t row = i / dim;
    const float mix = 1.0f / (1.0f + expf(-gate[i % dim]));
    const bool first = row % seq_len == 0, last = row % seq_len == seq_len - 1;
    const float kept = dy[i] * (1.0f - mix);
    dx[i] = last ? kept : kept + dy[i + dim] * mix;
    d_gate_rows[i] = dy[i] * ((first ? 0.0f : x[i - dim]) - x[i]) * (mix * (1.0f - mix));
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t count, __nv_bfloat16* out) {
  PGOLF_GRID_STRIDE(i, count) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void divide_by_norm_kernel(float* x, const float* squared_norm, int64_t count) {
  const float divisor = sqrtf(*squared_norm) + 1e-7f;
  PGOLF_GRID_STRIDE(i, count) x[i] /= divisor;
}

__global__ void apply_update_kernel(float* w, const float* u, int64_t count, float lr, float keep) {
  // keep = 1: the expression without decay, so a run without it is what it always was.
  PGOLF_GRID_STRIDE(i, count) w[i] = (keep == 1.0f ? w[i] : w[i] * keep) - lr * u[i];
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2,
                            float eps, float step_size, float root_c2, float keep) {
  PGOLF_GRID_STRIDE(i, count) {
    const float m_i = beta1 * m[i] + (1 - beta1) * g[i];
    const float v_i = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    m[i] = m_i, v[i] = v_i;
    w[i] = keep * w[i] - step_size * m_i / (sqrtf(v_i) / root_c2 + eps);
  }
}

__global__ void clip_by_norm_kernel(float* x, const float* squared_norm, int64_t count, float max_norm) {
  const float factor = max_norm / (sqrtf(*squared_norm) + 1e-6f);
  if (factor >= 1.0f) return;
  PGOLF_GRID_STRIDE(i, count) x[i] *= factor;
}

}  // namespace

void embedding_rms_norm_backward(const float* tok_emb, const uint16_t* ids, const float* dy, int64_t rows, int dim,
                                 float* d_rows, cudaStream_t stream) {
  if (rows == 0) return;
  with_row_vectors("embedding_rms_norm_backward", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    embedding_rms_norm_backward_kernel<kVectors>
        <<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(tok_emb, ids, dy, rows, dim, d_rows);
  });
  PGOLF_CUDA_CHECK_LAUNCH("embedding_rms_norm_backward");
}

template <typename T>
void qk_norm_rope_backward(const float* raw, const float* d_qkv, int64_t rows, int seq_len, int heads, int kv_heads,
                           int head_dim, int rotated_dims, const float* rope_cos, const float* rope_sin,
                           const float* q_gain, T* d_raw, float* d_gain_partial, cudaStream_t stream) {
  if (rows == 0) return;
  const RopeLaunch launch = rope_launch("qk_norm_rope_backward", rows, heads, kv_heads, head_dim, rotated_dims);
  qk_norm_rope_backward_kernel<<<launch.blocks, launch.threads, 0, stream>>>(
      raw, d_qkv, int(rows), launch.rows_per_block, seq_len, heads, kv_heads, head_dim, rotated_dims, rope_cos,
      rope_sin, q_gain, d_raw, d_gain_partial);
  PGOLF_CUDA_CHECK_LAUNCH("qk_norm_rope_backward");
}
template void qk_norm_rope_backward(const float*, const float*, int64_t, int, int, int, int, int, const float*,
                                    const float*, const float*, float*, float*, cudaStream_t);
template void qk_norm_rope_backward(const float*, const float*, int64_t, int, int, int, int, int, const float*,
                                    const float*, const float*, __nv_bfloat16*, float*, cudaStream_t);

void smear_backward(const float* x, const float* gate, const float* dy, int64_t rows, int seq_len, int dim, float* dx,
                    float* d_gate_rows, cudaStream_t stream) {
  if (rows == 0) return;
  smear_backward_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(x, gate, dy, rows, seq_len,
                                                                                        dim, dx, d_gate_rows);
  PGOLF_CUDA_CHECK_LAUNCH("smear_backward");
}

void smear_v2_backward(const float* x, const float* w, int window, const float* lambda, const uint16_t* ids, int bos,
                       const float* dy, int64_t rows, int seq_len, int dim, float* dx, float* d_lambda_rows,
                       float* d_w_rows, float* scratch, cudaStream_t stream) {
  if (rows == 0) return;
  check_smear_window("smear_v2_backward", window, dim);
  smear_v2_rows_kernel<<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(
      x, w, window, lambda, ids, bos, dy, rows, seq_len, dim, scratch, scratch + rows, d_lambda_rows, d_w_rows);
  PGOLF_CUDA_CHECK_LAUNCH("smear_v2_backward");
  smear_v2_dx_kernel<<<elementwise_blocks(rows * dim), kThreadsPerBlock, 0, stream>>>(w, window, dy, scratch,
                                                                                     scratch + rows, rows, dim, dx);
  PGOLF_CUDA_CHECK_LAUNCH("smear_v2_backward");
}

template <typename T>
void xsa_backward(const T* heads_out, const T* qkv, const T* d_out, int64_t rows, int heads, int kv_heads,
                  int head_dim, T* d_in, float* d_v, cudaStream_t stream) {
  if (rows == 0) return;
  if (head_dim > 256)
    throw std::invalid_argument("xsa_backward: head_dim " + std::to_string(head_dim) + " is over 256");
  xsa_backward_kernel<<<row_blocks(rows * kv_heads), kThreadsPerBlock, 0, stream>>>(heads_out, qkv, d_out, rows, heads,
                                                                                    kv_heads, head_dim, d_in, d_v);
  PGOLF_CUDA_CHECK_LAUNCH("xsa_backward");
}
template void xsa_backward(const float*, const float*, const float*, int64_t, int, int, int, float*, float*,
                           cudaStream_t);
template void xsa_backward(const __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*, int64_t, int, int, int,
                           __nv_bfloat16*, float*, cudaStream_t);

void add_sum(const float* x, int64_t count, float* out, cudaStream_t stream) {
  add_sum_kernel<<<1, 1024, 0, stream>>>(x, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("add_sum");
}

void scale(const float* x, const float* factor, int64_t count, float* out, cudaStream_t stream) {
  if (count == 0) return;
  scale_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, factor, count, out);
  PGOLF_CUDA_CHECK_LAUNCH("scale");
}

template <typename T>
void leaky_relu_square_backward(const float* pre, const float* d, int64_t count, float negative_slope, T* out,
                                cudaStream_t stream) {
  if (count == 0) return;
  leaky_relu_square_backward_kernel<<<vector_blocks(count), kThreadsPerBlock, 0, stream>>>(
      pre, d, count, negative_slope * negative_slope, out);
  PGOLF_CUDA_CHECK_LAUNCH("leaky_relu_square_backward");
}
template void leaky_relu_square_backward(const float*, const float*, int64_t, float, float*, cudaStream_t);
template void leaky_relu_square_backward(const float*, const float*, int64_t, float, __nv_bfloat16*, cudaStream_t);

int64_t column_sum_scratch(int dim) { return 2 * int64_t(kColumnChunks) * dim; }

void column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate, float* scratch,
                cudaStream_t stream) {
  if (dim == 0) return;
  column_sum_partial_kernel<<<dim3(unsigned((dim + kWarp - 1) / kWarp), kColumnChunks), kThreadsPerBlock, 0,
                              stream>>>(a, b, rows, dim, scratch);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_partial");
  column_sum_final_kernel<<<unsigned((dim + 255) / 256), 256, 0, stream>>>(scratch, kColumnChunks, dim, out,
                                                                            accumulate);
  PGOLF_CUDA_CHECK_LAUNCH("column_sum_final");
}

template <typename T>
void scaled_sum_backward(const ScaledSumGradient<T>& gradient, int64_t rows, int dim, float* scratch,
                         cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t chunks = std::min<int64_t>(kColumnChunks, row_blocks(rows));
  float* partial_x = scratch;
  float* partial_y = scratch + int64_t(kColumnChunks) * dim;
  with_row_vectors("scaled_sum_backward", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    scaled_sum_backward_kernel<kVectors>
        <<<unsigned(chunks), kThreadsPerBlock, 0, stream>>>(gradient, rows, dim, partial_x, partial_y);
  });
  PGOLF_CUDA_CHECK_LAUNCH("scaled_sum_backward");
  auto add_column_sums = [&](const float* partial, float* out) {
    if (!out) return;
    column_sum_final_kernel<<<unsigned((dim + 255) / 256), 256, 0, stream>>>(partial, int(chunks), dim, out, true);
    PGOLF_CUDA_CHECK_LAUNCH("scaled_sum_backward: column sums");
  };
  add_column_sums(partial_x, gradient.d_x_scale);
  add_column_sums(partial_y, gradient.d_y_scale);
}
template void scaled_sum_backward(const ScaledSumGradient<float>&, int64_t, int, float*, cudaStream_t);
template void scaled_sum_backward(const ScaledSumGradient<__nv_bfloat16>&, int64_t, int, float*, cudaStream_t);

void parallel_lanes_backward(float* d0, float* d1, bool from_mean, const float* in0, const float* in1,
                             const float* attn_out, const float* attn_scale, const float* mlp_out,
                             const float* mlp_scale, const float* lanes, int64_t rows, int dim, float* d_a, float* d_m,
                             float* row_products, cudaStream_t stream) {
  if (rows == 0) return;
  with_row_vectors("parallel_lanes_backward", dim, [&](auto vectors) {
    constexpr int kVectors = decltype(vectors)::value;
    parallel_lanes_backward_kernel<kVectors><<<row_blocks(rows), kThreadsPerBlock, 0, stream>>>(
        d0, d1, from_mean, in0, in1, attn_out, attn_scale, mlp_out, mlp_scale, lanes, rows, dim, d_a, d_m,
        row_products);
  });
  PGOLF_CUDA_CHECK_LAUNCH("parallel_lanes_backward");
}

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

// scaled_sum's norm of x alone (no y, no sum kept), written over x.
void rms_norm_rows(float* x, int64_t rows, int dim, cudaStream_t stream) {
  scaled_sum(x, nullptr, static_cast<const float*>(nullptr), nullptr, rows, dim, nullptr, x, stream);
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

void apply_update(float* w, const float* u, int64_t count, float lr, float keep, cudaStream_t stream) {
  if (count == 0) return;
  apply_update_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(w, u, count, lr, keep);
  PGOLF_CUDA_CHECK_LAUNCH("apply_update");
}

void adam(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2, float eps,
          float step_size, float root_c2, float keep, cudaStream_t stream) {
  if (count == 0) return;
  adam_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(w, g, m, v, count, beta1, beta2, eps,
                                                                          step_size, root_c2, keep);
  PGOLF_CUDA_CHECK_LAUNCH("adam");
}

void clip_by_norm(float* x, const float* squared_norm, int64_t count, float max_norm, cudaStream_t stream) {
  if (count == 0) return;
  clip_by_norm_kernel<<<elementwise_blocks(count), kThreadsPerBlock, 0, stream>>>(x, squared_norm, count, max_norm);
  PGOLF_CUDA_CHECK_LAUNCH("clip_by_norm");
}

}  // namespace pgolf::cuda
