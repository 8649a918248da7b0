// Causal GQA attention forward and backward on bf16 tensor cores (mma.sync m16n8k16, fp32
// accumulators), flash style: no scores in device memory, the backward recomputes them from the
// forward's log-sum-exp. The maths of attention.cu / attention_backward.cu (the fp32 kernels,
// which stay the oracle) on bf16 q, k, v, d_out and output; probabilities and score gradients are
// rounded to bf16 as they enter the second product of each pair; softmax and every sum are fp32.
//
// A block is 8 warps, each owning 16 rows (queries in the forward and dq, keys in dk/dv) of a
// 128-row tile; the other side is staged 64 rows at a time, and a warp skips the staged rows that
// causality hides from all of its own. Fragment layouts are the PTX ISA's for m16n8k16 (g = lane / 4,
// t = lane % 4): A holds rows g, g + 8 and columns 2t, 2t + 1 (+ 8); B holds k rows 2t, 2t + 1 (+ 8)
// of column g; C holds rows g, g + 8 and columns 2t, 2t + 1. A C fragment pair (two 8-column
// tiles) is therefore already an A fragment once packed to bf16, so P and dS never leave
// registers. B operands stored k-major (V, K, Q, d_out as the second factor) load through
// ldmatrix .trans. Every sum has one owner: no atomics, deterministic.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/forward_kernels.h"
#include "kernels/train_kernels.h"

namespace pgolf::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockRows = 16 * kWarps;  // the block's own rows
constexpr int kTile = 64;                // the other side's rows staged per round
constexpr float kLog2e = 1.4426950408889634f;

// Shared tiles pad each row by 8 bf16 (16 bytes): the 8 rows a fragment load touches fall in
// different banks, and rows stay 16-byte aligned for ldmatrix.
template <int D>
using Rows = bf16[D + 8];

__device__ inline uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);  // .x (low) is the lower column
  return *reinterpret_cast<const uint32_t*>(&pair);
}

__device__ inline uint32_t load_pair(const bf16* at) { return *reinterpret_cast<const uint32_t*>(at); }

// c += a b for one 16x8 output tile.
__device__ inline void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The A fragment of rows [row, row + 16) and columns [col, col + 16) of a row-major shared tile.
template <int D>
__device__ inline void load_a(const Rows<D>* tile, int row, int col, uint32_t (&a)[4]) {
  const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  a[0] = load_pair(&tile[row + g][col + 2 * t]);
  a[1] = load_pair(&tile[row + g + 8][col + 2 * t]);
  a[2] = load_pair(&tile[row + g][col + 2 * t + 8]);
  a[3] = load_pair(&tile[row + g + 8][col + 2 * t + 8]);
}

// c += a B for one 8-column tile, B[k][n] = tile[n0 + n][k0 + k]: the tile holds B's columns as rows.
template <int D>
__device__ inline void mma_b_rows(float (&c)[4], const uint32_t (&a)[4], const Rows<D>* tile, int n0, int k0) {
  const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  mma(c, a, load_pair(&tile[n0 + g][k0 + 2 * t]), load_pair(&tile[n0 + g][k0 + 2 * t + 8]));
}

// c0 += a B and c1 += a B' for the 8-column tiles at n0 and n0 + 8, B[k][n] = tile[k0 + k][n0 + n]
// (the tile holds B itself): four 8x8 matrices through ldmatrix .trans, lanes 8i..8i+7 giving the
// row addresses of matrix i (rows k0 (+8), columns n0 (+8)).
template <int D>
__device__ inline void mma_b_columns(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4], const Rows<D>* tile,
                                     int k0, int n0) {
  const int lane = threadIdx.x % 32, matrix = lane / 8;
  const bf16* row = &tile[k0 + (matrix & 1) * 8 + lane % 8][n0 + (matrix >> 1) * 8];
  uint32_t b[4];
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
  mma(c0, a, b[0], b[1]);
  mma(c1, a, b[2], b[3]);
}

// Columns 16 kk .. 16 kk + 15 of a 16-row block held as C fragments, packed as an A fragment.
__device__ inline void c_to_a(const float (&low)[4], const float (&high)[4], uint32_t (&a)[4]) {
  a[0] = pack_bf16(low[0], low[1]);
  a[1] = pack_bf16(low[2], low[3]);
  a[2] = pack_bf16(high[0], high[1]);
  a[3] = pack_bf16(high[2], high[3]);
}

// c += a X^T over the staged tile X [kTile rows, D] (a: 16 rows of D as A fragments): 16 x kTile
// products of one warp's rows with the tile's rows (scores; d_out . v).
template <int D>
__device__ inline void products_with_rows(float (&c)[kTile / 8][4], const uint32_t (&a)[D / 16][4], const Rows<D>* tile) {
#pragma unroll
  for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) mma_b_rows<D>(c[j], a[kk], tile, 8 * j, 16 * kk);
}

// acc += w X for w [16, kTile] held as C fragments (probabilities, score gradients; rounded to
// bf16 here) and the staged tile X [kTile rows, D].
template <int D>
__device__ inline void weighted_sum_of_rows(float (&acc)[D / 8][4], const float (&w)[kTile / 8][4], const Rows<D>* tile) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    uint32_t a[4];
    c_to_a(w[2 * kk], w[2 * kk + 1], a);
#pragma unroll
    for (int n = 0; n < D / 16; ++n) mma_b_columns<D>(acc[2 * n], acc[2 * n + 1], a, tile, 16 * kk, 16 * n);
  }
}

// Stages rows [first, first + kRows) of one head (D columns at src + row * width) into tile, 16
// bytes per load; rows at or past seq_len are zeros.
template <int D, int kRows>
__device__ void stage(const bf16* src, int64_t width, int first, int seq_len, Rows<D>* tile) {
  constexpr int kVectors = D / 8;
  for (int i = threadIdx.x; i < kRows * kVectors; i += kThreads) {
    const int r = i / kVectors, d = 8 * (i % kVectors), row = first + r;
    *reinterpret_cast<uint4*>(&tile[r][d]) =
        row < seq_len ? *reinterpret_cast<const uint4*>(src + row * width + d) : make_uint4(0, 0, 0, 0);
  }
}

// This thread's share of rows [first, first + kRows) of one head, as stage() spreads them: loaded
// into registers while the block computes on the current tile, stored once that is done (the
// global loads' latency hides behind the tile's products).
template <int D, int kRows>
struct Prefetch {
  static constexpr int kVectors = kRows * D / 8, kPerThread = (kVectors + kThreads - 1) / kThreads;
  uint4 part[kPerThread];
  __device__ void load(const bf16* src, int64_t width, int first, int seq_len) {
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int i = threadIdx.x + k * kThreads, r = i / (D / 8), d = 8 * (i % (D / 8)), row = first + r;
      part[k] = i < kVectors && row < seq_len ? *reinterpret_cast<const uint4*>(src + row * width + d)
                                              : make_uint4(0, 0, 0, 0);
    }
  }
  __device__ void store(Rows<D>* tile) const {
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int i = threadIdx.x + k * kThreads;
      if (i < kVectors) *reinterpret_cast<uint4*>(&tile[i / (D / 8)][8 * (i % (D / 8))]) = part[k];
    }
  }
};

// The max (or sum) over the 4 threads that share a fragment row.
__device__ inline float row_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ inline float row_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

struct Layout {
  int seq_len, heads, kv_heads;
  int skipped_tiles = 0;  // query tiles left out at the start (the forward's first_query)
  __device__ int64_t width(int d) const { return int64_t(heads + 2 * kv_heads) * d; }
};

// Rows [first, first + kBlockRows) of one head, into this warp's A fragments (its 16 rows) through
// the shared tile `staging`, free again on return.
template <int D>
__device__ void load_own_rows(const bf16* src, int64_t width, int first, int seq_len, Rows<D>* staging,
                              uint32_t (&a)[D / 16][4]) {
  stage<D, kBlockRows>(src, width, first, seq_len, staging);
  __syncthreads();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) load_a<D>(staging, 16 * (threadIdx.x / 32), 16 * kk, a[kk]);
  __syncthreads();
}

// The forward's and dq's block: (sequence, query head) by blockIdx.x, its 128-query tile by
// blockIdx.y (longest tiles first), and this thread's two query rows.
struct QueryBlock {
  int sequence, head, kv, first_query, last_query, warp_last_query, t, query[2];
  int64_t width, first_row;
  const bf16* base;  // the sequence's first qkv row
  template <int D>
  __device__ static QueryBlock of(const bf16* qkv, Layout layout) {
    QueryBlock b;
    const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4;
    b.sequence = blockIdx.x / layout.heads, b.head = blockIdx.x % layout.heads;
    b.kv = b.head / (layout.heads / layout.kv_heads);
    b.first_query = (layout.skipped_tiles + gridDim.y - 1 - blockIdx.y) * kBlockRows;
    b.last_query = min(b.first_query + kBlockRows, layout.seq_len) - 1;
    b.warp_last_query = b.first_query + 16 * warp + 15;
    b.t = threadIdx.x % 4;
    b.query[0] = b.first_query + 16 * warp + g, b.query[1] = b.query[0] + 8;
    b.width = layout.width(D);
    b.first_row = int64_t(b.sequence) * layout.seq_len;
    b.base = qkv + b.first_row * b.width;
    return b;
  }
};

// The key and value tiles of a query block's KV head, from key 0 to its last query: stage(k)
// makes tile k the one in shared memory (every thread calls it) and starts loading the next.
template <int D>
struct KeyValueTiles {
  const bf16 *keys, *values;
  int64_t width;
  int seq_len, last_query;
  Prefetch<D, kTile> next_k, next_v;
  __device__ KeyValueTiles(const QueryBlock& b, Layout layout)
      : keys(b.base + (layout.heads + b.kv) * D),
        values(b.base + (layout.heads + layout.kv_heads + b.kv) * D),
        width(b.width),
        seq_len(layout.seq_len),
        last_query(b.last_query) {
    next_k.load(keys, width, 0, seq_len);
    next_v.load(values, width, 0, seq_len);
  }
  __device__ void stage(int first_key, Rows<D>* k_tile, Rows<D>* v_tile) {
    __syncthreads();  // the previous tiles are no longer read
    next_k.store(k_tile);
    next_v.store(v_tile);
    __syncthreads();
    if (first_key + kTile <= last_query) {
      next_k.load(keys, width, first_key + kTile, seq_len);
      next_v.load(values, width, first_key + kTile, seq_len);
    }
  }
};

// One block per (sequence, query head, 128-query tile), longest tiles first; two blocks per
// multiprocessor (registers capped at 128: one block of 8 warps left the schedulers idle).
template <int D>
__global__ void __launch_bounds__(kThreads, 2) forward_kernel(const bf16* qkv, Layout layout, bf16* out, float* lse) {
  __shared__ __align__(16) Rows<D> q_tile[kBlockRows], k_tile[kTile], v_tile[kTile];
  const QueryBlock b = QueryBlock::of<D>(qkv, layout);
  const int t = b.t, heads = layout.heads;
  uint32_t q[D / 16][4];
  load_own_rows<D>(b.base + b.head * D, b.width, b.first_query, layout.seq_len, q_tile, q);

  float o[D / 8][4] = {};
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0, 0};
  const float scale = kLog2e / sqrtf(float(D));  // scores in log2 units: exp2 below
  KeyValueTiles<D> tiles(b, layout);
  for (int first_key = 0; first_key <= b.last_query; first_key += kTile) {
    tiles.stage(first_key, k_tile, v_tile);
    if (first_key > b.warp_last_query) continue;  // causality hides the whole tile from this warp

    float s[kTile / 8][4] = {};
    products_with_rows<D>(s, q, k_tile);

    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = first_key + 8 * j + 2 * t + (e & 1);
        s[j][e] = key <= b.query[e / 2] ? s[j][e] * scale : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
      }
    // Finite from the first tile on: key 0 is seen by every query.
    float new_max[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      new_max[r] = fmaxf(running_max[r], row_max(tile_max[r]));
      const float correction = exp2f(running_max[r] - new_max[r]);  // 0 on the first tile
      running_sum[r] *= correction;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) o[n][2 * r] *= correction, o[n][2 * r + 1] *= correction;
      running_max[r] = new_max[r];
    }
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - new_max[e / 2]);
        running_sum[e / 2] += s[j][e];
      }
    weighted_sum_of_rows<D>(o, s, v_tile);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = row_sum(running_sum[r]);
    if (b.query[r] >= layout.seq_len) continue;
    const int64_t row = b.first_row + b.query[r];
    bf16* out_row = out + row * heads * D + b.head * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<uint32_t*>(out_row + 8 * n + 2 * t) = pack_bf16(o[n][2 * r] / sum, o[n][2 * r + 1] / sum);
    if (lse && t == 0) lse[row * heads + b.head] = running_max[r] / kLog2e + logf(sum);
  }
}

// dq, one block per (sequence, query head, 128-query tile): over the keys up to the tile's last
// query, p = exp(scale q.k - lse), ds = p (d_out.v - delta), dq = scale sum ds k.
template <int D>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const bf16* qkv, const float* lse, const bf16* d_out, const float* delta, Layout layout, float* d_qkv) {
  __shared__ __align__(16) Rows<D> own[kBlockRows], k_tile[kTile], v_tile[kTile];
  const QueryBlock b = QueryBlock::of<D>(qkv, layout);
  const int t = b.t, heads = layout.heads;
  uint32_t q[D / 16][4], dout[D / 16][4];
  load_own_rows<D>(b.base + b.head * D, b.width, b.first_query, layout.seq_len, own, q);
  load_own_rows<D>(d_out + b.first_row * heads * D + b.head * D, int64_t(heads) * D, b.first_query, layout.seq_len,
                   own, dout);
  float row_lse[2], row_delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool inside = b.query[r] < layout.seq_len;
    row_lse[r] = inside ? lse[(b.first_row + b.query[r]) * heads + b.head] * kLog2e : 0.0f;
    row_delta[r] = inside ? delta[(b.first_row + b.query[r]) * heads + b.head] : 0.0f;
  }

  float dq[D / 8][4] = {};
  const float scale = 1.0f / sqrtf(float(D));
  KeyValueTiles<D> tiles(b, layout);
  for (int first_key = 0; first_key <= b.last_query; first_key += kTile) {
    tiles.stage(first_key, k_tile, v_tile);
    if (first_key > b.warp_last_query) continue;

    float p[kTile / 8][4] = {}, dp[kTile / 8][4] = {};
    products_with_rows<D>(p, q, k_tile);
    products_with_rows<D>(dp, dout, v_tile);
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = first_key + 8 * j + 2 * t + (e & 1);
        p[j][e] = key <= b.query[e / 2] ? exp2f(p[j][e] * scale * kLog2e - row_lse[e / 2]) : 0.0f;
        p[j][e] *= dp[j][e] - row_delta[e / 2];  // now ds
      }
    weighted_sum_of_rows<D>(dq, p, k_tile);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (b.query[r] >= layout.seq_len) continue;
    float* out = d_qkv + (b.first_row + b.query[r]) * b.width + b.head * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<float2*>(out + 8 * n + 2 * t) = make_float2(dq[n][2 * r] * scale, dq[n][2 * r + 1] * scale);
  }
}

// dk and dv, one block per (sequence, KV head, 128-key tile), over the queries at or after the
// tile of every query head reading the KV head: dv = sum p d_out, dk = scale sum ds q.
template <int D>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(const bf16* qkv, const float* lse, const bf16* d_out, const float* delta, Layout layout,
               float* d_qkv) {
  __shared__ __align__(16) Rows<D> own[kBlockRows], q_tile[kTile], dout_tile[kTile];
  __shared__ float tile_lse[kTile], tile_delta[kTile];
  const int heads = layout.heads, kv_heads = layout.kv_heads, seq_len = layout.seq_len, group = heads / kv_heads;
  const int sequence = blockIdx.x / kv_heads, kv = blockIdx.x % kv_heads;
  const int first_key = blockIdx.y * kBlockRows;  // blocks start in the order given: longest first
  const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  const int64_t width = layout.width(D);
  const bf16* base = qkv + int64_t(sequence) * seq_len * width;
  const int64_t first_row = int64_t(sequence) * seq_len;
  const int key[2] = {first_key + 16 * warp + g, first_key + 16 * warp + g + 8};
  const int warp_first_key = first_key + 16 * warp;

  uint32_t k[D / 16][4], v[D / 16][4];
  load_own_rows<D>(base + (heads + kv) * D, width, first_key, seq_len, own, k);
  load_own_rows<D>(base + (heads + kv_heads + kv) * D, width, first_key, seq_len, own, v);

  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  const float scale = 1.0f / sqrtf(float(D));
  // The (head, query tile) rounds in order: heads of the group, each from the block's first key on.
  const int query_tiles = (seq_len - first_key + kTile - 1) / kTile, rounds = group * query_tiles;
  Prefetch<D, kTile> next_q, next_dout;
  float next_lse = 0, next_delta = 0;
  auto prefetch = [&](int round) {
    const int h = kv * group + round / query_tiles, first_query = first_key + round % query_tiles * kTile;
    next_q.load(base + h * D, width, first_query, seq_len);
    next_dout.load(d_out + first_row * heads * D + h * D, int64_t(heads) * D, first_query, seq_len);
    const int query = first_query + threadIdx.x;
    if (threadIdx.x < kTile) {
      // An infinite lse zeroes the probabilities of rows past the sequence.
      next_lse = query < seq_len ? lse[(first_row + query) * heads + h] * kLog2e : INFINITY;
      next_delta = query < seq_len ? delta[(first_row + query) * heads + h] : 0.0f;
    }
  };
  prefetch(0);
  for (int round = 0; round < rounds; ++round) {
    const int first_query = first_key + round % query_tiles * kTile;
    __syncthreads();
    next_q.store(q_tile);
    next_dout.store(dout_tile);
    if (threadIdx.x < kTile) tile_lse[threadIdx.x] = next_lse, tile_delta[threadIdx.x] = next_delta;
    __syncthreads();
    if (round + 1 < rounds) prefetch(round + 1);
    if (warp_first_key > first_query + kTile - 1) continue;  // every staged query precedes the warp's keys

    // Transposed scores: rows are the warp's keys, columns the tile's queries.
    float p[kTile / 8][4] = {}, dp[kTile / 8][4] = {};
    products_with_rows<D>(p, k, q_tile);
    products_with_rows<D>(dp, v, dout_tile);
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int column = 8 * j + 2 * t + (e & 1), query = first_query + column;
        p[j][e] = key[e / 2] <= query ? exp2f(p[j][e] * scale * kLog2e - tile_lse[column]) : 0.0f;
        dp[j][e] = p[j][e] * (dp[j][e] - tile_delta[column]);  // ds
      }
    weighted_sum_of_rows<D>(dv, p, dout_tile);
    weighted_sum_of_rows<D>(dk, dp, q_tile);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= seq_len) continue;
    float* row = d_qkv + (first_row + key[r]) * width;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<float2*>(row + (heads + kv) * D + 8 * n + 2 * t) =
          make_float2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
      *reinterpret_cast<float2*>(row + (heads + kv_heads + kv) * D + 8 * n + 2 * t) =
          make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
    }
  }
}

dim3 blocks(int sequences, int heads, Layout layout) {
  return dim3(unsigned(sequences * heads),
              unsigned((layout.seq_len + kBlockRows - 1) / kBlockRows - layout.skipped_tiles));
}

template <int D>
void launch_forward(const bf16* qkv, int sequences, Layout layout, bf16* out, float* lse, cudaStream_t stream) {
  // Room for two blocks' tiles: shared memory before L1 (the tiles are read from shared memory).
  static const cudaError_t carveout = cudaFuncSetAttribute(
      forward_kernel<D>, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
  PGOLF_CUDA_CHECK(carveout);
  forward_kernel<D><<<blocks(sequences, layout.heads, layout), kThreads, 0, stream>>>(qkv, layout, out, lse);
  PGOLF_CUDA_CHECK_LAUNCH("attention_bf16");
}

template <int D>
void launch_backward(const bf16* qkv, const float* lse, const bf16* d_out, const float* delta, int sequences,
                     Layout layout, float* d_qkv, cudaStream_t stream) {
  dq_kernel<D><<<blocks(sequences, layout.heads, layout), kThreads, 0, stream>>>(qkv, lse, d_out, delta,
                                                                                         layout, d_qkv);
  PGOLF_CUDA_CHECK_LAUNCH("attention_bf16_dq");
  dkv_kernel<D><<<blocks(sequences, layout.kv_heads, layout), kThreads, 0, stream>>>(qkv, lse, d_out, delta,
                                                                                             layout, d_qkv);
  PGOLF_CUDA_CHECK_LAUNCH("attention_bf16_dkv");
}

void check_shape(const char* what, int heads, int kv_heads, int head_dim) {
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw std::invalid_argument(std::string(what) + ": heads " + std::to_string(heads) +
                                " is not a multiple of kv_heads " + std::to_string(kv_heads));
  if (!attention_bf16_supports_head_dim(head_dim))
    throw std::invalid_argument(std::string(what) + ": head_dim " + std::to_string(head_dim) +
                                " is not 16, 32 or 64");
}

}  // namespace

bool attention_bf16_supports_head_dim(int head_dim) { return head_dim == 16 || head_dim == 32 || head_dim == 64; }

void attention_bf16_with_lse(const bf16* qkv, int sequences, int seq_len, int heads, int kv_heads, int head_dim,
                             bf16* out, float* lse, cudaStream_t stream, int first_query) {
  check_shape("attention_bf16", heads, kv_heads, head_dim);
  check_first_query("attention_bf16", first_query, seq_len);
  if (sequences == 0 || seq_len == 0) return;
  const Layout layout{seq_len, heads, kv_heads, first_query / kBlockRows};
  switch (head_dim) {
    case 16: return launch_forward<16>(qkv, sequences, layout, out, lse, stream);
    case 32: return launch_forward<32>(qkv, sequences, layout, out, lse, stream);
    case 64: return launch_forward<64>(qkv, sequences, layout, out, lse, stream);
  }
}

void attention_bf16_backward(const bf16* qkv, const bf16* out, const float* lse, const bf16* d_out, int sequences,
                             int seq_len, int heads, int kv_heads, int head_dim, float* d_qkv, float* d_rows_scratch,
                             cudaStream_t stream) {
  check_shape("attention_bf16_backward", heads, kv_heads, head_dim);
  if (sequences == 0 || seq_len == 0) return;
  attention_delta(out, d_out, int64_t(sequences) * seq_len * heads, head_dim, d_rows_scratch, stream);
  const Layout layout{seq_len, heads, kv_heads};
  switch (head_dim) {
    case 16: return launch_backward<16>(qkv, lse, d_out, d_rows_scratch, sequences, layout, d_qkv, stream);
    case 32: return launch_backward<32>(qkv, lse, d_out, d_rows_scratch, sequences, layout, d_qkv, stream);
    case 64: return launch_backward<64>(qkv, lse, d_out, d_rows_scratch, sequences, layout, d_qkv, stream);
  }
}

}  // namespace pgolf::cuda
