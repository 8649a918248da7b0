// Causal GQA attention forward in fp32 with an online softmax (no scores in device memory), keeping
// each row's log-sum-exp for the backward.
// One block per (sequence, query head, tile of 64 queries), one query per thread: the thread keeps
// its q and output row in registers while the block stages tiles of keys and values in shared
// memory; scores are taken 16 keys at a time, so the running max and sum are rescaled once per 16.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/forward_kernels.h"
#include "kernels/train_kernels.h"

namespace pgolf::cuda {

namespace {

constexpr int kQueriesPerBlock = 64;
constexpr int kKeysPerTile = 64;
constexpr int kKeysPerChunk = 16;

template <int kHeadDim>
__global__ void __launch_bounds__(kQueriesPerBlock)
    attention_kernel(const float* qkv, int seq_len, int heads, int kv_heads, int skipped_tiles, float* out, float* lse) {
  constexpr int kVectors = kHeadDim / 4;  // float4s per head row
  const int sequence = blockIdx.x / heads, head = blockIdx.x % heads;
  const int kv_head = head / (heads / kv_heads);
  const int tile = skipped_tiles + gridDim.y - 1 - blockIdx.y;  // blocks start in the order given: longest rows first
  const int first_query = tile * kQueriesPerBlock;
  const int query = first_query + threadIdx.x;
  const int last_query = min(first_query + kQueriesPerBlock, seq_len) - 1;  // the block's last
  const int64_t row_width = int64_t(heads + 2 * kv_heads) * kHeadDim;
  const float* sequence_qkv = qkv + int64_t(sequence) * seq_len * row_width;
  const float* keys = sequence_qkv + int64_t(heads + kv_head) * kHeadDim;
  const float* values = sequence_qkv + int64_t(heads + kv_heads + kv_head) * kHeadDim;

  __shared__ float4 key_tile[kKeysPerTile][kVectors];
  __shared__ float4 value_tile[kKeysPerTile][kVectors];

  // Threads past the sequence's end compute on q = 0 (no NaNs) and write nothing.
  const bool active = query < seq_len;
  float q[kHeadDim], o[kHeadDim];
#pragma unroll
  for (int c = 0; c < kVectors; ++c) {
    const float4 v = active ? reinterpret_cast<const float4*>(sequence_qkv + query * row_width + head * kHeadDim)[c]
                            : make_float4(0, 0, 0, 0);
    q[4 * c] = v.x, q[4 * c + 1] = v.y, q[4 * c + 2] = v.z, q[4 * c + 3] = v.w;
  }
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) o[d] = 0;
  const float scale = 1.0f / sqrtf(float(kHeadDim));
  float running_max = -INFINITY, running_sum = 0;

  for (int first_key = 0; first_key <= last_query; first_key += kKeysPerTile) {
    __syncthreads();  // the previous tile is no longer read
    for (int i = threadIdx.x; i < kKeysPerTile * kVectors; i += kQueriesPerBlock) {
      const int key = first_key + i / kVectors, c = i % kVectors;
      // Rows past the sequence are zeros: masked anyway, but 0 * garbage could be NaN.
      const bool inside = key < seq_len;
      key_tile[i / kVectors][c] =
          inside ? reinterpret_cast<const float4*>(keys + key * row_width)[c] : make_float4(0, 0, 0, 0);
      value_tile[i / kVectors][c] =
          inside ? reinterpret_cast<const float4*>(values + key * row_width)[c] : make_float4(0, 0, 0, 0);
    }
    __syncthreads();
    const int tile_keys = min(kKeysPerTile, last_query + 1 - first_key);  // keys any query of the block sees
    for (int chunk = 0; chunk < tile_keys; chunk += kKeysPerChunk) {
      float s[kKeysPerChunk];
#pragma unroll
      for (int j = 0; j < kKeysPerChunk; ++j) s[j] = 0;
#pragma unroll
      for (int c = 0; c < kVectors; ++c) {
#pragma unroll
        for (int j = 0; j < kKeysPerChunk; ++j) {
          const float4 k = key_tile[chunk + j][c];
          s[j] += q[4 * c] * k.x + q[4 * c + 1] * k.y + q[4 * c + 2] * k.z + q[4 * c + 3] * k.w;
        }
      }
      float chunk_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeysPerChunk; ++j) {
        s[j] = first_key + chunk + j <= query ? s[j] * scale : -INFINITY;
        chunk_max = fmaxf(chunk_max, s[j]);
      }
      // Finite from the first chunk on: key 0 is seen by every query.
      const float new_max = fmaxf(running_max, chunk_max);
      const float correction = expf(running_max - new_max);  // 0 on the first chunk
      running_sum *= correction;
#pragma unroll
      for (int d = 0; d < kHeadDim; ++d) o[d] *= correction;
#pragma unroll
      for (int j = 0; j < kKeysPerChunk; ++j) {
        const float p = expf(s[j] - new_max);
        running_sum += p;
#pragma unroll
        for (int c = 0; c < kVectors; ++c) {
          const float4 v = value_tile[chunk + j][c];
          o[4 * c] += p * v.x, o[4 * c + 1] += p * v.y, o[4 * c + 2] += p * v.z, o[4 * c + 3] += p * v.w;
        }
      }
      running_max = new_max;
    }
  }

  if (!active) return;
  float4* out_row = reinterpret_cast<float4*>(out + (int64_t(sequence) * seq_len + query) * heads * kHeadDim +
                                              head * kHeadDim);
#pragma unroll
  for (int c = 0; c < kVectors; ++c)
    out_row[c] = make_float4(o[4 * c] / running_sum, o[4 * c + 1] / running_sum, o[4 * c + 2] / running_sum,
                             o[4 * c + 3] / running_sum);
  if (lse) lse[(int64_t(sequence) * seq_len + query) * heads + head] = running_max + logf(running_sum);
}

template <int kHeadDim>
void launch(const float* qkv, int sequences, int seq_len, int heads, int kv_heads, float* out, float* lse,
            int first_query, cudaStream_t stream) {
  const int skipped = first_query / kQueriesPerBlock, tiles = (seq_len + kQueriesPerBlock - 1) / kQueriesPerBlock;
  const dim3 grid(unsigned(sequences * heads), unsigned(tiles - skipped));
  attention_kernel<kHeadDim><<<grid, kQueriesPerBlock, 0, stream>>>(qkv, seq_len, heads, kv_heads, skipped, out, lse);
  PGOLF_CUDA_CHECK_LAUNCH("attention");
}

}  // namespace

void check_first_query(const char* kernel, int first_query, int seq_len) {
  if (first_query < 0 || (first_query >= seq_len && first_query > 0))
    throw std::invalid_argument(std::string(kernel) + ": first query " + std::to_string(first_query) +
                                " outside a sequence of " + std::to_string(seq_len));
}

bool attention_supports_head_dim(int head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64;
}

void attention_with_lse(const float* qkv, int sequences, int seq_len, int heads, int kv_heads, int head_dim,
                        float* out, float* lse, cudaStream_t stream, int first_query) {
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw std::invalid_argument("attention: heads " + std::to_string(heads) + " is not a multiple of kv_heads " +
                                std::to_string(kv_heads));
  check_first_query("attention", first_query, seq_len);
  if (sequences == 0 || seq_len == 0) return;
  switch (head_dim) {
    case 8: return launch<8>(qkv, sequences, seq_len, heads, kv_heads, out, lse, first_query, stream);
    case 16: return launch<16>(qkv, sequences, seq_len, heads, kv_heads, out, lse, first_query, stream);
    case 32: return launch<32>(qkv, sequences, seq_len, heads, kv_heads, out, lse, first_query, stream);
    case 64: return launch<64>(qkv, sequences, seq_len, heads, kv_heads, out, lse, first_query, stream);
  }
  throw std::invalid_argument("attention: head_dim " + std::to_string(head_dim) + " is not 8, 16, 32 or 64");
}

}  // namespace pgolf::cuda
