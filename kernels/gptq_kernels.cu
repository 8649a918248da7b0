#include "kernels/cuda_check.h"
#include "kernels/gptq_kernels.h"

namespace pgolf::cuda {

namespace {

__global__ void gptq_round_block_kernel(double* w, const double* u, int rows, int cols, int b0, int n, DeviceGrid grid,
                                        const float* rate_scale, int32_t* symbols, double* err) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float step = grid.row_steps[r];
  for (int k = 0; k < n; ++k) {
    const int64_t c = b0 + k;
    const double x = w[c * rows + r];
    const int32_t q = round_on_grid(static_cast<float>(x), step, grid.max_symbol, grid.rate, rate_scale[c]);
    symbols[c * rows + r] = q;
    const double e = (x - static_cast<double>(grid_value(q, step))) / u[c * cols + c];
    err[static_cast<int64_t>(k) * rows + r] = e;
    for (int j = k + 1; j < n; ++j) {
      double& target = w[(b0 + j) * static_cast<int64_t>(rows) + r];
      target = __dsub_rn(target, __dmul_rn(e, u[(b0 + j) * static_cast<int64_t>(cols) + c]));
    }
  }
}

__global__ void mirror_lower_kernel(double* a, int n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * n) return;
  const int64_t row = i % n, col = i / n;
  if (row < col) a[i] = a[row * n + col];  // upper (row, col) from lower (col, row)
}

}  // namespace

void gptq_round_block(double* w, const double* u, int rows, int cols, int b0, int n, const DeviceGrid& grid,
                      const float* rate_scale, int32_t* symbols, double* err, cudaStream_t stream) {
  if (rows == 0 || n == 0) return;
  constexpr int kThreads = 128;
  gptq_round_block_kernel<<<(rows + kThreads - 1) / kThreads, kThreads, 0, stream>>>(w, u, rows, cols, b0, n, grid,
                                                                                   rate_scale, symbols, err);
  PGOLF_CUDA_CHECK_LAUNCH("gptq_round_block");
}

void mirror_lower(double* a, int n, cudaStream_t stream) {
  const int64_t count = static_cast<int64_t>(n) * n;
  if (count == 0) return;
  constexpr int kThreads = 256;
  mirror_lower_kernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a, n);
  PGOLF_CUDA_CHECK_LAUNCH("mirror_lower");
}

}  // namespace pgolf::cuda
