// Every CUDA runtime and cuBLAS call goes through these: a failure throws std::runtime_error
// naming the call and the library's error string, so nothing fails silently.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pgolf::cuda {

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(call) + ": " + cudaGetErrorString(status));
}

inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(call) + ": " + cublasGetStatusString(status));
}

}  // namespace pgolf::cuda

#define PGOLF_CUDA_CHECK(call) ::pgolf::cuda::check((call), #call)
// After a kernel launch: launch errors (bad configuration, no device code for this GPU) surface here.
#define PGOLF_CUDA_CHECK_LAUNCH(kernel) ::pgolf::cuda::check(cudaGetLastError(), kernel " launch")
