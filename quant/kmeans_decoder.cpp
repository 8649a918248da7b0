// The k-means decoder: a table lookup of each uint8 index in its codebook's fp16 centroids.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

std::string KmeansRule::spec() const {
  std::string s = "kmeans:k=" + std::to_string(k);
  if (init == KmeansInit::KmeansPlusPlus) s += ",init=kmeanspp";
  if (group_rows > 0) s += ",groups=rows:" + std::to_string(group_rows);
  if (method == KmeansMethod::Exact) s += ",method=exact";
  if (method == KmeansMethod::Ecsq) s += ",method=ecsq,lambda=" + number_text(lambda);
  if (iters != kDefaultIters) s += ",iters=" + std::to_string(iters);
  if (seed != 0) s += ",seed=" + std::to_string(seed);
  return s;
}

int64_t kmeans_codebook_count(const KmeansRule& rule, const TensorShape& shape) {
  return rule.group_rows > 0 ? (shape.rows() + rule.group_rows - 1) / rule.group_rows : 1;
}

size_t kmeans_values_per_codebook(const KmeansRule& rule, const TensorShape& shape) {
  int64_t rows = rule.group_rows > 0 ? rule.group_rows : shape.rows();
  return static_cast<size_t>(rows * shape.cols());
}

namespace {

class KmeansDecoder final : public TensorDecoder {
 public:
  explicit KmeansDecoder(KmeansRule rule) : rule_(rule) {}
  size_t stream_count() const override { return 2; }
  bool keeps_zeros() const override { return false; }  // a codebook need not hold 0

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    const std::string spec = rule_.spec();
    size_t n = static_cast<size_t>(shape.numel()), k = static_cast<size_t>(rule_.k);
    size_t books = static_cast<size_t>(kmeans_codebook_count(rule_, shape)), per_book = kmeans_values_per_codebook(rule_, shape);
    require(streams.size() == 2 && streams[0].size() == n && streams[1].size() == books * k * 2,
            spec + ": stream sizes do not match the tensor's shape");
    uint8_t max_index = n == 0 ? 0 : *std::max_element(streams[0].begin(), streams[0].end());
    if (max_index >= k) throw InputError(spec + ": index " + std::to_string(max_index) + " is not below K");
    std::vector<float> table(books * k);
    for (size_t i = 0; i < table.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, streams[1].data() + 2 * i, 2);
      table[i] = fp16_to_float(h);
      if (!std::isfinite(table[i])) throw InputError(spec + ": non-finite centroid in codebook " + std::to_string(i / k));
    }
    std::vector<float> out(n);
    for (size_t b = 0; b < books; ++b) {
      size_t begin = b * per_book, end = std::min(begin + per_book, n);
      for (size_t i = begin; i < end; ++i) out[i] = table[b * k + streams[0][i]];
    }
    return out;
  }

 private:
  KmeansRule rule_;
};

}  // namespace

KmeansRule kmeans_rule(const SpecStage& stage) {
  KmeansRule rule;
  std::set<std::string> given;
  for (const auto& [key, value] : stage.params) {
    require(!key.empty() && given.insert(key).second,
            "kmeans: parameter '" + (key.empty() ? value : key) + "' is not KEY=VALUE or is given twice");
    if (key == "k") {
      long k = parse_integer(value, "kmeans k");
      require(k >= 2 && k <= 256, "kmeans takes k from 2 to 256 (got " + value + ")");
      rule.k = static_cast<int>(k);
    } else if (key == "init") {
      require(value == "quantile" || value == "kmeanspp", "kmeans: unknown init '" + value + "' (accepted: quantile, kmeanspp)");
      rule.init = value == "quantile" ? KmeansInit::Quantile : KmeansInit::KmeansPlusPlus;
    } else if (key == "groups") {
      require(value.starts_with("rows:"), "kmeans: groups takes rows:R (got '" + value + "')");
      rule.group_rows = parse_integer(std::string_view(value).substr(5), "kmeans groups rows");
      require(rule.group_rows >= 1, "kmeans: groups=rows:R needs R >= 1");
    } else if (key == "method") {
      require(value == "lloyd" || value == "exact" || value == "ecsq",
              "kmeans: unknown method '" + value + "' (accepted: lloyd, exact, ecsq)");
      rule.method = value == "lloyd" ? KmeansMethod::Lloyd : value == "exact" ? KmeansMethod::Exact : KmeansMethod::Ecsq;
    } else if (key == "lambda") {
      rule.lambda = parse_number(value, "kmeans lambda");
      require(rule.lambda >= 0, "kmeans: lambda must be >= 0");
    } else if (key == "iters") {
      long iters = parse_integer(value, "kmeans iters");
      require(iters >= 1 && iters <= 1000000, "kmeans: iters must be in 1..1000000");
      rule.iters = static_cast<int>(iters);
    } else if (key == "seed") {
      long seed = parse_integer(value, "kmeans seed");
      require(seed >= 0, "kmeans: seed must be >= 0");
      rule.seed = static_cast<uint64_t>(seed);
    } else {
      throw InputError("kmeans: unknown parameter '" + key +
                       "' (accepted: k, init, groups, method, lambda, iters, seed)");
    }
  }
  // A parameter the method would ignore is refused, so that every codec has one spelling.
  require(given.contains("k"), "kmeans needs k=K (2..256)");
  require(given.contains("lambda") == (rule.method == KmeansMethod::Ecsq),
          "kmeans: lambda=L goes with method=ecsq, and only with it");
  bool exact = rule.method == KmeansMethod::Exact;
  require(!exact || (!given.contains("init") && !given.contains("iters")), "kmeans: method=exact takes no init or iters");
  require(!given.contains("seed") || rule.init == KmeansInit::KmeansPlusPlus, "kmeans: seed goes with init=kmeanspp");
  return rule;
}


std::unique_ptr<TensorDecoder> make_kmeans_decoder(const SpecStage& stage) { return std::make_unique<KmeansDecoder>(kmeans_rule(stage)); }

}  // namespace pgolf
