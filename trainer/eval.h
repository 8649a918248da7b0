// val_loss and val_bpb as Parameter Golf computes them (eval_val in train_gpt.py), with its
// optional sliding-window variant.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/progress.h"
#include "data/tokenizer.h"
#include "trainer/model.h"

namespace pgolf {

struct EvalOptions {
  int seq_len = 1024;
  int64_t max_sequences = 0;  // evaluate the first this many sequences; 0: every full one
  // 0: the reference's plain eval, non-overlapping windows of seq_len. s > 0: sliding windows
  // of seq_len advanced by s, each scoring only the targets the previous one did not reach
  // (its last s; the first window scores all of its own), so every target is scored once,
  // with at least seq_len - s tokens of context after the first window.
  int stride = 0;
  // Score-first test-time training: the targets in chunks of this many; once every window whose
  // first scored target lies in chunk c is scored, the adapter trains on chunk c (not on the last
  // one). 0: none.
  int64_t adapt_chunk = 0;
  int threads = 2;
  ProgressReport progress;  // stage "eval": windows evaluated
};

struct EvalResult {
  double val_loss = 0;      // mean cross-entropy, nats per target token
  double val_bpb = 0;       // (val_loss / ln 2) * tokens / bytes
  int64_t sequences = 0;    // seq_len-token sequences whose targets were scored
  int64_t windows = 0;      // forward passes of seq_len tokens
  int64_t tokens = 0;       // target tokens scored
  int64_t bytes = 0;        // text bytes those targets stand for
  double seconds = 0;
  double tokens_per_second = 0;  // scored target tokens per second
};

// Scores windows of seq_len + 1 tokens: the cross-entropy (nats) of each window's last `scored`
// targets, window after window (a scorer may skip the work only the others need).
using WindowScorer = std::function<std::vector<double>(std::span<const TokenWindow> windows, size_t scored)>;

// Of `all` (every target of `windows` windows of one length, Model::token_losses' contract), each
// window's last `scored`: a WindowScorer from a model that scores every target.
std::vector<double> last_targets(const std::vector<double>& all, size_t windows, size_t scored);

// Trains the scorer's model on chunk `chunk` of `chunks`: tokens are its targets' inputs and the
// targets (one more token than targets), all of them scored already.
using ChunkAdapter = std::function<void(int64_t chunk, int64_t chunks, std::span<const uint16_t> tokens)>;

// evaluate() with the scoring left to `score`, which gets at most windows_per_call windows at a
// time (the CPU model or the GPU one); vocab is the model's. Same checks, windows and byte counting.
// With options.adapt_chunk, `adapt` trains between chunks (score first: a target's loss never
// depends on it or on any later token).
EvalResult evaluate_windows(std::span<const uint16_t> tokens, const ByteTable& bytes, int64_t vocab,
                            const EvalOptions& options, size_t windows_per_call, const WindowScorer& score,
                            const ChunkAdapter& adapt = {});

// One chunk of one document, as evaluate_documents hands it to its scorer: the window is the chunk's
// targets with the document's tokens before them as context (at most seq_len inputs, never a token of
// an earlier document), and the scorer returns the losses of its last `scored` targets.
struct DocumentChunk {
  TokenWindow window;
  size_t scored = 0;
  bool first_of_document = false;
  bool last_of_document = false;
};
using DocumentChunkScorer = std::function<std::vector<double>(const DocumentChunk& chunk)>;

// Scores the same targets as evaluate_windows (the first options.max_sequences * seq_len, else every
// full sequence's) document by document, as per-document test-time training does: a document starts
// at a BOS (kBosToken; the split's first token starts one too) and holds every target whose input is
// one of its tokens, the one that predicts the next BOS included. Its targets go in chunks of
// chunk_targets (<= seq_len), in order, each scored with its document's context only. options.stride
// and adapt_chunk are not used; windows counts chunks.
EvalResult evaluate_documents(std::span<const uint16_t> tokens, const ByteTable& bytes, int64_t vocab,
                              const EvalOptions& options, int64_t chunk_targets, const DocumentChunkScorer& score);

// tokens: the val split from its start. The sequences are x = tokens[i*S, i*S+S),
// y = tokens[i*S+1, i*S+S+1); a target's bytes depend on the input token at its position.
// InputError when the tokenizer's vocab is not the model's or there is not one sequence.
template <typename T>
EvalResult evaluate(const Model<T>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                    const EvalOptions& options);

}  // namespace pgolf
