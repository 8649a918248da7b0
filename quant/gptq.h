// GPTQ (Frantar et al. 2022): rounding that knows the model. A matrix W [rows, cols] used as
// y = W x with calibration H = E[x xᵀ] is rounded column by column on a fixed scalar grid; each
// column's rounding error is pushed onto the columns not yet rounded through the upper Cholesky
// factor U of H⁻¹ (H⁻¹ = UᵀU), which minimises the output error tr(ΔW H ΔWᵀ) greedily.
//   1. dead columns (H_jj = 0: inputs always 0) get H_jj = 1 and W_:j = 0;
//   2. act-order: columns by decreasing H_jj (stable), unless act_order is off;
//   3. damping: H += damp · mean(diag H) · I;
//   4. U = chol(H⁻¹) upper; blocks of `block` columns: inside a block the error feedback is
//      immediate, to the columns after the block it is one lazy GEMM per block.
// With H = I the feedback is zero and GPTQ gives round-to-nearest's symbols exactly.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/scalar_grid.h"
#include "quant/tensor_codec.h"

namespace pgolf {

struct GptqOptions {
  bool act_order = true;
  double damp = 0.01;    // fraction of mean(diag H) added to the diagonal
  int64_t block = 128;  // columns per lazy-update block
};

// Steps 1-3, shared by every engine: the problem in the order columns are rounded.
struct GptqProblem {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> order;    // order[k]: the original column rounded k-th
  std::vector<double> weights;   // [rows, cols] permuted, dead columns zeroed
  std::vector<double> hessian;   // [cols, cols] permuted and damped (symmetric positive definite)
};

// InputError (no tensor name; the caller adds it) when the Hessian is not [cols, cols], not
// finite, not symmetric, or has a negative diagonal entry.
GptqProblem prepare_gptq(std::span<const float> weights, const TensorShape& shape, const InputHessian& hessian,
                         const GptqOptions& options);

// Step 4: where it runs.
class GptqEngine {
 public:
  virtual ~GptqEngine() = default;
  virtual std::string name() const = 0;
  // The symbols [rows, cols] of the prepared problem, in its (permuted) column order. InputError
  // when H is not positive definite after damping (its Cholesky factorisation fails).
  virtual std::vector<int32_t> solve(const GptqProblem& problem, const ScalarGrid& grid, int64_t block) const = 0;
};

const GptqEngine& cpu_gptq_engine();  // Eigen, in double: the oracle

// Rate-aware rounding weighs rate against output error: a column's output error per unit of
// weight error is 1/U_cc², so its rate weight is U_cc² over the mean of the columns' 1/U². Every
// engine takes its columns' weights from U's diagonal here.
std::vector<float> gptq_rate_scales(std::span<const double> u_diagonal);

// All of it: symbols [rows, cols] in the original column order.
std::vector<int32_t> gptq_round(std::span<const float> weights, const TensorShape& shape, const InputHessian& hessian,
                                const ScalarGrid& grid, const GptqOptions& options, const GptqEngine& engine);

// tr(ΔW H ΔWᵀ) with ΔW = reference − decoded, and tr(W H Wᵀ): the output error of a matrix
// and its scale. Shapes as above; H already checked.
struct OutputError {
  double error = 0;
  double reference = 0;
};
OutputError output_error(std::span<const float> reference, std::span<const float> decoded, const TensorShape& shape,
                         const InputHessian& hessian);

}  // namespace pgolf
