// Causal GQA attention backward in fp32, flash style: the probabilities are recomputed from q, k
// and the forward's log-sum-exp, never stored. With p = exp(scale q.k - lse), dp = d_out.v and
// delta = d_out.out (per row): ds = p (dp - delta); dq = scale sum_k ds k; dk = scale sum_q ds q;
// dv = sum_q p d_out. Three kernels, one row per thread as the forward: dq by query (keys
// staged in shared memory), dk and dv by key (queries of every head of the KV group staged), so
// every sum has one owner and a fixed order: no atomics.
#include <cmath>
#include <stdexcept>
#include <string>

#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/train_kernels.h"
#include "kernels/warp_rows.cuh"

namespace pgolf::cuda {

namespace {

constexpr int kRowsPerBlock = 64;  // queries (dq) or keys (dk, dv) per block, one per thread
constexpr int kTile = 32;          // keys or queries staged per round

// Where a sequence's q, k or v head starts in the qkv layout; rows are row_width apart.
struct QkvLayout {
  int heads, kv_heads, head_dim;
  __device__ int64_t row_width() const { return int64_t(heads + 2 * kv_heads) * head_dim; }
  __device__ int64_t q(int head) const { return int64_t(head) * head_dim; }
  __device__ int64_t k(int kv) const { return int64_t(heads + kv) * head_dim; }
  __device__ int64_t v(int kv) const { return int64_t(heads + kv_heads + kv) * head_dim; }
};

// A thread per 4 columns of an item (a (row, head) pair): the item's head_dim / 4 threads are
// adjacent lanes (1 << shift of them), each reading 16 (float) or 8 (bf16) bytes of both inputs.
template <typename T>
__global__ void delta_kernel(const T* out, const T* d_out, int64_t items, int head_dim, int shift, float* delta) {
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, item = thread >> shift;
  const int column = 4 * int(thread & ((1 << shift) - 1));
  const bool inside = item < items;
  float sum = inside ? dot(load4(out + item * head_dim + column), load4(d_out + item * head_dim + column)) : 0.0f;
  sum = group_sum(sum, 1 << shift);
  if (inside && column == 0) delta[item] = sum;
}

template <typename T>
void launch_delta(const T* out, const T* d_out, int64_t items, int head_dim, float* delta, cudaStream_t stream) {
  if (items == 0) return;
  int shift = 0;
  while ((4 << shift) < head_dim) ++shift;
  if ((4 << shift) != head_dim || shift > 5)
    throw std::invalid_argument("attention_delta: head_dim " + std::to_string(head_dim) +
                                " is not 4 times a power of two up to 32");
  const int64_t threads = items << shift;
  delta_kernel<<<unsigned((threads + 255) / 256), 256, 0, stream>>>(out, d_out, items, head_dim, shift, delta);
  PGOLF_CUDA_CHECK_LAUNCH("attention_delta");
}

template <int kHeadDim>
__device__ void load_row(const float* src, bool inside, float* dst) {
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) dst[d] = inside ? src[d] : 0.0f;
}

template <int kHeadDim>
__device__ float dot(const float* a, const float* b) {
  float s = 0;
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) s += a[d] * b[d];
  return s;
}

// One thread per query: dq = scale * sum over keys <= query of ds * k.
template <int kHeadDim>
__global__ void __launch_bounds__(kRowsPerBlock)
    attention_dq_kernel(const float* qkv, const float* lse, const float* d_out, const float* delta, int seq_len,
                        QkvLayout layout, float* d_qkv) {
  const int heads = layout.heads;
  const int sequence = blockIdx.x / heads, head = blockIdx.x % heads;
  const int kv = head / (heads / layout.kv_heads);
  const int first_query = (gridDim.y - 1 - blockIdx.y) * kRowsPerBlock;
  const int query = first_query + threadIdx.x;
  const int last_query = min(first_query + kRowsPerBlock, seq_len) - 1;
  const bool active = query < seq_len;
  const int64_t width = layout.row_width();
  const float* base = qkv + int64_t(sequence) * seq_len * width;
  const int64_t row = int64_t(sequence) * seq_len + query;  // the token's row
  const float scale = 1.0f / sqrtf(float(kHeadDim));

  float q[kHeadDim], g[kHeadDim], dq[kHeadDim];
  load_row<kHeadDim>(base + query * width + layout.q(head), active, q);
  load_row<kHeadDim>(d_out + row * heads * kHeadDim + head * kHeadDim, active, g);
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) dq[d] = 0;
  const float row_lse = active ? lse[row * heads + head] : 0.0f;
  const float row_delta = active ? delta[row * heads + head] : 0.0f;

  __shared__ float keys[kTile][kHeadDim], values[kTile][kHeadDim];
  for (int first_key = 0; first_key <= last_query; first_key += kTile) {
    __syncthreads();
    for (int i = threadIdx.x; i < kTile * kHeadDim; i += kRowsPerBlock) {
      const int key = first_key + i / kHeadDim, d = i % kHeadDim;
      const bool inside = key < seq_len;
      keys[i / kHeadDim][d] = inside ? base[key * width + layout.k(kv) + d] : 0.0f;
      values[i / kHeadDim][d] = inside ? base[key * width + layout.v(kv) + d] : 0.0f;
    }
    __syncthreads();
    const int tile_keys = min(kTile, last_query + 1 - first_key);
    for (int j = 0; j < tile_keys; ++j) {
      if (first_key + j > query) break;  // causal: later keys only grow
      const float p = expf(scale * dot<kHeadDim>(q, keys[j]) - row_lse);
      const float ds = p * (dot<kHeadDim>(g, values[j]) - row_delta) * scale;
#pragma unroll
      for (int d = 0; d < kHeadDim; ++d) dq[d] += ds * keys[j][d];
    }
  }
  if (!active) return;
  float* out = d_qkv + int64_t(sequence) * seq_len * width + query * width + layout.q(head);
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) out[d] = dq[d];
}

// One thread per key of one KV head, over the queries at or after it of every query head that
// reads this KV head: dk (kWantK) or dv.
template <int kHeadDim, bool kWantK>
__global__ void __launch_bounds__(kRowsPerBlock)
    attention_dkv_kernel(const float* qkv, const float* lse, const float* d_out, const float* delta, int seq_len,
                         QkvLayout layout, float* d_qkv) {
  const int heads = layout.heads, kv_heads = layout.kv_heads, group = heads / kv_heads;
  const int sequence = blockIdx.x / kv_heads, kv = blockIdx.x % kv_heads;
  const int first_key = blockIdx.y * kRowsPerBlock;
  const int key = first_key + threadIdx.x;
  const bool active = key < seq_len;
  const int64_t width = layout.row_width();
  const float* base = qkv + int64_t(sequence) * seq_len * width;
  const int64_t sequence_row = int64_t(sequence) * seq_len;
  const float scale = 1.0f / sqrtf(float(kHeadDim));

  float k[kHeadDim], v[kHeadDim], acc[kHeadDim];
  load_row<kHeadDim>(base + key * width + layout.k(kv), active, k);
  if (kWantK) load_row<kHeadDim>(base + key * width + layout.v(kv), active, v);
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) acc[d] = 0;

  __shared__ float queries[kTile][kHeadDim], grads[kTile][kHeadDim], tile_lse[kTile], tile_delta[kTile];
  for (int h = kv * group; h < (kv + 1) * group; ++h) {
    for (int first_query = first_key; first_query < seq_len; first_query += kTile) {
      __syncthreads();
      for (int i = threadIdx.x; i < kTile * kHeadDim; i += kRowsPerBlock) {
        const int query = first_query + i / kHeadDim, d = i % kHeadDim;
        const bool inside = query < seq_len;
        queries[i / kHeadDim][d] = inside ? base[query * width + layout.q(h) + d] : 0.0f;
        grads[i / kHeadDim][d] = inside ? d_out[(sequence_row + query) * heads * kHeadDim + h * kHeadDim + d] : 0.0f;
      }
      for (int i = threadIdx.x; i < kTile; i += kRowsPerBlock) {
        const bool inside = first_query + i < seq_len;
        tile_lse[i] = inside ? lse[(sequence_row + first_query + i) * heads + h] : 0.0f;
        tile_delta[i] = inside ? delta[(sequence_row + first_query + i) * heads + h] : 0.0f;
      }
      __syncthreads();
      const int tile_queries = min(kTile, seq_len - first_query);
      for (int i = 0; i < tile_queries; ++i) {
        if (first_query + i < key) continue;  // causal: the query must not precede the key
        const float p = expf(scale * dot<kHeadDim>(queries[i], k) - tile_lse[i]);
        if (kWantK) {
          const float ds = p * (dot<kHeadDim>(grads[i], v) - tile_delta[i]) * scale;
#pragma unroll
          for (int d = 0; d < kHeadDim; ++d) acc[d] += ds * queries[i][d];
        } else {
#pragma unroll
          for (int d = 0; d < kHeadDim; ++d) acc[d] += p * grads[i][d];
        }
      }
    }
  }
  if (!active) return;
  float* out = d_qkv + int64_t(sequence) * seq_len * width + key * width + (kWantK ? layout.k(kv) : layout.v(kv));
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) out[d] = acc[d];
}

template <int kHeadDim>
void launch(const float* qkv, const float* lse, const float* d_out, const float* delta, int sequences, int seq_len,
            QkvLayout layout, float* d_qkv, cudaStream_t stream) {
  const unsigned tiles = unsigned((seq_len + kRowsPerBlock - 1) / kRowsPerBlock);
  attention_dq_kernel<kHeadDim><<<dim3(unsigned(sequences * layout.heads), tiles), kRowsPerBlock, 0, stream>>>(
      qkv, lse, d_out, delta, seq_len, layout, d_qkv);
  PGOLF_CUDA_CHECK_LAUNCH("attention_dq");
  const dim3 grid(unsigned(sequences * layout.kv_heads), tiles);
  attention_dkv_kernel<kHeadDim, true><<<grid, kRowsPerBlock, 0, stream>>>(qkv, lse, d_out, delta, seq_len, layout,
                                                                          d_qkv);
  PGOLF_CUDA_CHECK_LAUNCH("attention_dk");
  attention_dkv_kernel<kHeadDim, false><<<grid, kRowsPerBlock, 0, stream>>>(qkv, lse, d_out, delta, seq_len, layout,
                                                                           d_qkv);
  PGOLF_CUDA_CHECK_LAUNCH("attention_dv");
}

}  // namespace

void attention_delta(const float* out, const float* d_out, int64_t items, int head_dim, float* delta,
                     cudaStream_t stream) {
  launch_delta(out, d_out, items, head_dim, delta, stream);
}
void attention_delta(const __nv_bfloat16* out, const __nv_bfloat16* d_out, int64_t items, int head_dim, float* delta,
                     cudaStream_t stream) {
  launch_delta(out, d_out, items, head_dim, delta, stream);
}

void attention_backward(const float* qkv, const float* out, const float* lse, const float* d_out, int sequences,
                        int seq_len, int heads, int kv_heads, int head_dim, float* d_qkv, float* d_rows_scratch,
                        cudaStream_t stream) {
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw std::invalid_argument("attention_backward: heads " + std::to_string(heads) +
                                " is not a multiple of kv_heads " + std::to_string(kv_heads));
  if (sequences == 0 || seq_len == 0) return;
  attention_delta(out, d_out, int64_t(sequences) * seq_len * heads, head_dim, d_rows_scratch, stream);
  const QkvLayout layout{heads, kv_heads, head_dim};
  switch (head_dim) {
    case 8: return launch<8>(qkv, lse, d_out, d_rows_scratch, sequences, seq_len, layout, d_qkv, stream);
    case 16: return launch<16>(qkv, lse, d_out, d_rows_scratch, sequences, seq_len, layout, d_qkv, stream);
    case 32: return launch<32>(qkv, lse, d_out, d_rows_scratch, sequences, seq_len, layout, d_qkv, stream);
    case 64: return launch<64>(qkv, lse, d_out, d_rows_scratch, sequences, seq_len, layout, d_qkv, stream);
  }
  throw std::invalid_argument("attention_backward: head_dim " + std::to_string(head_dim) + " is not 8, 16, 32 or 64");
}

}  // namespace pgolf::cuda
