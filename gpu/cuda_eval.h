// The model's forward pass on a CUDA GPU in fp32 (cuBLAS GEMMs with TF32 off, the kernels of
// forward_kernels.h), for val_loss and val_bpb, calibration Hessians and sampling: the same numbers
// as the CPU Model<float> to fp32 rounding, many sequences per launch. Plain C++ interface: no CUDA
// header needed to use it.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "trainer/calibration.h"
#include "trainer/eval.h"
#include "trainer/model.h"

namespace pgolf {

// True when a CUDA GPU and a working driver are present; false, never an error, otherwise.
bool cuda_available();
std::string cuda_device_name();  // of the device in use, e.g. "NVIDIA H200"

class CudaModel {
 public:
  // Copies the weights to the GPU and allocates activations for up to max_windows windows of
  // max_seq_len + 1 tokens. InputError when the model's head_dim has no attention kernel.
  CudaModel(const Model<float>& model, int max_windows, int max_seq_len);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // As Model::token_losses: the cross-entropy of every target, window after window. The windows
  // must all have the same length, at most max_seq_len + 1, and there may be at most max_windows.
  std::vector<double> token_losses(std::span<const TokenWindow> windows);

  // As Model::observe_inputs summed by InputMoments::add: the forward of the windows (all of their
  // tokens inputs: one length, at most max_seq_len; at most max_windows of them), adding x xᵀ of
  // every matrix input and the windows' positions to moments. Precision: each input's sum over
  // this call's rows is fp32 on the GPU (a cuBLAS GEMM, plain fp32 FMA), then added in double.
  void add_input_moments(std::span<const TokenWindow> windows, InputMoments& moments);

  // Model::last_logits: softcapped logits [windows, vocab] of the last position of every window
  // (windows as add_input_moments takes them).
  Matrix<float> last_logits(std::span<const TokenWindow> windows);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// evaluate() on the GPU: same options (stride included; threads unused), windows and byte counting.
EvalResult evaluate_cuda(const Model<float>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                         const EvalOptions& options);

// input_moments() on the GPU: the same windows, 64K tokens per forward.
InputMoments input_moments_cuda(const Model<float>& model, std::span<const TokenWindow> windows,
                                const ProgressReport& progress = {});

// self_generate() with the GPU's logits, up to 64K prefix tokens per forward.
std::vector<uint16_t> self_generate_cuda(const Model<float>& model, const SamplingOptions& options,
                                         const ProgressReport& progress = {});

}  // namespace pgolf
