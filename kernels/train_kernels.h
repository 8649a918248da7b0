// The CUDA kernels of training: the backward of each forward kernel (forward_kernels.h),
// the fused softcap + cross-entropy + gradient, the per-channel reductions of the scale
// gradients, and the optimizers' elementwise parts (Muon's momentum, Adam). They compute what
// trainer/model.cpp's backward and trainer/optimizer.cpp compute; tests/kernels/ holds a CPU twin
// of each. Same conventions as forward_kernels.h: row-major, one token per row, launchers that
// queue on `stream` and throw std::runtime_error on a failed launch. No atomics: every result is
// the same from run to run. Outputs marked T are float or __nv_bfloat16 (the bf16 trainer's GEMM
// inputs, rounded to nearest even); inputs and everything else are fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace pgolf::cuda {

// d_rows[t] = d rms_norm(x_t) given dy[t], x_t = tok_emb[ids[t]] (ids null: row t of tok_emb, as
// embedding_rms_norm's `sum`): the backward of embedding_rms_norm up to the gather (embedding_backward
// sums the rows per token id).
void embedding_rms_norm_backward(const float* tok_emb, const uint16_t* ids, const float* dy, int64_t rows, int dim,
                                 float* d_rows, cudaStream_t stream);

// The backward of smear (forward_kernels.h) from dy: dx[t] = (1 − σ) dy[t] + σ dy[t + 1] (within the
// sequence), and d_gate_rows[t] = dy[t] (x[t − 1] − x[t]) σ (1 − σ), each row's share of the gate's
// gradient (column_sum adds them up).
void smear_backward(const float* x, const float* gate, const float* dy, int64_t rows, int seq_len, int dim, float* dx,
                    float* d_gate_rows, cudaStream_t stream);

// The backward of smear_v2 (forward_kernels.h) from dy, the gradient of its output: dx (other memory
// than dy), and each row's share of λ's gradient (d_lambda_rows [rows]) and of w's (d_w_rows [rows,
// window]); scratch holds 2 rows floats.
void smear_v2_backward(const float* x, const float* w, int window, const float* lambda, const uint16_t* ids, int bos,
                       const float* dy, int64_t rows, int seq_len, int dim, float* dx, float* d_lambda_rows,
                       float* d_w_rows, float* scratch, cudaStream_t stream);

// The backward of xsa: d_in = d_out − (d_out · u) u for every head (d_in may be d_out), and d_v
// [rows, kv_heads * head_dim] = the gradient of the value vectors through u, summed over each KV
// group's heads in order.
template <typename T>
void xsa_backward(const T* heads_out, const T* qkv, const T* d_out, int64_t rows, int heads, int kv_heads,
                  int head_dim, T* d_in, float* d_v, cudaStream_t stream);

// *out += the sum of x[0 .. count), in a fixed order (one block).
void add_sum(const float* x, int64_t count, float* out, cudaStream_t stream);

// out = *factor · x (factor on the device).
void scale(const float* x, const float* factor, int64_t count, float* out, cudaStream_t stream);

// The backward of qk_norm_rope (rotated_dims as there). raw: the projection's output before
// qk_norm_rope; d_qkv: the gradient of its result; d_raw: the gradient of raw, v columns included
// (may be d_qkv: then the v columns are left as they are). d_gain_partial [rows, heads]: each
// row's share of q_gain's gradient (column_sum reduces it). head_dim 8, 16, 32, 64, 128 or 256.
template <typename T>
void qk_norm_rope_backward(const float* raw, const float* d_qkv, int64_t rows, int seq_len, int heads, int kv_heads,
                           int head_dim, int rotated_dims, const float* rope_cos, const float* rope_sin,
                           const float* q_gain, T* d_raw, float* d_gain_partial, cudaStream_t stream);

// out = d * 2 (max(pre, 0) + slope² min(pre, 0)) (out may be d): the backward of leaky_relu_square.
template <typename T>
void leaky_relu_square_backward(const float* pre, const float* d, int64_t count, float negative_slope, T* out,
                                cudaStream_t stream);

// out[j] (+)= sum over rows of a[t, j] * b[t, j] (b null: of a alone), summed in a fixed order.
// scratch holds column_sum_scratch(dim) floats (as scaled_sum_backward's).
void column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate, float* scratch,
                cudaStream_t stream);
int64_t column_sum_scratch(int dim);

// The backward of scaled_sum (forward_kernels.h: out = x_scale x + y_scale y, normed = rms_norm(out))
// in one pass over the rows. The gradient reaching out is
//   g = d_out + d_out_extra + (rms_norm's backward at out, given d_normed)
// (each term where its pointers are given); then d_x = x_scale g (x_scale null: g), d_y (+)=
// y_scale g, and d_x_scale += the column sums of g x, d_y_scale += those of g y, each where given
// (summed in a fixed order). d_x may be d_out, except with accumulate_d_x (d_x += x_scale g).
// scratch holds column_sum_scratch(dim) floats.
template <typename T>
struct ScaledSumGradient {
  const float* d_out = nullptr;
  const float* d_out_extra = nullptr;
  const float* out = nullptr;
  const float* d_normed = nullptr;
  const float* x = nullptr;
  const float* x_scale = nullptr;
  float* d_x = nullptr;
  bool accumulate_d_x = false;
  float* d_x_scale = nullptr;
  const float* y = nullptr;
  const float* y_scale = nullptr;
  T* d_y = nullptr;
  bool accumulate_d_y = false;
  float* d_y_scale = nullptr;
};
template <typename T>
void scaled_sum_backward(const ScaledSumGradient<T>& gradient, int64_t rows, int dim, float* scratch,
                         cudaStream_t stream);

// The backward of parallel_lanes (forward_kernels.h). d0, d1: the gradients of out_0 and out_1, or
// with from_mean d0 that of the mean (each lane's is half of it, d1 is only written); they leave as
// the residual's shares, lanes[0, k] d_out_k. d_a = lanes[1, 0] d_out_0 + lanes[1, 1] d_out_1 (the
// gradient of A), d_m likewise of M; row_products [rows, kLaneParams]: per row the products
// d_out_k · in_k, d_out_k · A, d_out_k · M in the lanes parameter's order (column_sum adds them
// into its gradient).
inline constexpr int kLaneParams = 6;
void parallel_lanes_backward(float* d0, float* d1, bool from_mean, const float* in0, const float* in1,
                             const float* attn_out, const float* attn_scale, const float* mlp_out,
                             const float* mlp_scale, const float* lanes, int64_t rows, int dim, float* d_a, float* d_m,
                             float* row_products, cudaStream_t stream);

// Softcapped cross-entropy and its gradient: logits [rows, vocab] (before the cap); d_logits (may
// be logits) = weight * d loss / d logits; losses[t] gets the row's cross-entropy (as
// softcap_cross_entropy: the log-softmax in double).
template <typename T>
void softcap_cross_entropy_backward(const float* logits, const uint16_t* targets, int64_t rows, int vocab,
                                    float softcap, float weight, T* d_logits, double* losses, cudaStream_t stream);

// The host's lists for embedding_backward: per token id (< vocab) the rows of ids that read it, in
// row order (a counting sort), cut into segments of at most kEmbeddingSegmentRows rows of one
// token, so that frequent tokens' sums spread over many warps. Segment s is order[segments[s] ..
// segments[s + 1]); token v's segments are token_segments[v] .. token_segments[v + 1].
inline constexpr int kEmbeddingSegmentRows = 32;
struct RowsByToken {
  std::vector<int32_t> order, segments, token_segments;  // token_segments has vocab + 1 entries
  int64_t segment_count() const { return static_cast<int64_t>(segments.size()) - 1; }
};
RowsByToken rows_by_token(const std::vector<uint16_t>& ids, int vocab);
// The most segments rows_by_token makes for `rows` ids: what scratch is sized for.
int64_t max_embedding_segments(int64_t rows, int vocab);

// d_tok_emb[v] += sum of d_rows[r] over the rows r listed for token v (a fixed order): the
// embedding gather's backward. scratch holds segment_count x dim floats.
void embedding_backward(const float* d_rows, const int32_t* order, const int32_t* segments,
                        const int32_t* token_segments, int64_t segment_count, int vocab, int dim, float* scratch,
                        float* d_tok_emb, cudaStream_t stream);

// The backward of attention: from qkv, the output `out`, lse and d_out [rows, heads * head_dim],
// writes the gradient of q, k and v into d_qkv (qkv's layout). d_rows_scratch holds rows * heads
// floats.
void attention_backward(const float* qkv, const float* out, const float* lse, const float* d_out, int sequences,
                        int seq_len, int heads, int kv_heads, int head_dim, float* d_qkv, float* d_rows_scratch,
                        cudaStream_t stream);

// delta[i] = d_out . out over the head_dim columns of item i (a (row, head) pair): the backward's
// per-row term, for both attention backwards.
void attention_delta(const float* out, const float* d_out, int64_t items, int head_dim, float* delta,
                     cudaStream_t stream);
void attention_delta(const __nv_bfloat16* out, const __nv_bfloat16* d_out, int64_t items, int head_dim, float* delta,
                     cudaStream_t stream);

// The attention forward (attention_with_lse, forward_kernels.h) and its backward on bf16 tensor cores (attention_bf16.cu), same layouts:
// qkv, out and d_out in bf16; lse, the gradient d_qkv and the softmax and every sum in fp32.
// head_dim 16, 32 or 64.
void attention_bf16_with_lse(const __nv_bfloat16* qkv, int sequences, int seq_len, int heads, int kv_heads,
                             int head_dim, __nv_bfloat16* out, float* lse, cudaStream_t stream, int first_query = 0);
void attention_bf16_backward(const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                             const __nv_bfloat16* d_out, int sequences, int seq_len, int heads, int kv_heads,
                             int head_dim, float* d_qkv, float* d_rows_scratch, cudaStream_t stream);
bool attention_bf16_supports_head_dim(int head_dim);

// out = x rounded to bf16 (round to nearest even): GEMM and attention inputs in bf16 mode.
void to_bf16(const float* x, int64_t count, __nv_bfloat16* out, cudaStream_t stream);

// Muon's momentum: buf = momentum * buf + g; g = g + momentum * buf (Nesterov), in place.
void muon_momentum(float* buf, float* g, int64_t count, float momentum, cudaStream_t stream);

// MuonEq-R: each row of x [rows, dim] divided by its rms, in place (x / sqrt(mean(x^2) + FLT_EPSILON),
// as rms_norm); dim a multiple of 4 up to 2048 (row_kernels_support_dim).
void rms_norm_rows(float* x, int64_t rows, int dim, cudaStream_t stream);

// x /= (sqrt(*squared_norm) + 1e-7), the squared norm already on the device.
void divide_by_norm(float* x, const float* squared_norm, int64_t count, cudaStream_t stream);
// out[0] = sum of x^2, in a fixed order: kSquaredNormBlocks blocks leave partial sums in
// out[1 ..], a last block adds them. out holds kSquaredNormFloats floats.
inline constexpr int kSquaredNormBlocks = 128;
inline constexpr int kSquaredNormFloats = kSquaredNormBlocks + 1;
void squared_norm(const float* x, int64_t count, float* out, cudaStream_t stream);

// w = keep · w − lr · u (lr and keep on the host; keep 1 − lr_group · weight decay, 1 for none).
void apply_update(float* w, const float* u, int64_t count, float lr, float keep, cudaStream_t stream);

// torch's Adam: step_size = lr / (1 - beta1^t), root_c2 = sqrt(1 - beta2^t); w = keep · w − the step,
// keep 1 − lr · weight decay (AdamW's decoupled decay), 1 for none.
void adam(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2, float eps,
          float step_size, float root_c2, float keep, cudaStream_t stream);

// x *= factor where factor = min(1, max_norm / (sqrt(*squared_norm) + 1e-6)): gradient clipping.
void clip_by_norm(float* x, const float* squared_norm, int64_t count, float max_norm, cudaStream_t stream);

}  // namespace pgolf::cuda
