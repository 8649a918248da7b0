// The CUDA kernels of training in fp32: the backward of each forward kernel (forward_kernels.h),
// the fused softcap + cross-entropy + gradient, the per-channel reductions of the scale
// gradients, and the optimizers' elementwise parts (Muon's momentum, Adam). They compute what
// trainer/model.cpp's backward and trainer/optimizer.cpp compute; tests/kernels/ holds a CPU twin
// of each. Same conventions as forward_kernels.h: row-major, one token per row, launchers that
// queue on `stream` and throw std::runtime_error on a failed launch. No atomics: every result is
// the same from run to run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace pgolf::cuda {

// dx = d rms_norm(x) given dy (recomputing the norm from x), rows of `width` elements (a whole
// row, or one head); dx += when accumulate. dx may be dy.
void rms_norm_backward(const float* x, const float* dy, int64_t rows, int width, float* dx, bool accumulate,
                       cudaStream_t stream);

// d_rows[t] = d rms_norm(tok_emb[ids[t]]) given dy[t]: the backward of embedding_rms_norm up to
// the gather (embedding_backward sums the rows per token id).
void embedding_rms_norm_backward(const float* tok_emb, const uint16_t* ids, const float* dy, int64_t rows, int dim,
                                 float* d_rows, cudaStream_t stream);

// The backward of qk_norm_rope. raw: the projection's output before qk_norm_rope; d_qkv: the
// gradient of its result, rewritten in place into the gradient of raw (v columns untouched).
// d_gain_partial [rows, heads]: each row's share of q_gain's gradient (column_sum reduces it).
void qk_norm_rope_backward(const float* raw, float* d_qkv, int64_t rows, int seq_len, int heads, int kv_heads,
                           int head_dim, const float* rope_cos, const float* rope_sin, const float* q_gain,
                           float* d_gain_partial, cudaStream_t stream);

// d_pre = d_post * 2 relu(pre), in place over d_post: the backward of relu_square.
void relu_square_backward(const float* pre, float* d, int64_t count, cudaStream_t stream);

// out[j] (+)= sum over rows of a[t, j] * b[t, j] (b null: of a alone), summed in a fixed order.
// scratch holds column_sum_scratch(dim) floats.
void column_sum(const float* a, const float* b, int64_t rows, int dim, float* out, bool accumulate, float* scratch,
                cudaStream_t stream);
int64_t column_sum_scratch(int dim);

// y (+)= x * scale per channel (scale [dim]).
void scale_channels(const float* x, const float* scale, int64_t rows, int dim, float* y, bool accumulate,
                    cudaStream_t stream);

// Softcapped cross-entropy and its gradient, in place: logits [rows, vocab] (before the cap)
// become weight * d loss / d logits; losses[t] gets the row's cross-entropy (as
// softcap_cross_entropy: the log-softmax in double).
void softcap_cross_entropy_backward(float* logits, const uint16_t* targets, int64_t rows, int vocab, float softcap,
                                    float weight, double* losses, cudaStream_t stream);

// The host's lists for embedding_backward: per token id (< vocab) the rows of ids that read it, in
// row order (a counting sort).
struct RowsByToken {
  std::vector<int32_t> order, offsets;  // offsets has vocab + 1 entries
};
RowsByToken rows_by_token(const std::vector<uint16_t>& ids, int vocab);

// d_tok_emb[v] += sum of d_rows[order[k]] for k in [offsets[v], offsets[v+1]): the embedding
// gather's backward, with the rows of each token id listed (in a fixed order) by the host.
void embedding_backward(const float* d_rows, const int32_t* order, const int32_t* offsets, int vocab, int dim,
                        float* d_tok_emb, cudaStream_t stream);

// Causal GQA attention forward as attention() (forward_kernels.h), also writing the log-sum-exp
// of every (row, head)'s scaled scores into lse [rows, heads] for the backward.
void attention_with_lse(const float* qkv, int sequences, int seq_len, int heads, int kv_heads, int head_dim,
                        float* out, float* lse, cudaStream_t stream);

// The backward of attention: from qkv, the output `out`, lse and d_out [rows, heads * head_dim],
// writes the gradient of q, k and v into d_qkv (qkv's layout). d_rows_scratch holds rows * heads
// floats.
void attention_backward(const float* qkv, const float* out, const float* lse, const float* d_out, int sequences,
                        int seq_len, int heads, int kv_heads, int head_dim, float* d_qkv, float* d_rows_scratch,
                        cudaStream_t stream);

// Muon's momentum: buf = momentum * buf + g; g = g + momentum * buf (Nesterov), in place.
void muon_momentum(float* buf, float* g, int64_t count, float momentum, cudaStream_t stream);

// x /= (sqrt(*squared_norm) + 1e-7), the squared norm already on the device.
void divide_by_norm(float* x, const float* squared_norm, int64_t count, cudaStream_t stream);
// *out = sum of x^2 (one block, a fixed order).
void squared_norm(const float* x, int64_t count, float* out, cudaStream_t stream);

// w -= lr * u (lr on the host).
void apply_update(float* w, const float* u, int64_t count, float lr, cudaStream_t stream);

// torch's Adam, no weight decay: step_size = lr / (1 - beta1^t), root_c2 = sqrt(1 - beta2^t).
void adam(float* w, const float* g, float* m, float* v, int64_t count, float beta1, float beta2, float eps,
          float step_size, float root_c2, cudaStream_t stream);

// x *= factor where factor = min(1, max_norm / (sqrt(*squared_norm) + 1e-6)): gradient clipping.
void clip_by_norm(float* x, const float* squared_norm, int64_t count, float max_norm, cudaStream_t stream);

}  // namespace pgolf::cuda
