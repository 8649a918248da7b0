// Calibration statistics for Hessian-aware quantization: for every matrix the compressor quantizes,
// H = XᵀX / n over the rows x of its input on n token positions, as the reference forward makes them
// (Model::observe_inputs; CudaTrainer::add_input_moments is held to it), on the first tokens of a
// train split or on text the model samples itself. pgolf calibrate and pgolf train --calibrate
// write the file; quant/calibration.h reads it.
//
// File: safetensors, one F32 tensor [cols, cols] (symmetric, row-major) per weight under the
// checkpoint's name (c_q, c_k and c_v each hold a copy of their shared input's H), and __metadata__
// {"pgolf.calibration": "hessian", "model": the checkpoint's path(s), "tokens": n, "seq_len": L,
// "source": "train:DIR" or "self-generated:N,temperature=T,seed=S"}.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/progress.h"
#include "trainer/model.h"

namespace pgolf {

// Self-generated sequences start with BOS (kBosToken), as the shards' documents do.

// The width of a matrix input: the number of columns of the weights that take it.
int input_dim(const ModelConfig& config, MatrixInput input);

// The checkpoint names of the weights that take a matrix input (block -1 with kHead).
std::vector<std::string> weights_of(int block, MatrixInput input);

struct InputSlot {
  int block;  // -1 for kHead
  MatrixInput input;
};
// Every matrix input of the model: the head, then block by block in MatrixInput's order.
std::vector<InputSlot> matrix_inputs(const ModelConfig& config);
// Where (block, input) stands in matrix_inputs(config).
size_t input_index(const ModelConfig& config, int block, MatrixInput input);

// Σ x xᵀ in double over the rows x of every matrix input, and the token positions they came from.
class InputMoments {
 public:
  explicit InputMoments(const ModelConfig& config);  // every sum zero

  const ModelConfig& config() const { return config_; }
  int64_t positions() const { return positions_; }
  void add_positions(int64_t count) { positions_ += count; }

  // [dim, dim]; only the lower triangle is kept (the sums are symmetric).
  Eigen::MatrixXd& sum(int block, MatrixInput input) { return sums_[input_index(config_, block, input)]; }
  const Eigen::MatrixXd& sum(int block, MatrixInput input) const { return sums_[input_index(config_, block, input)]; }
  // Adds x xᵀ for every row x of rows [positions, dim]: summed in fp32 over these rows (one
  // window's, as the GPU sums one batch's), then added in double.
  void add(int block, MatrixInput input, const Matrix<float>& rows);
  // Adds other's sums and positions; InputError for another model shape.
  void add(const InputMoments& other);

 private:
  ModelConfig config_;
  std::vector<Eigen::MatrixXd> sums_;  // in matrix_inputs' order
  std::vector<Eigen::MatrixXf> rows_sums_;  // add()'s fp32 scratch, reused (no page faults per call)
  int64_t positions_ = 0;
};

// The calibration's view of tokens: consecutive windows of seq_len tokens, each one sequence of
// inputs. InputError unless tokens is a positive multiple of seq_len.
std::vector<TokenWindow> calibration_windows(std::span<const uint16_t> tokens, int seq_len);

// The first `tokens` tokens of a data folder's train split, rounded up to whole windows of seq_len.
// Only *_train_*.bin shards are read, never val. InputError when there are none or too few tokens.
std::vector<uint16_t> read_train_windows(const std::string& dir, int64_t tokens, int seq_len);

// The reference: the CPU model's forward over the windows on `threads` threads, each thread
// summing its own windows; the per-thread sums are added in thread order, so the result is
// deterministic for a given thread count.
InputMoments input_moments(const Model<float>& model, std::span<const TokenWindow> windows, int threads,
                           const ProgressReport& progress = {});

struct SamplingOptions {
  int64_t sequences = 0;
  int seq_len = 1024;  // tokens per sequence, BOS included
  double temperature = 1.0;
  uint64_t seed = 0;
  void validate(int vocab) const;  // InputError for sizes that are not positive or a temperature that is not
};

// Softcapped logits [windows, vocab] of the last position of every window (all of its tokens inputs).
using LastLogits = std::function<Matrix<float>(std::span<const TokenWindow> windows)>;

// options.sequences sequences of seq_len tokens, one after the other: BOS, then tokens drawn one at
// a time from softmax(logits / temperature) of the prefix so far (every prefix recomputed: no KV
// cache). last_logits gets at most windows_per_call prefixes at a time. Deterministic for a seed
// and the same logits (one mt19937_64 stream, read in sequence order).
std::vector<uint16_t> self_generate(const SamplingOptions& options, int vocab, size_t windows_per_call,
                                    const LastLogits& last_logits, const ProgressReport& progress = {});

// The H of one weight, for writing and reporting.
struct WeightHessian {
  std::string name;
  int64_t dim = 0;
  std::vector<float> values;  // [dim, dim] row-major, symmetric
  double trace = 0;
};

// sum / positions of every matrix input under every weight that takes it, in the checkpoint's
// tensor order. InputError when no positions were seen.
std::vector<WeightHessian> weight_hessians(const InputMoments& moments);

// What the file records of where its Hessians came from (beside the token count).
struct CalibrationRecord {
  std::string model;   // the checkpoint's path(s), space-separated
  std::string source;  // "train:DIR" or "self-generated:N,temperature=T,seed=S"
  int seq_len = 0;
};

// Writes the file described above, atomically.
void write_hessians(const std::string& path, const std::vector<WeightHessian>& hessians, int64_t tokens,
                    const CalibrationRecord& record, bool overwrite);

}  // namespace pgolf
