#include "quant/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/spec.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// method=exact keeps one uint32 split point per (cluster, distinct value): 512 MiB at this limit.
constexpr int64_t kMaxExactTableEntries = int64_t{1} << 27;

// Prefix sums of weight, x and x^2 over the points, with x shifted by the mean so that cost()
// does not lose its precision to cancellation.
struct PrefixSums {
  explicit PrefixSums(const WeightedPoints& points) : w(points.value.size() + 1), s(w.size()), q(w.size()) {
    double total = 0, sum = 0;
    for (size_t i = 0; i < points.value.size(); ++i) total += points.weight[i], sum += points.weight[i] * points.value[i];
    shift = total > 0 ? sum / total : 0;
    for (size_t i = 0; i < points.value.size(); ++i) {
      double x = points.value[i] - shift, wi = points.weight[i];
      w[i + 1] = w[i] + wi;
      s[i + 1] = s[i] + wi * x;
      q[i + 1] = q[i] + wi * x * x;
    }
  }
  double mean(size_t a, size_t b) const { return shift + (s[b] - s[a]) / (w[b] - w[a]); }
  // Squared error of points [a, b) around their mean.
  double cost(size_t a, size_t b) const {
    double weight = w[b] - w[a];
    if (weight <= 0) return 0;
    double sum = s[b] - s[a];
    return std::max(0.0, q[b] - q[a] - sum * sum / weight);
  }

  double shift = 0;
  std::vector<double> w, s, q;
};

// Where penalised parabolas a and b (centroid a < centroid b) cost the same.
double breakpoint(const Codebook& cb, size_t a, size_t b) {
  double lo = cb.centroid[a], hi = cb.centroid[b];
  return (lo + hi) / 2 + (cb.penalty[b] - cb.penalty[a]) / (2 * (hi - lo));
}

// Assignment to a codebook: value x takes the first j with x <= bound[j] (std::lower_bound). The
// bounds come from the lower envelope of the penalised parabolas (x - c_j)^2 + penalty_j: each
// centroid wins on one interval (or none), in centroid order, so a convex-hull sweep finds them.
// A centroid that never wins repeats its predecessor's bound; the last bound is +inf. Without
// penalties each bound is the midpoint of two neighbouring centroids, exactly.
std::vector<double> assignment_bounds(const Codebook& cb) {
  std::vector<size_t> hull;   // centroids on the envelope, left to right
  std::vector<double> start;  // where each begins to win
  for (size_t j = 0; j < cb.centroid.size(); ++j) {
    if (!hull.empty() && cb.centroid[hull.back()] == cb.centroid[j]) {
      if (cb.penalty[j] >= cb.penalty[hull.back()]) continue;  // a twin costs no less: the earlier one stays
      hull.pop_back();
      start.pop_back();
    }
    while (!hull.empty() && breakpoint(cb, hull.back(), j) <= start.back()) {
      hull.pop_back();
      start.pop_back();
    }
    start.push_back(hull.empty() ? -kInf : breakpoint(cb, hull.back(), j));
    hull.push_back(j);
  }
  std::vector<double> bound(cb.centroid.size());
  double last = -kInf;
  for (size_t j = 0, t = 0; j < bound.size(); ++j) {
    if (t < hull.size() && hull[t] == j) {
      last = t + 1 < hull.size() ? start[t + 1] : kInf;
      ++t;
    }
    bound[j] = last;
  }
  return bound;
}

// For each centroid, one past the last point assigned to it (points [end[j-1], end[j]) are on j).
std::vector<size_t> range_ends(const WeightedPoints& points, std::span<const double> bounds) {
  std::vector<size_t> ends(bounds.size());
  for (size_t j = 0; j < bounds.size(); ++j)
    ends[j] = static_cast<size_t>(std::upper_bound(points.value.begin(), points.value.end(), bounds[j]) - points.value.begin());
  return ends;
}

// Centroids at the (i+0.5)/K quantiles of the weighted points. Where several quantiles fall on one
// value, the later ones take the next distinct values, so that no codebook slot starts as a duplicate.
std::vector<double> quantile_init(const WeightedPoints& points, const PrefixSums& sums, int k) {
  size_t m = points.value.size(), kk = static_cast<size_t>(k);
  if (m <= kk) return points.value;
  std::vector<double> centroid;
  double total = sums.w[m];
  size_t p = 0, previous = 0;
  for (size_t i = 0; i < kk; ++i) {
    double rank = (static_cast<double>(i) + 0.5) / static_cast<double>(kk) * total;
    while (p + 1 < m && sums.w[p + 1] <= rank) ++p;
    size_t chosen = i == 0 ? p : std::max(p, previous + 1);
    chosen = std::min(chosen, m - (kk - i));
    centroid.push_back(points.value[chosen]);
    previous = chosen;
  }
  return centroid;
}

// k-means++: the first centroid drawn by weight, each next by weight · squared distance to the nearest
// chosen one. Uniforms come from mt19937_64's raw output, which the standard fixes, so every
// platform draws the same.
std::vector<double> kmeans_plus_plus_init(const WeightedPoints& points, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  size_t m = points.value.size();
  std::vector<double> nearest(m, kInf), centroid;
  std::vector<double> score = points.weight;
  while (centroid.size() < static_cast<size_t>(k)) {
    double total = 0;
    for (double s : score) total += s;
    if (total <= 0) break;  // every point is already a centroid
    double target = static_cast<double>(rng() >> 11) * 0x1p-53 * total, running = 0;
    size_t pick = m;
    for (size_t i = 0; i < m; ++i) {
      if (score[i] <= 0) continue;
      pick = i;  // the last candidate also absorbs rounding in total
      running += score[i];
      if (running > target) break;
    }
    double c = points.value[pick];
    centroid.push_back(c);
    for (size_t i = 0; i < m; ++i) {
      double d = points.value[i] - c;
      nearest[i] = std::min(nearest[i], d * d);
      score[i] = points.weight[i] * nearest[i];
    }
  }
  std::sort(centroid.begin(), centroid.end());
  return centroid;
}

// Lloyd (lambda = 0) or ECSQ iterations. Empty clusters are dropped; penalties follow the shares.
Codebook iterate(const WeightedPoints& points, const PrefixSums& sums, std::vector<double> centroid, double lambda,
                 int iters) {
  double total = sums.w[points.value.size()];
  Codebook cb{std::move(centroid), {}};
  cb.penalty.assign(cb.centroid.size(), 0.0);  // equal shares: the first assignment is plain nearest
  std::vector<size_t> previous_ends;
  for (int it = 0; it < iters; ++it) {
    auto ends = range_ends(points, assignment_bounds(cb));
    if (ends == previous_ends) break;  // converged: no cluster moved or emptied
    Codebook next;
    previous_ends.clear();
    size_t begin = 0;
    for (size_t end : ends) {
      if (end > begin) {
        next.centroid.push_back(sums.mean(begin, end));
        next.penalty.push_back(lambda > 0 ? -lambda * std::log2((sums.w[end] - sums.w[begin]) / total) : 0.0);
        previous_ends.push_back(end);
      }
      begin = end;
    }
    cb = std::move(next);
  }
  return cb;
}

// Optimal k-means of the points: cost[c][i] = min over j of cost[c-1][j] + cost(points [j, i)). The
// best j never decreases with i, so each layer is solved by divide and conquer.
Codebook exact_kmeans(const WeightedPoints& points, const PrefixSums& sums, int k) {
  size_t m = points.value.size(), kk = static_cast<size_t>(k);
  if (m <= kk) return {points.value, std::vector<double>(m, 0.0)};
  if (static_cast<int64_t>(m) * (k - 1) > kMaxExactTableEntries)
    throw InputError("kmeans method=exact: " + std::to_string(m) + " distinct values x K=" + std::to_string(k) +
                     " needs more than 2^27 split points (512 MiB); use method=lloyd, or groups=rows:R for fewer "
                     "values per codebook");
  std::vector<double> previous(m + 1), current(m + 1);
  for (size_t i = 0; i <= m; ++i) previous[i] = sums.cost(0, i);
  std::vector<uint32_t> split((kk - 1) * (m + 1));
  for (size_t c = 2; c <= kk; ++c) {
    uint32_t* best_split = &split[(c - 2) * (m + 1)];
    // current[i] for i in [lo, hi], knowing its best split lies in [opt_lo, opt_hi]
    auto solve = [&](auto&& self, size_t lo, size_t hi, size_t opt_lo, size_t opt_hi) -> void {
      size_t mid = lo + (hi - lo) / 2, best_j = opt_lo;
      double best = kInf;
      for (size_t j = opt_lo, last = std::min(mid - 1, opt_hi); j <= last; ++j) {
        double v = previous[j] + sums.cost(j, mid);
        if (v < best) best = v, best_j = j;
      }
      current[mid] = best;
      best_split[mid] = static_cast<uint32_t>(best_j);
      if (mid > lo) self(self, lo, mid - 1, opt_lo, best_j);
      if (mid < hi) self(self, mid + 1, hi, best_j, opt_hi);
    };
    solve(solve, c, m, c - 1, m - 1);  // c clusters need at least c points
    std::swap(previous, current);
  }
  Codebook cb{std::vector<double>(kk), std::vector<double>(kk, 0.0)};
  size_t end = m;
  for (size_t c = kk; c >= 2; --c) {
    size_t begin = split[(c - 2) * (m + 1) + end];
    cb.centroid[c - 1] = sums.mean(begin, end);
    end = begin;
  }
  cb.centroid[0] = sums.mean(0, end);
  return cb;
}

}  // namespace

WeightedPoints distinct_values(std::span<const float> values) {
  std::vector<float> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  WeightedPoints points;
  for (size_t i = 0, j; i < sorted.size(); i = j) {
    for (j = i + 1; j < sorted.size() && sorted[j] == sorted[i];) ++j;
    points.value.push_back(sorted[i]);
    points.weight.push_back(static_cast<double>(j - i));
  }
  return points;
}

Codebook train_codebook(const WeightedPoints& points, const KmeansRule& rule) {
  if (points.value.empty()) return {};
  PrefixSums sums(points);
  if (rule.method == KmeansMethod::Exact) return exact_kmeans(points, sums, rule.k);
  auto init = rule.init == KmeansInit::Quantile ? quantile_init(points, sums, rule.k)
                                                : kmeans_plus_plus_init(points, rule.k, rule.seed);
  return iterate(points, sums, std::move(init), rule.method == KmeansMethod::Ecsq ? rule.lambda : 0.0, rule.iters);
}

double squared_error(const WeightedPoints& points, const Codebook& cb) {
  auto ends = range_ends(points, assignment_bounds(cb));
  double err = 0;
  for (size_t j = 0, i = 0; j < ends.size(); ++j)
    for (; i < ends[j]; ++i) {
      double d = points.value[i] - cb.centroid[j];
      err += points.weight[i] * d * d;
    }
  return err;
}

namespace {

class KmeansCodec final : public TensorCodec {
 public:
  explicit KmeansCodec(KmeansRule rule) : rule_(rule) {}
  std::string spec() const override { return rule_.spec(); }
  bool is_passthrough() const override { return false; }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require_finite(values, spec());
    size_t k = static_cast<size_t>(rule_.k), per_book = kmeans_values_per_codebook(rule_, shape);
    int64_t books = kmeans_codebook_count(rule_, shape);
    Stream indices{"kmeans" + std::to_string(k), std::vector<uint8_t>(values.size()), 1};
    Stream centroids{"centroids.fp16", std::vector<uint8_t>(static_cast<size_t>(books) * k * 2), 2};
    for (int64_t b = 0; b < books; ++b) {
      size_t begin = static_cast<size_t>(b) * per_book;
      auto group = values.subspan(begin, std::min(per_book, values.size() - begin));
      Codebook cb = train_codebook(distinct_values(group), rule_);
      // Store fp16 centroids and assign against exactly those, so decoding gives what was measured.
      std::vector<uint16_t> half(k, 0);
      for (size_t j = 0; j < cb.centroid.size(); ++j) {
        half[j] = float_to_fp16(static_cast<float>(cb.centroid[j]));
        if ((half[j] & 0x7fffu) >= 0x7c00u)
          throw InputError(spec() + ": centroid " + std::to_string(cb.centroid[j]) +
                           " is beyond fp16's range; use fp32 or bf16 for this tensor");
        cb.centroid[j] = fp16_to_float(half[j]);
      }
      std::fill(half.begin() + static_cast<std::ptrdiff_t>(cb.centroid.size()), half.end(),
                cb.centroid.empty() ? uint16_t{0} : half[cb.centroid.size() - 1]);  // unused slots
      std::memcpy(centroids.bytes.data() + static_cast<size_t>(b) * k * 2, half.data(), k * 2);
      // std::lower_bound over the bounds padded to 256 with +inf, unrolled without branches.
      auto bound = assignment_bounds(cb);
      bound.resize(256, kInf);
      for (size_t i = 0; i < group.size(); ++i) {
        double x = group[i];
        size_t j = 0;
        for (size_t step = 128; step > 0; step /= 2) j += step * static_cast<size_t>(bound[j + step - 1] < x);
        indices.bytes[begin + i] = static_cast<uint8_t>(j);
      }
    }
    std::vector<Stream> out;
    out.push_back(std::move(indices));
    out.push_back(std::move(centroids));
    return out;
  }

 private:
  KmeansRule rule_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_kmeans_codec(const SpecStage& stage) { return std::make_unique<KmeansCodec>(kmeans_rule(stage)); }

}  // namespace pgolf
