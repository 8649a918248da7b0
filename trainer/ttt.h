// Legal test-time training (score first, then adapt), as the records score their submissions:
// the chunked full-model SGD of PR #461/#549 (`../shared/reference/parameter-golf-records.md` §2).
// evaluate_windows (trainer/eval.h) scores every window of a chunk, then hands the chunk to the
// adapter, which trains on targets already scored and never on a chunk not yet scored.
#pragma once
#include <cstdint>
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
  std::string describe() const;     // "chunks of 32,768, lr 0.002, momentum 0.9, 3 epochs, ..."
};

// The CPU reference adapter: SGD with momentum on every parameter of `model` (in place) but the
// frozen blocks', on windows of seq_len + 1 tokens cut from each chunk.
class TttSgd {
 public:
  TttSgd(Model<float>& model, const TttSgdOptions& options, int seq_len, int threads);
  // Trains on chunk `chunk` of `chunks` (its tokens: the targets' inputs and the targets).
  void adapt(int64_t chunk, int64_t chunks, std::span<const uint16_t> tokens);

 private:
  Model<float>& model_;
  TttSgdOptions options_;
  int seq_len_, threads_;
  ModelParams<float> momentum_;
};

}  // namespace pgolf
