// The Parameter Golf baseline model on the CPU, in float or double: forward, loss and the
// gradient of every parameter. This is the reference the CUDA trainer is held to, so it
// follows the PyTorch reference (train_gpt.py) operation by operation:
//   x = rms_norm(tok_emb[ids] + bigram_scale * bigram_proj(bigram_embed[bucket(prev, id)]))  (BigramHash)
//   (SmearGate v2 adds lambda sigmoid(w . x_t[0:12]) x_{t-1} to the sum inside that norm, not at a BOS)
//   x = (1 - sigmoid(smear_gate)) x_t + sigmoid(smear_gate) x_{t-1}                       (SmearGate v1)
//   x0 = x
//   encoder blocks push their outputs; decoder block i first adds skip_weights[i] * (last pushed)
//   block(x): x = resid_mix[0] x + resid_mix[1] x0
//             x += attn_scale * attn(rms_norm(x));  x += mlp_scale * mlp_proj(act(mlp_fc(rms_norm(x))))
//             act(z) = relu(z)^2, or leaky_relu(z)^2 with a negative slope (ModelConfig)
//   attn: q, k, v projections; per-head rms_norm of q and k; RoPE (on the first rope_dims dims of
//         each head where partial); q *= q_gain; causal softmax
//         attention with scale 1/sqrt(D), query head h reading KV head h / (H / Hkv); proj
//   logits = softcap * tanh(rms_norm(x) tok_emb^T / softcap); loss = mean cross-entropy
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "trainer/model_params.h"

namespace pgolf {

// One window of consecutive tokens: the model reads all but the last and predicts all but
// the first (inputs tokens[0..n-1), targets tokens[1..n)).
using TokenWindow = std::span<const uint16_t>;

// The inputs of the matrices as a forward makes them, for calibration. Per block: the normed input
// that c_q, c_k and c_v share (kAttention), the heads' output that attn.proj takes
// (kAttentionOutput), the normed input of mlp.fc (kMlp) and relu(mlp.fc(x))^2, which mlp.proj takes
// (kMlpHidden). Once per forward, with block -1: the final norm's output, which the tied tok_emb
// takes as the LM head (kHead).
enum class MatrixInput { kAttention, kAttentionOutput, kMlp, kMlpHidden, kHead };

// Gets each matrix input of a forward as rows [positions, cols] (one per position), with the
// index of the thread that ran the forward.
template <typename T>
using InputObserver = std::function<void(int thread, int block, MatrixInput input, const Matrix<T>& rows)>;

// softcap * tanh(logits / softcap), elementwise: the model's capped logits (the GPU's last logits too).
template <typename T>
Matrix<T> softcapped(const Matrix<T>& logits, double softcap) {
  const T cap = static_cast<T>(softcap);
  return (cap * (logits.array() / cap).tanh()).matrix();
}

template <typename T>
class Model {
 public:
  Model(ModelConfig config, ModelParams<T> params);  // InputError when the shapes disagree

  const ModelConfig& config() const { return config_; }
  const ModelParams<T>& params() const { return params_; }
  ModelParams<T>& params() { return params_; }
  void set_looping(bool on) { config_.looping = on; }  // ModelConfig::looping

  // Softcapped logits [inputs, vocab] of one sequence.
  Matrix<T> logits(std::span<const uint16_t> inputs) const;

  // Cross-entropy (nats) of every target of every window, window after window; the windows are
  // shared out over `threads` threads.
  std::vector<double> token_losses(std::span<const TokenWindow> windows, int threads) const;

  // Mean cross-entropy over every target of the windows; grad gets the gradient of the training
  // objective (that loss, plus the multi-token heads' where the model has them) with respect to
  // every parameter. Deterministic for a given thread count.
  double loss_and_gradient(std::span<const TokenWindow> windows, ModelParams<T>& grad, int threads) const;
  // The cross-entropy of the window's last `scored` targets (with every earlier token as context);
  // grad, when given, gets the gradient of their mean (what per-document test-time training adapts on).
  std::vector<double> suffix_losses(TokenWindow window, size_t scored, ModelParams<T>* grad) const;
  // The training objective itself (ModelConfig::mtp_weight): what loss_and_gradient differentiates.
  double objective(std::span<const TokenWindow> windows, int threads) const;

  // The forward of every window, all of its tokens inputs, handing observe every matrix input. The
  // windows are shared out as in token_losses: thread k runs the k-th contiguous run of them in
  // order, so what observe sums per thread is deterministic for a given thread count.
  void observe_inputs(std::span<const TokenWindow> windows, int threads, const InputObserver<T>& observe) const;

  // Softcapped logits [windows, vocab] of the last position of every window (all of its tokens
  // inputs), the windows shared out over threads: what sampling the next token needs.
  Matrix<T> last_logits(std::span<const TokenWindow> windows, int threads) const;

 private:
  void check_tokens(std::span<const uint16_t> tokens) const;       // InputError past the vocab
  void check_inputs(std::span<const TokenWindow> windows) const;   // windows of at least one token
  size_t check_windows(std::span<const TokenWindow> windows) const;  // returns the target count
  ModelConfig config_;
  ModelParams<T> params_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace pgolf
