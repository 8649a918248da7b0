// The model's GEMMs on row-major matrices through cuBLAS (column-major: the same memory holds
// the transposes), for a Linear layer y = x w^T with w [out, in] as in PyTorch, and its backward.
#pragma once
#include "kernels/cuda_check.h"

namespace pgolf::cuda {

// y[rows, out] = x[rows, in] w^T
inline void linear(cublasHandle_t cublas, const float* x, const float* w, int rows, int in, int out, float* y) {
  const float one = 1, zero = 0;
  PGOLF_CUDA_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, in, x, in, &zero, y, out));
}

// dx[rows, in] (+)= dy[rows, out] w
inline void linear_backward_input(cublasHandle_t cublas, const float* dy, const float* w, int rows, int in, int out,
                                  float* dx, bool accumulate) {
  const float one = 1, beta = accumulate ? 1.0f : 0.0f;
  PGOLF_CUDA_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, in, rows, out, &one, w, in, dy, out, &beta, dx, in));
}

// dw[out, in] += dy[rows, out]^T x[rows, in]
inline void linear_backward_weight(cublasHandle_t cublas, const float* dy, const float* x, int rows, int in, int out,
                                   float* dw) {
  const float one = 1;
  PGOLF_CUDA_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, rows, &one, x, in, dy, out, &one, dw, in));
}

}  // namespace pgolf::cuda
