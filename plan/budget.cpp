#include "plan/budget.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace pgolf {

std::vector<size_t> lower_convex_hull(std::span<const RatePoint> points) {
  std::vector<size_t> order(points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return points[a].bytes != points[b].bytes ? points[a].bytes < points[b].bytes
                                              : points[a].distortion < points[b].distortion;
  });
  std::vector<size_t> hull;
  for (size_t i : order) {
    const RatePoint& p = points[i];
    if (!hull.empty() && p.distortion >= points[hull.back()].distortion) continue;  // dominated
    // Drop the last hull point while it lies on or above the segment from its predecessor to p.
    while (hull.size() >= 2) {
      const RatePoint& a = points[hull[hull.size() - 2]];
      const RatePoint& b = points[hull.back()];
      double cross = (b.bytes - a.bytes) * (p.distortion - b.distortion) - (b.distortion - a.distortion) * (p.bytes - b.bytes);
      if (cross > 0) break;
      hull.pop_back();
    }
    hull.push_back(i);
  }
  return hull;
}

namespace {

// One hull segment of one item: moving from hull[k] to hull[k + 1].
struct HullStep {
  size_t item;
  size_t k;
  double gain;  // distortion removed per byte added
};

}  // namespace

BudgetSolution solve_budget(std::span<const BudgetItem> items, double budget, double fixed_bytes) {
  std::vector<std::vector<size_t>> hulls;
  double smallest = fixed_bytes;
  for (const auto& item : items) {
    require(!item.points.empty(), "budget solver: '" + item.name + "' has no candidates");
    hulls.push_back(lower_convex_hull(item.points));
    smallest += item.points[hulls.back().front()].bytes;
  }
  require(smallest <= budget, "the budget of " + std::to_string(std::llround(budget)) +
                                  " bytes is below the smallest size reachable, " + std::to_string(std::llround(smallest)) +
                                  " bytes (every tensor at its smallest candidate)");

  BudgetSolution s;
  s.choice.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) s.choice[i] = hulls[i].front();
  auto total = [&] {
    s.bytes = s.distortion = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      s.bytes += items[i].points[s.choice[i]].bytes;
      s.distortion += items[i].points[s.choice[i]].distortion;
    }
  };
  total();

  // 1. Lagrangian: hull segments by decreasing gain. Within an item the gains decrease along
  // the hull (it is convex), so an item's segments come in order; ties keep that order.
  std::vector<HullStep> steps;
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t k = 0; k + 1 < hulls[i].size(); ++k) {
      const RatePoint& a = items[i].points[hulls[i][k]];
      const RatePoint& b = items[i].points[hulls[i][k + 1]];
      steps.push_back({i, k, (a.distortion - b.distortion) / (b.bytes - a.bytes)});
    }
  std::stable_sort(steps.begin(), steps.end(), [](const HullStep& a, const HullStep& b) { return a.gain > b.gain; });
  double room = budget - fixed_bytes - s.bytes;
  for (const auto& step : steps) {
    const auto& hull = hulls[step.item];
    double extra = items[step.item].points[hull[step.k + 1]].bytes - items[step.item].points[hull[step.k]].bytes;
    if (extra > room) break;
    room -= extra;
    s.choice[step.item] = hull[step.k + 1];
  }

  // 2. Greedy fill: the best distortion-per-byte move that fits, until none does.
  for (;;) {
    double best_score = 0;
    size_t best_item = items.size(), best_point = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      const RatePoint& now = items[i].points[s.choice[i]];
      for (size_t j = 0; j < items[i].points.size(); ++j) {
        const RatePoint& p = items[i].points[j];
        double removed = now.distortion - p.distortion, extra = p.bytes - now.bytes;
        if (!(removed > 0) || extra > room) continue;  // NaN too: every move taken strictly lowers the total
        double score = extra <= 0 ? std::numeric_limits<double>::infinity() : removed / extra;
        if (best_item == items.size() || score > best_score) best_score = score, best_item = i, best_point = j;
      }
    }
    if (best_item == items.size()) break;
    room -= items[best_item].points[best_point].bytes - items[best_item].points[s.choice[best_item]].bytes;
    s.choice[best_item] = best_point;
  }
  total();
  return s;
}

}  // namespace pgolf
