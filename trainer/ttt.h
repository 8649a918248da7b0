// Legal test-time training (score first, then adapt), as the records score their submissions
// (`../shared/reference/parameter-golf-records.md` §2): the chunked full-model SGD of PR #461/#549,
// where evaluate_windows (trainer/eval.h) scores every window of a chunk, then hands the chunk to
// the adapter, which trains on targets already scored and never on a chunk not yet scored; and
// per-document LoRA, which evaluate_documents drives chunk by chunk in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "trainer/eval.h"
#include "trainer/model.h"

namespace pgolf {

struct TttSgdOptions {
  int64_t chunk_tokens = 32768;  // targets per chunk
  double lr = 0.002;             // at the first chunk, cosine-decayed to 0 at the last
  double momentum = 0.9;         // torch.optim.SGD's (no dampening, not Nesterov)
  int epochs = 3;                // passes over each chunk
  int batch_sequences = 32;      // windows of seq_len + 1 tokens per step
  double grad_clip = 1.0;        // global norm; 0: none
  int frozen_blocks = 0;         // blocks 0..N-1 keep their weights (PR #212 froze one)

  void validate(int layers) const;  // InputError naming the flag
  std::string describe() const;     // "SGD over chunks of 32768 targets, lr 0.002 (cosine), ..."
};

class LoraAdapters;
struct TttLoraOptions;

// What test-time training trains through: the CPU model (make_cpu_ttt_engine) or the CUDA trainer.
class TttEngine {
 public:
  virtual ~TttEngine() = default;
  // Adds weight times the gradient of the windows' mean cross-entropy to the gradient; returns
  // that mean (TrainEngine::accumulate's contract, which the CUDA trainer serves for both).
  virtual double accumulate(std::span<const TokenWindow> windows, double weight) = 0;
  // With the accumulated gradient (then zeroed): the frozen blocks' share dropped, clipped to a
  // global norm of options.grad_clip, then buf = momentum buf + g, w -= lr buf (torch.optim.SGD)
  // on every other parameter.
  virtual void sgd_step(float lr, const TttSgdOptions& options) = 0;

  // Per-document LoRA's pass over one window (at most seq_len + 1 tokens): the losses of its last
  // `scored` targets; with_gradient: the gradient of their mean replaces the accumulated one.
  virtual std::vector<double> score_suffix(TokenWindow window, size_t scored, bool with_gradient) = 0;
  // Per-document LoRA's adapters on this engine's matrices (options.parameter_names), kept where
  // its weights are.
  virtual std::unique_ptr<LoraAdapters> lora_adapters(const TttLoraOptions& options, int layers) = 0;
};

// SGD on `model` in place, on `threads` threads.
std::unique_ptr<TttEngine> make_cpu_ttt_engine(Model<float>& model, int threads);

// The adapter: cuts each chunk into windows of seq_len + 1 tokens (the last one shorter) and runs
// options.epochs passes of SGD steps over batch_sequences of them, lr cosine-decayed over chunks.
class TttSgd {
 public:
  TttSgd(TttEngine& engine, const TttSgdOptions& options, int layers, int seq_len);
  // Trains on chunk `chunk` of `chunks` (its tokens: the targets' inputs and the targets).
  void adapt(int64_t chunk, int64_t chunks, std::span<const uint16_t> tokens);

 private:
  TttEngine& engine_;
  TttSgdOptions options_;
  int seq_len_;
};

// Per-document LoRA, the 2026-03-17 record's form (`../shared/reference/parameter-golf-records.md` §2):
// rank-r adapters W + (alpha / r) B A on the chosen matrices of every block, reset at each document
// (B = 0, Adam's moments 0, A back to its one seeded draw, uniform in +-1/sqrt(in), so a document's
// numbers never depend on another); each chunk of a document is scored, then (unless it is the
// document's last) one Adam step on its mean loss. The engine does the forward and backward of the
// merged weights W + (alpha / r) B A, whose gradient G gives B's and A's (LoraAdapters). The tied
// LM head has no adapter (the records' 03-17 form also adapts lm_head).
struct TttLoraOptions {
  int rank = 8;
  double alpha = 8;                // the adapters' scale is alpha / rank
  int64_t chunk_tokens = 256;      // targets per chunk of a document, at most seq_len
  double lr = 0.01;                // Adam's
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0;         // AdamW's, decoupled: each step first scales A and B by 1 - lr * decay
  std::vector<std::string> matrices = {"attn.c_q", "attn.c_v"};  // of every block
  uint64_t seed = 1337;            // A's draw

  // The names of those matrices in every block; InputError for one the model lacks.
  std::vector<std::string> parameter_names(int layers) const;
  void validate(int layers, int seq_len) const;  // InputError naming the flag
  std::string describe() const;
};

// The adapters of per-document LoRA on one engine: rank-r A [r, in] and B [out, r] per matrix, the
// merged weights W + (alpha / r) B A in the engine's place, Adam's moments. The CPU's
// (make_cpu_lora_adapters) is the CUDA trainer's oracle.
class LoraAdapters {
 public:
  virtual ~LoraAdapters() = default;
  // B = 0, A back to its first draw (lora_first_draws), moments and step count 0: the base weights.
  virtual void reset() = 0;
  // One Adam step on A and B from the engine's gradient G of the merged weights (score_suffix's):
  // dB = (alpha / r) G A^T, dA = (alpha / r) B^T G; then the merged weights again.
  virtual void adam_step() = 0;
};

// A's first draw for adapters on matrices of these input widths, in order: uniform in
// +-1/sqrt(in), one stream seeded by options.seed, so every engine draws the same.
std::vector<Matrix<float>> lora_first_draws(const TttLoraOptions& options, const std::vector<int64_t>& in_widths);

// The adapters on the CPU model's matrices: each weight with its gradient, the engine's tensors
// themselves (the engine writes score_suffix's gradient into them in place).
struct LoraTarget {
  Matrix<float>* weight;
  const Matrix<float>* gradient;
};
std::unique_ptr<LoraAdapters> make_cpu_lora_adapters(const TttLoraOptions& options, std::vector<LoraTarget> targets);

class TttLora {
 public:
  TttLora(TttEngine& engine, const TttLoraOptions& options, int layers, int seq_len);
  // evaluate_documents' scorer: resets at a document's first chunk, scores the chunk, adapts unless last.
  std::vector<double> score(const DocumentChunk& chunk);

 private:
  TttEngine& engine_;
  std::unique_ptr<LoraAdapters> adapters_;
};

}  // namespace pgolf
