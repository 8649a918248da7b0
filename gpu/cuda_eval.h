// The model's GPU forward for val_loss and val_bpb, calibration Hessians and sampling: the CUDA
// trainer's forward (gpu/cuda_train.h, inference_trainer), many sequences per pass. In fp32 (plain
// fp32 FMA) it gives the CPU Model<float>'s numbers to fp32 rounding; in bf16 the trainer's tensor
// core path. Plain C++ interface: no CUDA header needed to use it.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "trainer/calibration.h"
#include "trainer/eval.h"
#include "trainer/model.h"
#include "trainer/training.h"

namespace pgolf {

// True when a CUDA GPU and a working driver are present; false, never an error, otherwise.
bool cuda_available();
std::string cuda_device_name();  // of the device in use, e.g. "NVIDIA H200"

// evaluate() on the GPU: same options (stride included; threads unused), windows and byte counting.
EvalResult evaluate_cuda(const Model<float>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                         const EvalOptions& options, Precision precision = Precision::kFp32);

// input_moments() on the GPU (fp32): the same windows, 64K tokens per forward.
InputMoments input_moments_cuda(const Model<float>& model, std::span<const TokenWindow> windows,
                                const ProgressReport& progress = {});

// self_generate() with the GPU's logits (fp32), up to 64K prefix tokens per forward.
std::vector<uint16_t> self_generate_cuda(const Model<float>& model, const SamplingOptions& options,
                                         const ProgressReport& progress = {});

}  // namespace pgolf
