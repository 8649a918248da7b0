// Truncated SVD for the low-rank codecs (lowrank, lrcorr): W ≈ A·B with A = U_r·S_r and
// B = V_rᵀ, computed in double by Eigen's BDCSVD, and the factors as a codec's streams (their
// decoding is in quant/tensor_decoder_registry.h).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/tensor_codec.h"

namespace pgolf {

// The thin SVD W = U·diag(S)·Vᵀ of a row-major [rows, cols] matrix; k = min(rows, cols).
struct ThinSvd {
  int64_t rows = 0, cols = 0;
  std::vector<double> singular_values;  // k, descending
  std::vector<double> u;                // [rows, k] row-major (empty without vectors)
  std::vector<double> v;                // [cols, k] row-major (empty without vectors)
};
ThinSvd thin_svd(std::span<const float> matrix, int64_t rows, int64_t cols, bool with_vectors = true);

// Share of the squared singular values (the "explained variance") in the first `rank`; 0 for a zero matrix.
double energy_share(std::span<const double> singular_values, int64_t rank);
// The smallest rank whose share reaches `energy` (in (0, 1]); 0 for a zero matrix.
int64_t rank_for_energy(std::span<const double> singular_values, double energy);

struct LowRankFactors {
  int64_t rank = 0;
  std::vector<float> a;  // [rows, rank] = U_r·S_r
  std::vector<float> b;  // [rank, cols] = V_rᵀ
};
// A rank past what a tensor of this shape holds, said for TensorCodec::clamped ("rank 100000 ->
// 512"); empty when it fits.
std::string rank_clamp_note(int64_t rank, const TensorShape& shape);

// The first `rank` components (rank <= k), rounded to float.
LowRankFactors leading_factors(const ThinSvd& svd, int64_t rank);

// Appends codec's streams of A [rows, rank], then of B [rank, cols].
void encode_factors(const TensorCodec& codec, const LowRankFactors& factors, int64_t rows, int64_t cols,
                    std::vector<Stream>& streams);

}  // namespace pgolf
