// The trainer on a CUDA GPU, and the one GPU forward (evaluation, calibration and sampling run it:
// gpu/cuda_eval.h): trainer/model.cpp's forward kernel by kernel with every activation kept, its
// backward (train_kernels.h, attention_backward.cu or attention_bf16.cu, cuBLAS GEMMs), and the
// optimizers of trainer/optimizer.cpp (Newton-Schulz by strided-batched cuBLAS GEMMs, one batch
// per matrix shape). A TrainEngine, so pgolf train runs the same loop on the CPU or here. Plain C++
// interface.
// Data parallel with a RankGroup: the backward of a step's last micro-batch sums each block's
// gradient over the ranks as soon as the block is done (one bucket per block, on a second stream,
// overlapping the blocks below); Muon's Newton-Schulz runs on matrix m's owner rank m % ranks
// only, and the owners broadcast the results. Every rank then applies the same update.
#pragma once
#include <memory>
#include <string>

#include "gpu/rank_group.h"
#include "trainer/calibration.h"
#include "trainer/model.h"
#include "trainer/training.h"
#include "trainer/ttt.h"

namespace pgolf {

// Also a TttEngine: test-time training's SGD steps on the same forward and backward (windows of
// seq_len + 1 tokens, at most micro_batch of them per accumulate).
class CudaTrainer final : public TrainEngine, public TttEngine {
 public:
  // Allocates everything for micro-batches of settings.micro_batch sequences of settings.seq_len.
  // InputError before any allocation when the model or the micro-batch do not fit the GPU's free
  // memory, or the head dim has no attention kernel at this precision. group: this trainer's rank
  // in a data-parallel run (none: alone), on the current device.
  // Precision: master weights, optimizer state, the residual stream and the loss are fp32 in every
  // mode. kFp32: plain fp32 FMA, held to the CPU reference's numbers. kTf32: the GEMMs on TF32
  // tensor cores. kBf16 (the reference recipe's bf16 compute): every model GEMM on bf16 tensor
  // cores, from a bf16 copy of the weights (refreshed after each step) and GEMM inputs that the
  // kernels producing them write in bf16; attention by attention_bf16.cu on bf16 q, k, v.
  // Newton-Schulz keeps fp32 inputs (CUBLAS_COMPUTE_32F_FAST_16BF, which cuBLAS runs on TF32).
  // kAuto: kBf16 where attention_bf16.cu takes the head dim, else kTf32.
  CudaTrainer(const TrainState& state, const TrainSettings& settings, Precision precision,
              std::unique_ptr<cuda::RankGroup> group = nullptr);
  ~CudaTrainer() override;

  double accumulate(std::span<const TokenWindow> windows, double weight) override;
  void step(double lr_scale, int64_t step) override;
  // TttEngine's step; SGD's momentum lives in Muon's buffer (a TTT trainer never takes step()).
  void sgd_step(float lr, const TttSgdOptions& options) override;
  // TTT LoRA's pass: the window at its own length, the gradient over its scored rows.
  std::vector<double> score_suffix(TokenWindow window, size_t scored, bool with_gradient) override;
  std::unique_ptr<LoraAdapters> lora_adapters(const TttLoraOptions& options, int layers) override;
  std::vector<double> token_losses(std::span<const TokenWindow> windows, size_t scored) override;
  size_t windows_per_call() const override;
  void export_state(TrainState& state) override;
  std::string device() const override;
  void set_looping(bool on) override;
  void start_ema() override;
  void swap_ema() override;
  int64_t peak_memory_bytes() const override;
  int rank() const override;
  int ranks() const override;
  void sum_over_ranks(std::span<double> values) override;

  // The gradient accumulated since the last step (for the tests against the CPU model).
  ModelParams<float> gradient() const;

  // Calibration and sampling on the same forward, windows whose every token is an input (one
  // length, at most seq_len; at most micro_batch of them). add_input_moments: as
  // Model::observe_inputs summed by InputMoments::add, x xᵀ of every matrix input added to moments
  // (fp32 only: each sum over this call's rows is a plain fp32 cuBLAS GEMM, then added in double).
  // last_logits: Model::last_logits, the softcapped logits [windows, vocab] of each last position.
  void add_input_moments(std::span<const TokenWindow> windows, InputMoments& moments);
  Matrix<float> last_logits(std::span<const TokenWindow> windows);

  struct State;  // public for the adapters of LoRA TTT, which live beside it in cuda_train.cpp

 private:
  std::unique_ptr<State> state_;
};

// The trainer as the model's GPU forward for evaluation, calibration and sampling: model's weights,
// room for `windows` windows of seq_len tokens a pass, no optimizer state to speak of.
CudaTrainer inference_trainer(const Model<float>& model, int seq_len, int windows, Precision precision);

}  // namespace pgolf
