#include "gpu/cuda_gptq.h"

#include <cusolverDn.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/device_buffer.h"
#include "kernels/gptq_kernels.h"

namespace pgolf {

namespace {

void check_solver(cusolverStatus_t status, const char* call) {
  if (status != CUSOLVER_STATUS_SUCCESS)
    throw std::runtime_error(std::string(call) + ": cuSOLVER status " + std::to_string(static_cast<int>(status)));
}
#define PGOLF_CUSOLVER_CHECK(call) check_solver((call), #call)

struct Handles {
  Handles() {
    PGOLF_CUSOLVER_CHECK(cusolverDnCreate(&solver));
    PGOLF_CUDA_CHECK(cublasCreate(&blas));
  }
  ~Handles() {
    cusolverDnDestroy(solver);
    cublasDestroy(blas);
  }
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;
  cusolverDnHandle_t solver = nullptr;
  cublasHandle_t blas = nullptr;
};

// a (n x n, symmetric positive definite) := the Cholesky factor `uplo` of a; false when a is not
// positive definite.
bool cholesky(cusolverDnHandle_t solver, cublasFillMode_t uplo, double* a, int n, cuda::DeviceBuffer<int>& info) {
  int work_size = 0;
  PGOLF_CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(solver, uplo, n, a, n, &work_size));
  cuda::DeviceBuffer<double> work(static_cast<size_t>(work_size));
  PGOLF_CUSOLVER_CHECK(cusolverDnDpotrf(solver, uplo, n, a, n, work.data(), work_size, info.data()));
  return info.download(1)[0] == 0;
}

class CudaGptqEngine final : public GptqEngine {
 public:
  std::string name() const override { return "cuda"; }

  std::vector<int32_t> solve(const GptqProblem& p, const ScalarGrid& grid, int64_t block) const override {
    const int rows = static_cast<int>(p.rows), cols = static_cast<int>(p.cols);
    std::vector<int32_t> symbols(static_cast<size_t>(p.rows * p.cols));
    if (rows == 0 || cols == 0) return symbols;
    static thread_local std::unique_ptr<Handles> handles = std::make_unique<Handles>();
    cuda::DeviceBuffer<int> info(1);

    // U, the upper Cholesky factor of H⁻¹: H = L Lᵀ, H⁻¹ from L (lower triangle), mirrored, then
    // its upper factor. H is symmetric, so its row-major buffer is also its column-major one.
    cuda::DeviceBuffer<double> u{std::span<const double>(p.hessian)};
    require(cholesky(handles->solver, CUBLAS_FILL_MODE_LOWER, u.data(), cols, info),
            "its Hessian is not positive semi-definite (Cholesky failed after damping)");
    int work_size = 0;
    PGOLF_CUSOLVER_CHECK(cusolverDnDpotri_bufferSize(handles->solver, CUBLAS_FILL_MODE_LOWER, cols, u.data(), cols, &work_size));
    {
      cuda::DeviceBuffer<double> work(static_cast<size_t>(work_size));
      PGOLF_CUSOLVER_CHECK(cusolverDnDpotri(handles->solver, CUBLAS_FILL_MODE_LOWER, cols, u.data(), cols, work.data(),
                                            work_size, info.data()));
    }
    cuda::mirror_lower(u.data(), cols, nullptr);
    require(cholesky(handles->solver, CUBLAS_FILL_MODE_UPPER, u.data(), cols, info),
            "its Hessian is too ill-conditioned for GPTQ (Cholesky of H⁻¹ failed)");
    // Only U's diagonal comes back (the rate weights), not the whole factor.
    cuda::DeviceBuffer<double> diagonal(static_cast<size_t>(cols));
    PGOLF_CUDA_CHECK(cublasDcopy(handles->blas, cols, u.data(), cols + 1, diagonal.data(), 1));
    const std::vector<float> scales = gptq_rate_scales(diagonal.download());
    cuda::DeviceBuffer<float> rate_scale{std::span<const float>(scales)};

    // The weights column-major; the grid and its rate model on the device.
    std::vector<double> columns(p.weights.size());
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) columns[static_cast<size_t>(c) * rows + r] = p.weights[static_cast<size_t>(r) * cols + c];
    cuda::DeviceBuffer<double> w{std::span<const double>(columns)}, err(static_cast<size_t>(rows) * block);
    cuda::DeviceBuffer<float> steps{std::span<const float>(grid.row_steps)};
    cuda::DeviceBuffer<float> rate_bits{std::span<const float>(grid.rate_bits)};
    cuda::DeviceGrid device_grid{steps.data(), grid.max_symbol, grid.rate_model()};
    device_grid.rate.bits = rate_bits.data();
    cuda::DeviceBuffer<int32_t> device_symbols(symbols.size());

    const double minus_one = -1, one = 1;
    for (int b0 = 0; b0 < cols; b0 += static_cast<int>(block)) {
      const int n = static_cast<int>(std::min<int64_t>(block, cols - b0)), after = cols - b0 - n;
      cuda::gptq_round_block(w.data(), u.data(), rows, cols, b0, n, device_grid, rate_scale.data(), device_symbols.data(),
                             err.data(), nullptr);
      // W[:, after] −= Err [rows, n] · U[b0 .. b0 + n, after].
      if (after > 0)
        PGOLF_CUDA_CHECK(cublasDgemm(handles->blas, CUBLAS_OP_N, CUBLAS_OP_N, rows, after, n, &minus_one, err.data(), rows,
                                     u.data() + static_cast<size_t>(b0 + n) * cols + b0, cols, &one,
                                     w.data() + static_cast<size_t>(b0 + n) * rows, rows));
    }
    std::vector<int32_t> by_column = device_symbols.download();
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) symbols[static_cast<size_t>(r) * cols + c] = by_column[static_cast<size_t>(c) * rows + r];
    return symbols;
  }
};

}  // namespace

const GptqEngine& cuda_gptq_engine() {
  static const CudaGptqEngine engine;
  return engine;
}

}  // namespace pgolf
