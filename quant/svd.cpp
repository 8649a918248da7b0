#include "quant/svd.h"

#include <Eigen/SVD>
#include <algorithm>

#include "core/error.h"

namespace pgolf {

ThinSvd thin_svd(std::span<const float> matrix, int64_t rows, int64_t cols, bool with_vectors) {
  ThinSvd out;
  out.rows = rows;
  out.cols = cols;
  int64_t k = std::min(rows, cols);
  if (k == 0) return out;
  using RowMajorFloat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd w = Eigen::Map<const RowMajorFloat>(matrix.data(), rows, cols).cast<double>();
  Eigen::BDCSVD<Eigen::MatrixXd> svd(w, with_vectors ? Eigen::ComputeThinU | Eigen::ComputeThinV : 0);
  const auto& s = svd.singularValues();
  out.singular_values.assign(s.data(), s.data() + k);
  if (!with_vectors) return out;
  out.u.resize(static_cast<size_t>(rows * k));
  out.v.resize(static_cast<size_t>(cols * k));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) out.u[static_cast<size_t>(i * k + j)] = svd.matrixU()(i, j);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < k; ++j) out.v[static_cast<size_t>(i * k + j)] = svd.matrixV()(i, j);
  return out;
}

namespace {
// Sums of squares in one fixed order, so that the full sum equals the total exactly.
double leading_energy(std::span<const double> singular_values, int64_t rank) {
  double sum = 0;
  for (int64_t i = 0; i < rank; ++i) sum += singular_values[static_cast<size_t>(i)] * singular_values[static_cast<size_t>(i)];
  return sum;
}
}  // namespace

double energy_share(std::span<const double> singular_values, int64_t rank) {
  double total = leading_energy(singular_values, static_cast<int64_t>(singular_values.size()));
  return total == 0 ? 0 : leading_energy(singular_values, rank) / total;
}

int64_t rank_for_energy(std::span<const double> singular_values, double energy) {
  double target = energy * leading_energy(singular_values, static_cast<int64_t>(singular_values.size()));
  double sum = 0;
  for (size_t r = 0; r < singular_values.size(); ++r) {
    if (sum >= target) return static_cast<int64_t>(r);
    sum += singular_values[r] * singular_values[r];
  }
  return static_cast<int64_t>(singular_values.size());
}

std::string rank_clamp_note(int64_t rank, const TensorShape& shape) {
  const int64_t most = std::min(shape.rows(), shape.cols());
  return rank > most ? "rank " + std::to_string(rank) + " -> " + std::to_string(most) : "";
}

LowRankFactors leading_factors(const ThinSvd& svd, int64_t rank) {
  int64_t k = static_cast<int64_t>(svd.singular_values.size());
  LowRankFactors f;
  f.rank = rank;
  f.a.resize(static_cast<size_t>(svd.rows * rank));
  f.b.resize(static_cast<size_t>(rank * svd.cols));
  for (int64_t i = 0; i < svd.rows; ++i)
    for (int64_t j = 0; j < rank; ++j)
      f.a[static_cast<size_t>(i * rank + j)] =
          static_cast<float>(svd.u[static_cast<size_t>(i * k + j)] * svd.singular_values[static_cast<size_t>(j)]);
  for (int64_t j = 0; j < rank; ++j)
    for (int64_t c = 0; c < svd.cols; ++c)
      f.b[static_cast<size_t>(j * svd.cols + c)] = static_cast<float>(svd.v[static_cast<size_t>(c * k + j)]);
  return f;
}

void encode_factors(const TensorCodec& codec, const LowRankFactors& factors, int64_t rows, int64_t cols,
                    std::vector<Stream>& streams) {
  for (auto& s : codec.encode(factors.a, TensorShape{{rows, factors.rank}})) streams.push_back(std::move(s));
  for (auto& s : codec.encode(factors.b, TensorShape{{factors.rank, cols}})) streams.push_back(std::move(s));
}

}  // namespace pgolf
