// The budget solver: every item (a tensor) has a few candidate encodings, each a point of
// (bytes, distortion); choose one per item so that the total distortion is least while the total
// bytes stay within a budget. A multiple-choice knapsack, solved the rate-distortion way:
//   1. the Lagrangian solution: every item on the lower convex hull of its points, at the point
//      minimising D + lambda R for the smallest lambda whose choice fits. Hull segments taken in
//      order of decreasing slope until the next one does not fit give exactly that choice (what a
//      bisection on lambda converges to, without the bisection);
//   2. a greedy fill of what is left: repeatedly the move (any item to any of its points, on the
//      hull or not) with the most distortion removed per byte added that still fits.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace pgolf {

struct RatePoint {
  double bytes = 0;
  double distortion = 0;  // anything additive: here, sensitivity-weighted squared error
};

struct BudgetItem {
  std::string name;
  std::vector<RatePoint> points;  // at least one
};

struct BudgetSolution {
  std::vector<size_t> choice;  // per item, an index into its points
  double bytes = 0;            // of the chosen points, without fixed_bytes
  double distortion = 0;
};

// fixed_bytes: spent whatever is chosen (float tensors, the manifest). InputError, naming the
// smallest total reachable, when every item at its smallest point is still over the budget.
BudgetSolution solve_budget(std::span<const BudgetItem> items, double budget, double fixed_bytes = 0);

// Indices of the points on the lower convex hull, by increasing bytes and decreasing distortion:
// the points D + lambda R picks for some lambda >= 0. Dominated points are left out; of points
// with equal bytes and distortion, the first.
std::vector<size_t> lower_convex_hull(std::span<const RatePoint> points);

}  // namespace pgolf
