// The CUDA half of GPTQ's column loop (quant/gptq.h; gpu/cuda_gptq.cpp runs the rest). The
// weights are column-major [rows, cols] doubles (column c at w + c · rows), U is the upper
// Cholesky factor of H⁻¹, column-major [cols, cols] (U(i, j) at u + j · cols + i).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/grid_round.h"

namespace pgolf::cuda {

// A scalar grid in device memory: row_steps [rows]; rate.bits (when rate.rdo > 0) on the device.
struct DeviceGrid {
  const float* row_steps = nullptr;
  int32_t max_symbol = 0;
  GridRateModel rate;
};

// Columns b0 .. b0 + n - 1 in order, one thread per row, as the CPU engine does them: the symbol
// of w(r, c) (round_on_grid with rate_scale[c]) into symbols (column-major [rows, cols]), the
// error (w − value) / U(c, c) into err (column-major [rows, n]), and that error fed back to the
// block's later columns (w(r, c') −= err · U(c, c'), each product and difference rounded alone).
void gptq_round_block(double* w, const double* u, int rows, int cols, int b0, int n, const DeviceGrid& grid,
                      const float* rate_scale, int32_t* symbols, double* err, cudaStream_t stream);

// a (column-major [n, n]) := its lower triangle mirrored onto the upper one.
void mirror_lower(double* a, int n, cudaStream_t stream);

}  // namespace pgolf::cuda
