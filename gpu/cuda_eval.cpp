#include "gpu/cuda_eval.h"

#include <algorithm>

#include "core/error.h"
#include "gpu/cuda_train.h"
#include "kernels/cuda_check.h"

namespace pgolf {

namespace {

// Tokens per forward: 64 sequences of 1024, a few GB of activations for base9.
constexpr int kTokensPerCall = 64 * 1024;

int windows_per_call(int seq_len) { return std::max(1, kTokensPerCall / seq_len); }

}  // namespace

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the error, it is an answer here
    return false;
  }
  return count > 0;
}

std::string cuda_device_name() {
  int device = 0;
  PGOLF_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp properties{};
  PGOLF_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return properties.name;
}

EvalResult evaluate_cuda(const Model<float>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                         const EvalOptions& options, Precision precision) {
  require(options.seq_len > 0, "sequence length must be positive");
  CudaTrainer gpu = inference_trainer(model, options.seq_len, windows_per_call(options.seq_len), precision);
  return evaluate_windows(tokens, bytes, model.config().vocab, options, gpu.windows_per_call(),
                          [&](std::span<const TokenWindow> windows, size_t scored) {
                            return gpu.token_losses(windows, scored);
                          });
}

InputMoments input_moments_cuda(const Model<float>& model, std::span<const TokenWindow> windows,
                                const ProgressReport& progress) {
  require(!windows.empty() && !windows[0].empty(), "no windows to run");
  ProgressCounter windows_run(progress, "calibrating", windows.size());
  const int seq_len = static_cast<int>(windows[0].size());
  const size_t per_call = std::min(static_cast<size_t>(windows_per_call(seq_len)), windows.size());
  CudaTrainer gpu = inference_trainer(model, seq_len, static_cast<int>(per_call), Precision::kFp32);
  InputMoments moments(model.config());
  for (size_t first = 0; first < windows.size(); first += per_call) {
    const size_t count = std::min(per_call, windows.size() - first);
    gpu.add_input_moments(windows.subspan(first, count), moments);
    windows_run.advance(count);
  }
  return moments;
}

std::vector<uint16_t> self_generate_cuda(const Model<float>& model, const SamplingOptions& options,
                                         const ProgressReport& progress) {
  options.validate(model.config().vocab);  // before sizing the GPU model by them
  const int64_t per_call = std::min<int64_t>(windows_per_call(options.seq_len), options.sequences);
  CudaTrainer gpu = inference_trainer(model, options.seq_len, static_cast<int>(per_call), Precision::kFp32);
  return self_generate(options, model.config().vocab, static_cast<size_t>(per_call),
                       [&](std::span<const TokenWindow> prefixes) { return gpu.last_logits(prefixes); }, progress);
}

}  // namespace pgolf
