// The model's GEMMs on row-major matrices through cuBLAS (column-major: the same memory holds
// the transposes), for a Linear layer y = x w^T with w [out, in] as in PyTorch, and its backward.
// Inputs are fp32, multiplied as the compute type says: plain fp32 FMA
// (CUBLAS_COMPUTE_32F_PEDANTIC, the CPU reference's numbers) or on tensor cores from inputs
// rounded to TF32 (CUBLAS_COMPUTE_32F_FAST_TF32); or, when both operands carry a bf16 copy, bf16
// tensor cores on those copies. Always accumulated in fp32; outputs are fp32, or rounded to bf16
// (bf16 operands only).
#pragma once
#include <cuda_bf16.h>

#include <stdexcept>
#include <type_traits>

#include "kernels/cuda_check.h"

namespace pgolf::cuda {

// A GEMM input: fp32 values, and their bf16 copy where the trainer keeps one.
struct Operand {
  const float* f32 = nullptr;
  const __nv_bfloat16* b16 = nullptr;
  Operand(const float* values, const __nv_bfloat16* rounded = nullptr) : f32(values), b16(rounded) {}
};

struct Gemm {
  cublasHandle_t handle = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F_PEDANTIC;  // for fp32 inputs

  // c [m, n] = alpha op(a) op(b) + beta c, column-major as cublasSgemm; Out float or __nv_bfloat16.
  template <typename Out>
  void operator()(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, float alpha, Operand a, int lda,
                  Operand b, int ldb, float beta, Out* c, int ldc) const {
    const bool half = a.b16 && b.b16;
    constexpr bool half_out = std::is_same_v<Out, __nv_bfloat16>;
    if (half_out && !half) throw std::logic_error("Gemm: a bf16 output needs bf16 operands");
    const void* a_data = half ? static_cast<const void*>(a.b16) : a.f32;
    const void* b_data = half ? static_cast<const void*>(b.b16) : b.f32;
    const cudaDataType_t type = half ? CUDA_R_16BF : CUDA_R_32F;
    PGOLF_CUDA_CHECK(cublasGemmEx(handle, op_a, op_b, m, n, k, &alpha, a_data, type, lda, b_data, type, ldb, &beta, c,
                                  half_out ? CUDA_R_16BF : CUDA_R_32F, ldc, half ? CUBLAS_COMPUTE_32F : compute,
                                  CUBLAS_GEMM_DEFAULT));
  }

  // The same over `count` fp32 problems, matrix i at a + i stride_a (and so on).
  void batched(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, float alpha, const float* a, int lda,
               int64_t stride_a, const float* b, int ldb, int64_t stride_b, float beta, float* c, int ldc,
               int64_t stride_c, int64_t count) const {
    PGOLF_CUDA_CHECK(cublasGemmStridedBatchedEx(handle, op_a, op_b, m, n, k, &alpha, a, CUDA_R_32F, lda, stride_a, b,
                                                CUDA_R_32F, ldb, stride_b, &beta, c, CUDA_R_32F, ldc, stride_c,
                                                static_cast<int>(count), compute, CUBLAS_GEMM_DEFAULT));
  }
};

// y[rows, out] = x[rows, in] w^T; Out float, or __nv_bfloat16 from bf16 operands.
template <typename Out>
void linear(const Gemm& gemm, Operand x, Operand w, int rows, int in, int out, Out* y) {
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, 1, w, in, x, in, 0, y, out);
}

// dx[rows, in] (+)= dy[rows, out] w
template <typename Out>
void linear_backward_input(const Gemm& gemm, Operand dy, Operand w, int rows, int in, int out, Out* dx,
                           bool accumulate) {
  gemm(CUBLAS_OP_N, CUBLAS_OP_N, in, rows, out, 1, w, in, dy, out, accumulate ? 1 : 0, dx, in);
}

// dw[out, in] += dy[rows, out]^T x[rows, in]
inline void linear_backward_weight(const Gemm& gemm, Operand dy, Operand x, int rows, int in, int out,
                                   float* dw) {
  gemm(CUBLAS_OP_N, CUBLAS_OP_T, in, out, rows, 1, x, in, dy, out, 1, dw, in);
}

}  // namespace pgolf::cuda
