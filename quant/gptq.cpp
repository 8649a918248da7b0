#include "quant/gptq.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace pgolf {

namespace {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void require_hessian_shape(const InputHessian& hessian, int64_t cols) {
  require(hessian.dim == cols && hessian.values.size() == static_cast<size_t>(cols * cols),
          "its Hessian is " + std::to_string(hessian.dim) + "x" + std::to_string(hessian.dim) + ", not " +
              std::to_string(cols) + "x" + std::to_string(cols) + " (one row and column per input of the matrix)");
}

void check_hessian(const InputHessian& hessian, int64_t cols) {
  require_hessian_shape(hessian, cols);
  const float* h = hessian.values.data();
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float v = h[i * cols + j], t = h[j * cols + i];
      require(std::isfinite(v), "its Hessian has a non-finite entry at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
      // fp32 sums of the same products in another order: symmetric to a few ulps of the diagonal.
      double tol = 1e-4 * std::sqrt(std::fabs(static_cast<double>(h[i * cols + i]) * h[j * cols + j])) + 1e-30;
      require(std::fabs(static_cast<double>(v) - t) <= tol,
              "its Hessian is not symmetric at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
    }
    require(h[i * cols + i] >= 0, "its Hessian is not positive semi-definite: diagonal entry " + std::to_string(i) +
                                      " is " + std::to_string(h[i * cols + i]));
  }
}

class CpuGptqEngine final : public GptqEngine {
 public:
  std::string name() const override { return "cpu"; }

  std::vector<int32_t> solve(const GptqProblem& p, const ScalarGrid& grid, int64_t block) const override {
    const int64_t rows = p.rows, cols = p.cols;
    std::vector<int32_t> symbols(static_cast<size_t>(rows * cols));
    if (rows == 0 || cols == 0) return symbols;
    Eigen::Map<const MatrixD> h(p.hessian.data(), cols, cols);
    // U: the upper Cholesky factor of H⁻¹, as the reference computes it (cholesky_inverse, then
    // an upper Cholesky).
    Eigen::LLT<MatrixD> llt(h);
    require(llt.info() == Eigen::Success, "its Hessian is not positive semi-definite (Cholesky failed after damping)");
    MatrixD inverse = llt.solve(MatrixD::Identity(cols, cols));
    Eigen::LLT<MatrixD, Eigen::Upper> inverse_llt(inverse);
    require(inverse_llt.info() == Eigen::Success, "its Hessian is too ill-conditioned for GPTQ (Cholesky of H⁻¹ failed)");
    MatrixD u = inverse_llt.matrixU();

    const Eigen::VectorXd u_diagonal = u.diagonal();
    const std::vector<float> rate_scale = gptq_rate_scales({u_diagonal.data(), static_cast<size_t>(cols)});
    MatrixD w = Eigen::Map<const MatrixD>(p.weights.data(), rows, cols);
    for (int64_t b0 = 0; b0 < cols; b0 += block) {
      const int64_t n = std::min(block, cols - b0);
      MatrixD err(rows, n);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t c = b0 + k;
        const double d = u(c, c);
        for (int64_t r = 0; r < rows; ++r) {
          // Rounded as the grid rounds a float: with no feedback (H = I) exactly round-to-nearest.
          int32_t q = grid.round(r, static_cast<float>(w(r, c)), rate_scale[c]);
          symbols[static_cast<size_t>(r * cols + c)] = q;
          err(r, k) = (w(r, c) - static_cast<double>(grid.value(r, q))) / d;
        }
        // Immediate feedback inside the block.
        const int64_t rest = n - k - 1;
        if (rest > 0) w.block(0, c + 1, rows, rest).noalias() -= err.col(k) * u.block(c, c + 1, 1, rest);
      }
      // Lazy feedback to every column after the block.
      const int64_t after = cols - b0 - n;
      if (after > 0) w.rightCols(after).noalias() -= err * u.block(b0, b0 + n, n, after);
    }
    return symbols;
  }
};

}  // namespace

GptqProblem prepare_gptq(std::span<const float> weights, const TensorShape& shape, const InputHessian& hessian,
                         const GptqOptions& options) {
  GptqProblem p;
  p.rows = shape.rows();
  p.cols = shape.cols();
  const int64_t cols = p.cols;
  check_hessian(hessian, cols);
  std::vector<double> diag(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) diag[j] = hessian.values[static_cast<size_t>(j * cols + j)];
  p.order.resize(static_cast<size_t>(cols));
  std::iota(p.order.begin(), p.order.end(), int64_t{0});
  if (options.act_order)
    std::stable_sort(p.order.begin(), p.order.end(), [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });

  double mean_diag = 0;
  for (int64_t j = 0; j < cols; ++j) mean_diag += diag[j] == 0 ? 1.0 : diag[j];
  mean_diag = cols ? mean_diag / static_cast<double>(cols) : 0;
  const double damp = options.damp * mean_diag;
  p.hessian.resize(static_cast<size_t>(cols * cols));
  for (int64_t a = 0; a < cols; ++a) {
    const int64_t i = p.order[a];
    for (int64_t b = 0; b < cols; ++b) {
      const int64_t j = p.order[b];
      double v = hessian.values[static_cast<size_t>(i * cols + j)];
      if (i == j) v = (diag[i] == 0 ? 1.0 : v) + damp;
      p.hessian[static_cast<size_t>(a * cols + b)] = v;
    }
  }
  p.weights.resize(static_cast<size_t>(p.rows * cols));
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t a = 0; a < cols; ++a) {
      const int64_t j = p.order[a];
      p.weights[static_cast<size_t>(r * cols + a)] = diag[j] == 0 ? 0.0 : weights[static_cast<size_t>(r * cols + j)];
    }
  return p;
}

std::vector<float> gptq_rate_scales(std::span<const double> u_diagonal) {
  double mean_inverse = 0;
  for (double d : u_diagonal) mean_inverse += 1.0 / (d * d);
  mean_inverse /= static_cast<double>(u_diagonal.size());
  std::vector<float> scales(u_diagonal.size());
  for (size_t c = 0; c < scales.size(); ++c) scales[c] = static_cast<float>(u_diagonal[c] * u_diagonal[c] * mean_inverse);
  return scales;
}

const GptqEngine& cpu_gptq_engine() {
  static const CpuGptqEngine engine;
  return engine;
}

std::vector<int32_t> gptq_round(std::span<const float> weights, const TensorShape& shape, const InputHessian& hessian,
                                const ScalarGrid& grid, const GptqOptions& options, const GptqEngine& engine) {
  require(options.block > 0, "gptq: block must be > 0");
  GptqProblem p = prepare_gptq(weights, shape, hessian, options);
  std::vector<int32_t> permuted = engine.solve(p, grid, options.block);
  std::vector<int32_t> symbols(permuted.size());
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t a = 0; a < p.cols; ++a)
      symbols[static_cast<size_t>(r * p.cols + p.order[a])] = permuted[static_cast<size_t>(r * p.cols + a)];
  return symbols;
}

OutputError output_error(std::span<const float> reference, std::span<const float> decoded, const TensorShape& shape,
                         const InputHessian& hessian) {
  const int64_t rows = shape.rows(), cols = shape.cols();
  require_hessian_shape(hessian, cols);
  using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const MatrixF> w(reference.data(), rows, cols), y(decoded.data(), rows, cols);
  Eigen::Map<const MatrixF> h(hessian.values.data(), cols, cols);
  // Rows of W H and ΔW H in double: tr(A H Aᵀ) = Σ_r (a_r H) · a_r.
  MatrixD wd = w.cast<double>(), delta = wd - y.cast<double>(), hd = h.cast<double>();
  OutputError out;
  out.reference = ((wd * hd).array() * wd.array()).sum();
  out.error = ((delta * hd).array() * delta.array()).sum();
  return out;
}

}  // namespace pgolf
