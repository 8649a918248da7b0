// GPTQ's column loop on the GPU (quant/gptq.h's step 4): H's Cholesky factor, H⁻¹ and U by
// cuSOLVER, the columns of each block by kernels/gptq_kernels.h, the lazy update after each block
// by one cuBLAS GEMM, all in double as the CPU oracle. The symbols equal the CPU engine's except
// where the GEMMs' other order of summation moves a value across a rounding boundary
// (tests/gpu/cuda_gptq_test.cpp bounds how often, and the output error's change).
#pragma once
#include "quant/gptq.h"

namespace pgolf {

const GptqEngine& cuda_gptq_engine();

}  // namespace pgolf
