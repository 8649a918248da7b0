// The training loop of the reference recipe (train_gpt.py's main loop): data, warmdown,
// gradient accumulation, periodic validation, logging. What computes the gradients and applies
// the optimizer is a TrainEngine: the CPU reference model here, the CUDA trainer in kernels/.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "trainer/eval.h"
#include "trainer/train_state.h"

namespace pgolf {

struct TrainSettings {
  int seq_len = 1024;
  int64_t tokens_per_step = 262144;
  int micro_batch = 64;         // sequences per forward/backward
  int64_t steps = 20000;        // stop after this many optimizer steps...
  double max_seconds = 0;       // ...or this much training time (0: no limit)
  int64_t stop_at = 0;          // stop this run at this step, the schedule unchanged (0: at steps)
  int64_t warmdown_steps = 1200;
  double lr_floor = 0;          // the warmdown stops there (R1's MIN_LR: 0.1); 0: down to zero
  OptimizerSettings optimizer;
  int64_t val_every = 0;        // steps between validations (0: only at the end)
  int64_t val_tokens = 0;       // validations score this many tokens (0: the whole split)
  int64_t log_every = 1;
  // Depth recurrence turns on at this fraction of training (of --steps, or of --max-seconds where
  // set), as the records start their loop at 0.35-0.5; 0: from the first step.
  double loop_from = 0;
  // The weights' moving average (optimizer.ema_decay) starts at this fraction of training (as
  // loop_from); 0: before the first step, as the records. A short run's average otherwise keeps
  // much of the random initialisation (0.9965^519 = 16%).
  double ema_from = 0;

  int64_t micro_batches() const { return tokens_per_step / (int64_t{micro_batch} * seq_len); }
  void validate() const;  // InputError on sizes that do not divide or are not positive
  void validate_ranks(int ranks) const;  // InputError unless `ranks` (--gpus) divide micro_batches()
};

// How a GPU trainer multiplies (`--precision`; the CPU trainer is fp32): kAuto lets it choose
// (CudaTrainer: bf16 where its attention takes the model's head dim, else TF32).
enum class Precision { kAuto, kFp32, kTf32, kBf16 };
// "auto", "fp32", "tf32" or "bf16"; InputError naming the choices otherwise.
Precision parse_precision(const std::string& name);

// The warmdown multiplier of every learning rate (lr_mul in the reference): without a time limit,
// linear to 0 over the last warmdown_steps steps; with one, the remaining time over warmdown_steps
// steps at the average step time so far, once that is less; never below lr_floor.
double lr_scale(const TrainSettings& s, int64_t step, double elapsed_seconds);
// Whether training has reached `fraction` of itself (of --steps, or of --max-seconds where set):
// TrainSettings::loop_from and ema_from. 0 is reached from the first step.
bool reached(const TrainSettings& s, double fraction, int64_t step, double elapsed_seconds);

class TrainEngine {
 public:
  virtual ~TrainEngine() = default;
  // Mean cross-entropy of windows of seq_len + 1 tokens; adds weight times its gradient to the
  // gradient the next step() applies.
  virtual double accumulate(std::span<const TokenWindow> windows, double weight) = 0;
  // One optimizer step with the accumulated gradient (then zeroed); step is 0-based.
  virtual void step(double lr_scale, int64_t step) = 0;
  // Cross-entropy of each window's last `scored` targets, window after window (WindowScorer's
  // contract, trainer/eval.h): validation and evaluation.
  virtual std::vector<double> token_losses(std::span<const TokenWindow> windows, size_t scored) = 0;
  virtual size_t windows_per_call() const = 0;  // token_losses takes at most this many windows
  // Copies the weights and optimizer state into state.
  virtual void export_state(TrainState& state) = 0;
  virtual std::string device() const = 0;
  virtual int64_t peak_memory_bytes() const { return 0; }  // of a GPU; 0 where not measured
  // Runs a recurrent model's loop (ModelConfig::looping) from the next forward on, or not.
  virtual void set_looping(bool on) = 0;
  // Starts the weights' moving average (OptimizerSettings::ema_decay) at the weights now, unless it
  // has started or there is none; steps update it from then on.
  virtual void start_ema() = 0;
  // Swaps the weights and their moving average (once it has started): twice is the identity. The
  // final validation scores the average so.
  virtual void swap_ema() = 0;

  // Data parallel: this engine is rank() of ranks() engines training one model, each on its share
  // of every step's micro-batches; step() applies the gradient summed over all of them.
  virtual int rank() const { return 0; }
  virtual int ranks() const { return 1; }
  // Sums values over the ranks in place; every rank gets the sums.
  virtual void sum_over_ranks(std::span<double> values) { (void)values; }
};

// The CPU reference (Model<float>, optimizer_step) on `threads` threads.
std::unique_ptr<TrainEngine> make_cpu_engine(const TrainState& state, const OptimizerSettings& optimizer, int threads);

struct ValSet {
  std::vector<uint16_t> tokens;  // the val split from its start
  ByteTable bytes;
};

struct TrainResult {
  std::vector<double> losses;  // the training loss of every step run
  int64_t tokens = 0;          // trained on
  double seconds = 0;          // training time of this run
  EvalResult final_val;        // after the last step, when val was given (of the average where kept)
  EvalResult final_val_weights;  // the weights themselves, where an average is what final_val scored
  bool stopped = false;        // ended early by TrainBreaks::stop (then no final validation)
};

// Runs from state (its step, data position, training time) to settings.steps or max_seconds;
// state ends at the last step. stream must start at state.data. log gets one line at a time.
// Data parallel: every rank reads the whole stream and computes micro-batches k with
// k % ranks == rank (the reference loader's split), so any number of ranks trains on the same
// tokens; the loss and rank 0's step time (which drives the stop and the warmdown) are shared.
// What a run does between steps besides training: end early (a signal) and save as it goes.
struct TrainBreaks {
  std::function<bool()> stop;  // asked after every step; true ends the run there (any rank's stop stops all)
  int64_t save_every = 0;      // steps between calls of save (0: none)
  std::function<void(const TrainState&)> save;  // the state, exported, at those steps
};

TrainResult train(TrainEngine& engine, TokenStream& stream, TrainState& state, const TrainSettings& settings,
                  const ValSet* val, const std::function<void(const std::string&)>& log,
                  const TrainBreaks& breaks = {});

}  // namespace pgolf
