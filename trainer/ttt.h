// Legal test-time training (score first, then adapt), as the records score their submissions:
// the chunked full-model SGD of PR #461/#549 (`../shared/reference/parameter-golf-records.md` §2).
// evaluate_windows (trainer/eval.h) scores every window of a chunk, then hands the chunk to the
// adapter, which trains on targets already scored and never on a chunk not yet scored.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

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

}  // namespace pgolf
