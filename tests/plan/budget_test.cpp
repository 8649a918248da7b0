// The budget solver on hand-made rate-distortion points: the hull, fitting, beating every
// uniform choice, optimality at Lagrangian budgets, the greedy fill off the hull, and the
// infeasible budget's error.
#include "plan/budget.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace pgolf {
namespace {

// Item i: `bits` 2..8 of an int-N-like codec: bytes n*b/8, distortion scale*4^-b (convex).
std::vector<BudgetItem> convex_items() {
  const double sizes[] = {1000, 4000, 2500, 600};
  const double scales[] = {5.0, 1.0, 30.0, 0.2};
  std::vector<BudgetItem> items;
  for (int i = 0; i < 4; ++i) {
    BudgetItem item{"t" + std::to_string(i), {}};
    for (int b = 2; b <= 8; ++b) item.points.push_back({sizes[i] * b / 8, scales[i] * std::pow(4.0, -b)});
    items.push_back(item);
  }
  return items;
}

// The least total distortion within the budget, by trying every combination.
double brute_force(const std::vector<BudgetItem>& items, double budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> pick(items.size(), 0);
  for (;;) {
    double bytes = 0, distortion = 0;
    for (size_t i = 0; i < items.size(); ++i) bytes += items[i].points[pick[i]].bytes, distortion += items[i].points[pick[i]].distortion;
    if (bytes <= budget) best = std::min(best, distortion);
    size_t i = 0;
    while (i < items.size() && ++pick[i] == items[i].points.size()) pick[i++] = 0;
    if (i == items.size()) return best;
  }
}

void expect_consistent(const std::vector<BudgetItem>& items, const BudgetSolution& s, double budget, double fixed) {
  ASSERT_EQ(s.choice.size(), items.size());
  double bytes = 0, distortion = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_LT(s.choice[i], items[i].points.size());
    bytes += items[i].points[s.choice[i]].bytes;
    distortion += items[i].points[s.choice[i]].distortion;
  }
  EXPECT_DOUBLE_EQ(s.bytes, bytes);
  EXPECT_DOUBLE_EQ(s.distortion, distortion);
  EXPECT_LE(bytes + fixed, budget);
}

TEST(LowerConvexHull, KeepsOnlyTheConvexEfficientPoints) {
  //                               0       1        2         3       4       5
  std::vector<RatePoint> points = {{4, 1}, {1, 10}, {2, 9.5}, {3, 2}, {3, 5}, {5, 1}};
  EXPECT_EQ(lower_convex_hull(points), (std::vector<size_t>{1, 3, 0}));
  std::vector<RatePoint> one = {{7, 3}};
  EXPECT_EQ(lower_convex_hull(one), (std::vector<size_t>{0}));
  std::vector<RatePoint> collinear = {{1, 3}, {2, 2}, {3, 1}};  // the middle point adds nothing
  EXPECT_EQ(lower_convex_hull(collinear), (std::vector<size_t>{0, 2}));
}

TEST(SolveBudget, FitsAndBeatsEveryUniformChoiceThatFits) {
  auto items = convex_items();
  const double fixed = 100;
  for (double budget = 2500; budget <= 8200; budget += 137) {
    SCOPED_TRACE(budget);
    auto s = solve_budget(items, budget, fixed);
    expect_consistent(items, s, budget, fixed);
    for (size_t j = 0; j < items[0].points.size(); ++j) {
      double bytes = fixed, distortion = 0;
      for (const auto& item : items) bytes += item.points[j].bytes, distortion += item.points[j].distortion;
      if (bytes <= budget) EXPECT_LE(s.distortion, distortion) << "uniform choice " << j;
    }
    EXPECT_GE(s.distortion, brute_force(items, budget - fixed) * (1 - 1e-12));  // a sane total
  }
}

// At the bytes of a Lagrangian choice (each item minimising D + lambda R) that choice is optimal,
// so the solver must reach its distortion exactly.
TEST(SolveBudget, OptimalAtLagrangianBudgets) {
  auto items = convex_items();
  for (double lambda : {1e-7, 1e-6, 1e-5, 1e-4, 1e-3}) {
    double bytes = 0, distortion = 0;
    for (const auto& item : items) {
      const RatePoint* best = &item.points[0];
      for (const auto& p : item.points)
        if (p.distortion + lambda * p.bytes < best->distortion + lambda * best->bytes) best = &p;
      bytes += best->bytes, distortion += best->distortion;
    }
    auto s = solve_budget(items, bytes);
    EXPECT_DOUBLE_EQ(s.distortion, distortion) << "lambda " << lambda;
    EXPECT_DOUBLE_EQ(s.distortion, brute_force(items, bytes)) << "lambda " << lambda;
  }
}

// Item a's middle point lies above its hull: the Lagrangian step to 3 bytes does not fit in
// the 2 bytes left, but the greedy fill takes the off-hull point for the last byte.
TEST(SolveBudget, GreedyFillUsesPointsOffTheHull) {
  std::vector<BudgetItem> items = {{"a", {{1, 10}, {2, 9.5}, {3, 1}}}, {"b", {{1, 4}, {2, 3}}}};
  auto s = solve_budget(items, 4);  // 2 bytes of room: a's hull step (4.5 per byte, 2 bytes) first
  EXPECT_EQ(s.choice, (std::vector<size_t>{2, 0}));
  s = solve_budget(items, 3);  // only 1 byte of room: a's hull step no longer fits
  EXPECT_EQ(s.choice, (std::vector<size_t>{0, 1}));  // b's step (1 per byte) beats a's off-hull 0.5
  items[1].points[1] = {2, 3.9};
  s = solve_budget(items, 3);
  EXPECT_EQ(s.choice, (std::vector<size_t>{1, 0}));  // now a's off-hull point (0.5 per byte) wins
  EXPECT_DOUBLE_EQ(s.distortion, 13.5);
}

TEST(SolveBudget, LargeBudgetTakesTheLeastDistortionEverywhere) {
  auto items = convex_items();
  auto s = solve_budget(items, 1e9);
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(s.choice[i], items[i].points.size() - 1);
}

TEST(SolveBudget, InfeasibleBudgetNamesTheSmallestReachableSize) {
  auto items = convex_items();  // smallest: (1000 + 4000 + 2500 + 600) * 2 / 8 = 2025, plus 75 fixed
  try {
    solve_budget(items, 2099, 75);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("2100 bytes"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(solve_budget(items, 2100, 75));
}

}  // namespace
}  // namespace pgolf
