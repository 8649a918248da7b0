// K-means codebooks ("kmeans:k=K[,init=quantile|kmeanspp][,groups=rows:R][,method=lloyd|exact|ecsq]
// [,lambda=L][,iters=N][,seed=S]"): up to K fp16 centroids per tensor (or per group of R consecutive
// rows), one uint8 index per value; decoding is a table lookup.
//
// Every method works on the distinct values of a codebook's values with their counts (a bf16 tensor
// has at most 65,536 of them) through prefix sums, so a Lloyd or ECSQ iteration costs O(K log m) for
// m distinct values, and only sorting and the final assignment touch every value.
//   lloyd  Lloyd iterations from the init until the assignment stops changing, or iters run out.
//   exact  optimal 1-D k-means: dynamic programming over the sorted distinct values, each layer
//          by divide and conquer over its monotone split points (O(K m log m) time, K·m split indices).
//   ecsq   entropy-constrained: each value takes the centroid j minimising (x - c_j)^2 + lambda·(-log2 p_j),
//          p_j the share of values on j; assignment and centroid/probability updates alternate, and
//          clusters that empty are dropped. Fewer, unequally likely indices compress under zstd/rANS.
// The init (quantile: centroids at the (i+0.5)/K quantiles; kmeanspp: k-means++ seeded by seed) serves
// lloyd and ecsq. ("kmeanspp" because '+' separates pipeline stages in a spec.)
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quant/tensor_decoder.h"

namespace pgolf {

enum class KmeansInit { Quantile, KmeansPlusPlus };
enum class KmeansMethod { Lloyd, Exact, Ecsq };

struct KmeansRule {
  static constexpr int kDefaultIters = 100;

  int k = 256;                             // 2..256 centroids per codebook
  KmeansInit init = KmeansInit::Quantile;  // lloyd and ecsq
  int64_t group_rows = 0;                  // rows per codebook; 0: one codebook for the tensor
  KmeansMethod method = KmeansMethod::Lloyd;
  double lambda = 0;                       // ecsq: squared weight error per bit of index code length
  int iters = kDefaultIters;               // lloyd and ecsq
  uint64_t seed = 0;                       // kmeanspp

  std::string spec() const;  // canonical: parameters at their defaults are left out
};

// One codebook for the tensor, or one per group of group_rows rows (the last may be shorter).
int64_t kmeans_codebook_count(const KmeansRule& rule, const TensorShape& shape);
size_t kmeans_values_per_codebook(const KmeansRule& rule, const TensorShape& shape);

// Distinct values ascending with how often each occurs. The values must be finite.
struct WeightedPoints {
  std::vector<double> value;
  std::vector<double> weight;
};
WeightedPoints distinct_values(std::span<const float> values);

// A value takes the centroid j with the least (x - c_j)^2 + penalty_j: the nearest one unless ecsq.
struct Codebook {
  std::vector<double> centroid;  // ascending, at most K
  std::vector<double> penalty;   // ecsq: lambda · (-log2 share of values on j); 0 otherwise
};

// The rule's method on these points (K, init, method, lambda, iters, seed; not groups).
// Throws InputError when method=exact would need too large a table.
Codebook train_codebook(const WeightedPoints& points, const KmeansRule& rule);

// Sum over the points of weight · (x - assigned centroid)^2, the assignment as the codec makes it.
double squared_error(const WeightedPoints& points, const Codebook& codebook);

}  // namespace pgolf
