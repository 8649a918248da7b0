// The CUDA kernels of the model's forward pass (fp32 maths), each behind a host launcher that queues
// it on `stream` and throws std::runtime_error when the launch fails. They compute what
// trainer/model.cpp computes, operation by operation; tests/kernels/ holds a CPU twin of each.
// Activations are row-major with one token per row: `rows` tokens, sequence after sequence.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace pgolf::cuda {

// out[t] = rms_norm(tok_emb[ids[t]] + *extra_scale · extra[t]) for rows of `dim` (extra null: of
// the embedding alone; extra_scale on the device); rms_norm(x) = x / sqrt(mean(x^2) + FLT_EPSILON).
// sum (where given) keeps the rows before the norm, for the backward; out may be null (sum only).
void embedding_rms_norm(const float* tok_emb, const uint16_t* ids, const float* extra, const float* extra_scale,
                        int64_t rows, int dim, float* sum, float* out, cudaStream_t stream);

// out[t] = table[ids[t]], rows of `width` floats (any width): BigramHash's table read.
void gather_rows(const float* table, const uint16_t* ids, int64_t rows, int width, float* out, cudaStream_t stream);

// SmearGate v1: out[t] = (1 − σ(gate)) x[t] + σ(gate) x[t − 1] per channel (gate [dim]), with
// x[t − 1] = 0 at each sequence's first row (t % seq_len == 0).
void smear(const float* x, const float* gate, int64_t rows, int seq_len, int dim, float* out, cudaStream_t stream);

// SmearGate v2 on rows x before their norm: y[t] = x[t] + *lambda σ(w · x[t][0 : window]) x[t − 1],
// except at each sequence's first row and (bos >= 0) where ids[t] == bos; smeared (where given) = y,
// normed = rms_norm(y). window a multiple of 4 up to 128; w and lambda on the device.
void smear_v2(const float* x, const float* w, int window, const float* lambda, const uint16_t* ids, int bos,
              int64_t rows, int seq_len, int dim, float* smeared, float* normed, cudaStream_t stream);

// Outputs marked T are float or __nv_bfloat16 (rounded to nearest even: the bf16 trainer's GEMM
// and attention inputs). Row-wise kernels take a row width `dim` that is a multiple of 4, at most
// 2048 (a warp holds a row in registers, 16 bytes per access), and 16-byte aligned rows.
inline bool row_kernels_support_dim(int dim) { return dim > 0 && dim % 4 == 0 && dim <= 2048; }

// Inputs marked Y or In are float, or __nv_bfloat16 with a bf16 T (a scoring pass's branch outputs,
// which its GEMMs write in bf16 as torch's autocast does).

// out = x_scale * x + y_scale * y per channel (scales [dim]; x_scale null: 1; y null: no y term),
// and with `normed` also normed = rms_norm(out), in one pass: a block's resid_mix (x_scale = mix[0],
// y = x0, y_scale = mix[1]) and the norm after it, its scaled residual adds (x_scale null) and the
// norms after them, the U-Net skip adds, a parallel block's MLP input (rms_norm(lane 1) alone: y
// and out null), MuonEq-R's row norms (normed over x). out may be x or y; normed may be x (a
// warp reads its row whole before it writes).
template <typename Y, typename T>
void scaled_sum(const float* x, const float* x_scale, const Y* y, const float* y_scale, int64_t rows, int dim,
                float* out, T* normed, cudaStream_t stream);
inline void scaled_sum(const float* x, const float* x_scale, const float* y, const float* y_scale, int64_t rows,
                       int dim, float* out, cudaStream_t stream) {
  scaled_sum<float, float>(x, x_scale, y, y_scale, rows, dim, out, nullptr, stream);
}

// A parallel block's lanes (trainer/model.cpp's block_forward): with A = attn_scale attn_out and
// M = mlp_scale mlp_out per channel, out_k = lanes[0, k] in_k + lanes[1, k] A + lanes[2, k] M for
// lanes k = 0, 1 (lanes: the [3, 2] parameter, row-major); with `mean` also mean = (out_0 + out_1) / 2
// and, with `normed`, normed = rms_norm(mean) (the last block's final norm).
template <typename Y, typename T>
void parallel_lanes(const float* in0, const float* in1, const float* attn_out, const float* attn_scale, const Y* mlp_out,
                    const float* mlp_scale, const float* lanes, int64_t rows, int dim, float* out0, float* out1,
                    float* mean, T* normed, cudaStream_t stream);

// out = leaky_relu(x)^2 = (max(x, 0) + negative_slope · min(x, 0))^2, elementwise (out may be x);
// relu(x)^2 at slope 0.
template <typename In, typename T>
void leaky_relu_square(const In* x, int64_t count, float negative_slope, T* out, cudaStream_t stream);

// The fused projection's output, raw [rows, (heads + 2 * kv_heads) * head_dim], holds per token
// the q heads, then the k heads, then the v heads. qkv (same layout; may be raw) = per-head
// rms_norm of every q and k head, RoPE at the token's position in its sequence (row % seq_len)
// from rope_cos/rope_sin [>= seq_len, head_dim / 2], then q head h times q_gain[h]; v heads
// copied. head_dim 8, 16, 32, 64, 128 or 256. Partial RoPE: only the first rotated_dims dims of each
// head turn, pairs (j, rotated_dims / 2 + j); rotated_dims is head_dim or a multiple of 8 below it,
// and the table's columns from rotated_dims / 2 on are cos 1, sin 0 (rope_table makes them so).
template <typename In, typename T>
void qk_norm_rope(const In* raw, int64_t rows, int seq_len, int heads, int kv_heads, int head_dim, int rotated_dims,
                  const float* rope_cos, const float* rope_sin, const float* q_gain, T* qkv, cudaStream_t stream);
// Whether qk_norm_rope and its backward take rotated_dims of head_dim.
inline bool rope_kernels_support(int head_dim, int rotated_dims) {
  return rotated_dims == head_dim || (rotated_dims > 0 && rotated_dims < head_dim && rotated_dims % 8 == 0);
}

// Causal attention over `sequences` sequences of seq_len tokens, reading q, k and v from the qkv
// layout above; query head h reads KV head h / (heads / kv_heads), scores are scaled by
// 1/sqrt(head_dim). out [rows, heads * head_dim]; lse (may be null) [rows, heads] gets the
// log-sum-exp of every (row, head)'s scaled scores, for the backward. head_dim must be 8, 16, 32
// or 64. first_query (0 to seq_len - 1): the queries before it may be left out, their rows of out
// and lse unwritten (a scoring pass needs the last layer's attention only at the scored positions).
void attention_with_lse(const float* qkv, int sequences, int seq_len, int heads, int kv_heads, int head_dim,
                        float* out, float* lse, cudaStream_t stream, int first_query = 0);
bool attention_supports_head_dim(int head_dim);
// Throws std::invalid_argument unless 0 <= first_query < seq_len (or both are 0).
void check_first_query(const char* kernel, int first_query, int seq_len);

// XSA: out[t, h] = y − (y · u) u for each head h of heads_out [rows, heads * head_dim], with u
// the unit value vector (|v| at least 1e-12) of h's KV group at row t, read from qkv's layout.
// In and Out are float or __nv_bfloat16; out may be heads_out. head_dim up to 256.
template <typename In, typename Out>
void xsa(const In* heads_out, const In* qkv, int64_t rows, int heads, int kv_heads, int head_dim, Out* out,
         cudaStream_t stream);

// losses[t] = -log softmax(z)[targets[t]] with z = softcap * tanh(logits[t] / softcap), logits
// [rows, vocab]: z in float, the log-softmax in double, as the CPU model does.
void softcap_cross_entropy(const float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                           double* losses, cudaStream_t stream);


}  // namespace pgolf::cuda
