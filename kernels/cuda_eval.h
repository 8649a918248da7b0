// The model's forward pass on a CUDA GPU in fp32 (cuBLAS GEMMs with TF32 off, the kernels of
// forward_kernels.h), for val_loss and val_bpb: the same numbers as the CPU Model<float> to fp32
// rounding, many sequences per launch. Plain C++ interface: no CUDA header needed to use it.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

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

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// evaluate() on the GPU: same options (stride included; threads unused), windows and byte counting.
EvalResult evaluate_cuda(const Model<float>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                         const EvalOptions& options);

}  // namespace pgolf
