// The k-means codebook codec: round trips, the exact DP against brute force and Lloyd, ECSQ's
// lower index entropy, corrupt streams, spec strings, and real base9 weights.
#include "quant/kmeans.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/distortion.h"
#include "quant/tensor_codec.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::Distribution;

std::vector<std::span<const uint8_t>> views_of(const std::vector<Stream>& streams) {
  std::vector<std::span<const uint8_t>> views;
  for (const auto& s : streams) views.emplace_back(s.bytes);
  return views;
}

std::vector<float> round_trip(const TensorCodec& codec, std::span<const float> values, const TensorShape& shape,
                              std::vector<Stream>* streams_out = nullptr) {
  auto streams = codec.encode(values, shape);
  auto out = codec.decode(views_of(streams), shape);
  if (streams_out) *streams_out = std::move(streams);
  return out;
}

double relative_mse(const char* spec, std::span<const float> values, const TensorShape& shape) {
  return Distortion::measure(values, round_trip(*make_tensor_codec(spec), values, shape)).relative_mse();
}

// Order-0 entropy of a byte stream, in bits per byte.
double entropy_bits(const std::vector<uint8_t>& bytes) {
  double count[256] = {};
  for (uint8_t b : bytes) count[b] += 1;
  double h = 0, n = static_cast<double>(bytes.size());
  for (double c : count)
    if (c > 0) h -= c / n * std::log2(c / n);
  return h;
}

std::vector<float> fp16_centroids(const Stream& centroids) {
  std::vector<float> out(centroids.bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, centroids.bytes.data() + 2 * i, 2);
    out[i] = fp16_to_float(h);
  }
  return out;
}

KmeansRule rule_with(KmeansMethod method, int k) {
  KmeansRule rule;
  rule.method = method;
  rule.k = k;
  return rule;
}

const char* kSpecs[] = {"kmeans:k=2",
                        "kmeans:k=16",
                        "kmeans:k=256",
                        "kmeans:k=16,init=kmeanspp,seed=7",
                        "kmeans:k=8,groups=rows:5",
                        "kmeans:k=16,method=exact",
                        "kmeans:k=4,groups=rows:1,method=exact",
                        "kmeans:k=32,method=ecsq,lambda=1e-05",
                        "kmeans:k=64,init=kmeanspp,method=ecsq,lambda=2.5e-06,iters=20"};

class EveryKmeansCodec : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryKmeansCodec, SpecIsCanonicalAndEncodingIsDeterministic) {
  auto codec = make_tensor_codec(GetParam());
  EXPECT_EQ(codec->spec(), GetParam());
  EXPECT_EQ(make_tensor_codec(codec->spec())->spec(), codec->spec());
  EXPECT_FALSE(codec->is_passthrough());
  TensorShape shape{{64, 96}};
  auto x = test::synthetic(Distribution::Laplacian, 64, 96, 1);
  std::vector<Stream> a, b;
  auto ya = round_trip(*codec, x, shape, &a);
  auto yb = round_trip(*make_tensor_codec(GetParam()), x, shape, &b);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].bytes, b[i].bytes);
  EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * 4));
}

TEST_P(EveryKmeansCodec, SurvivesEveryDistribution) {
  auto codec = make_tensor_codec(GetParam());
  bool one_value_per_codebook = std::string(GetParam()).find("groups=rows:1") != std::string::npos;
  for (auto d : {Distribution::Gaussian, Distribution::Laplacian, Distribution::HeavyTailed, Distribution::ConstantRows,
                 Distribution::ZeroRows}) {
    TensorShape shape{{48, 80}};
    auto x = test::synthetic(d, 48, 80, 2);
    auto y = round_trip(*codec, x, shape);
    ASSERT_EQ(y.size(), x.size());
    auto dist = Distortion::measure(x, y);
    EXPECT_TRUE(std::isfinite(dist.mse()));
    EXPECT_LT(dist.relative_mse(), 1.0) << "never worse than decoding zeros";
    if (d == Distribution::ConstantRows && one_value_per_codebook) {
      EXPECT_LT(dist.relative_mse(), 1e-6) << "a constant row is one centroid: only fp16 rounding";
    }
  }
  // all zeros, 1-D, scalar, empty
  for (auto dims : std::vector<std::vector<int64_t>>{{16, 16}, {37}, {}, {0, 5}, {5, 0}}) {
    TensorShape shape{dims};
    std::vector<float> zeros(static_cast<size_t>(shape.numel()), 0.f);
    auto y = round_trip(*codec, zeros, shape);
    ASSERT_EQ(y.size(), zeros.size());
    for (float v : y) EXPECT_EQ(v, 0.f);
  }
}

TEST_P(EveryKmeansCodec, DecodeIsTheFp16CentroidLookup) {
  auto codec = make_tensor_codec(GetParam());
  std::string spec = GetParam();
  size_t k = std::stoul(spec.substr(spec.find("k=") + 2));
  size_t rows = 24, cols = 40;
  auto x = test::synthetic(Distribution::HeavyTailed, 24, 40, 3);
  std::vector<Stream> streams;
  auto y = round_trip(*codec, x, TensorShape{{24, 40}}, &streams);
  EXPECT_EQ(streams[0].group, "kmeans" + std::to_string(k));
  EXPECT_EQ(streams[0].element_bytes, 1);
  EXPECT_EQ(streams[1].group, "centroids.fp16");
  EXPECT_EQ(streams[1].element_bytes, 2);
  auto table = fp16_centroids(streams[1]);
  ASSERT_EQ(table.size() % k, 0u);
  size_t books = table.size() / k, rows_per_book = (rows + books - 1) / books;
  for (size_t i = 0; i < y.size(); ++i) {
    float expected = table[i / (rows_per_book * cols) * k + streams[0].bytes[i]];
    ASSERT_EQ(std::memcmp(&y[i], &expected, 4), 0) << i;
  }
}

TEST_P(EveryKmeansCodec, CorruptStreamsAreErrors) {
  auto codec = make_tensor_codec(GetParam());
  TensorShape shape{{8, 16}};
  auto x = test::synthetic(Distribution::Gaussian, 8, 16, 3);
  auto streams = codec->encode(x, shape);
  auto views = views_of(streams);
  for (size_t s = 0; s < 2; ++s) {
    auto short_view = views;
    short_view[s] = short_view[s].first(short_view[s].size() - 1);
    EXPECT_THROW(codec->decode(short_view, shape), InputError) << "stream " << s;
  }
  auto fewer = views;
  fewer.pop_back();
  EXPECT_THROW(codec->decode(fewer, shape), InputError);
  EXPECT_THROW(codec->decode(views, TensorShape{{8, 17}}), InputError);
  // an infinite centroid
  auto bad_centroid = streams;
  uint16_t inf = 0x7c00;
  std::memcpy(bad_centroid[1].bytes.data(), &inf, 2);
  EXPECT_THROW(codec->decode(views_of(bad_centroid), shape), InputError);
}

INSTANTIATE_TEST_SUITE_P(Kmeans, EveryKmeansCodec, ::testing::ValuesIn(kSpecs));

TEST(Kmeans, IndexAtOrAboveKIsAnError) {
  auto codec = make_tensor_codec("kmeans:k=16");
  TensorShape shape{{4, 8}};
  auto streams = codec->encode(test::synthetic(Distribution::Gaussian, 4, 8, 4), shape);
  streams[0].bytes[17] = 15;
  EXPECT_NO_THROW(codec->decode(views_of(streams), shape));
  streams[0].bytes[17] = 16;
  EXPECT_THROW(codec->decode(views_of(streams), shape), InputError);
  streams[0].bytes[17] = 255;
  EXPECT_THROW(codec->decode(views_of(streams), shape), InputError);
}

TEST(Kmeans, SpecsParseToTheirCanonicalForm) {
  EXPECT_EQ(make_tensor_codec("kmeans:k=16,init=quantile,method=lloyd,iters=100")->spec(), "kmeans:k=16");
  EXPECT_EQ(make_tensor_codec("kmeans:seed=3,init=kmeanspp,k=8")->spec(), "kmeans:k=8,init=kmeanspp,seed=3");
  EXPECT_EQ(make_tensor_codec("kmeans:k=8,init=kmeanspp,seed=0")->spec(), "kmeans:k=8,init=kmeanspp");
  EXPECT_EQ(make_tensor_codec("kmeans:lambda=0.000175,method=ecsq,k=256")->spec(), "kmeans:k=256,method=ecsq,lambda=0.000175");
  EXPECT_EQ(make_tensor_codec("kmeans:k=4,method=ecsq,lambda=1e-7")->spec(), "kmeans:k=4,method=ecsq,lambda=1e-07");
}

TEST(Kmeans, UnknownOrBadParametersAreErrors) {
  for (const char* bad :
       {"kmeans", "kmeans:k=1", "kmeans:k=257", "kmeans:k=0", "kmeans:k=x", "kmeans:16", "kmeans:k=16,k=16",
        "kmeans:k=16,foo=1", "kmeans:k=16,init=kmeans++", "kmeans:k=16,init=random", "kmeans:k=16,groups=5",
        "kmeans:k=16,groups=rows:0", "kmeans:k=16,groups=cols:4", "kmeans:k=16,method=fast", "kmeans:k=16,method=ecsq",
        "kmeans:k=16,lambda=1e-6", "kmeans:k=16,method=ecsq,lambda=-1", "kmeans:k=16,method=exact,iters=5",
        "kmeans:k=16,method=exact,init=kmeanspp", "kmeans:k=16,iters=0", "kmeans:k=16,seed=3",
        "kmeans:k=16,init=kmeanspp,seed=-1", "kmeans:k=16+int6"})
    EXPECT_THROW(make_tensor_codec(bad), InputError) << bad;
}

TEST(Kmeans, RefusesNonFiniteValues) {
  auto codec = make_tensor_codec("kmeans:k=16");
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    auto x = test::synthetic(Distribution::Gaussian, 4, 8, 6);
    x[13] = bad;
    EXPECT_THROW(codec->encode(x, TensorShape{{4, 8}}), InputError);
  }
  std::vector<float> huge = {1e6f, 2e6f, -1e6f, 0.f};  // centroids beyond fp16's range
  EXPECT_THROW(codec->encode(huge, TensorShape{{4}}), InputError);
}

TEST(Kmeans, FewerDistinctValuesThanKAreExact) {
  // five fp16-exact values: every method gives each its own centroid
  const float kValues[] = {-0.5f, -0.125f, 0.f, 0.25f, 1.5f};
  std::vector<float> x;
  for (size_t i = 0; i < 200; ++i) x.push_back(kValues[i * 7 % 5]);
  for (const char* spec : {"kmeans:k=16", "kmeans:k=5", "kmeans:k=16,method=exact", "kmeans:k=16,init=kmeanspp"}) {
    auto y = round_trip(*make_tensor_codec(spec), x, TensorShape{{10, 20}});
    EXPECT_EQ(y, x) << spec;
  }
}

TEST(Kmeans, AssignsEachValueToTheNearestFp16Centroid) {
  // Two clusters, means 1000.175 and 1100; fp16 rounds the first to 1000, which moves the midpoint
  // from 1050.0875 to 1050 and past the value 1050.03: it must go to 1100.
  std::vector<float> straddle(1000, 1000.f);
  straddle.insert(straddle.end(), 1000, 1000.3f);
  straddle.push_back(1050.03f);
  straddle.insert(straddle.end(), 999, 1100.f);
  for (const auto& x : {test::synthetic(Distribution::HeavyTailed, 30, 100, 8), straddle})
    for (const char* spec : {"kmeans:k=2", "kmeans:k=2,method=exact", "kmeans:k=64,method=exact", "kmeans:k=7,init=kmeanspp"}) {
      std::vector<Stream> streams;
      auto y = round_trip(*make_tensor_codec(spec), x, TensorShape{{30, 100}}, &streams);
      auto table = fp16_centroids(streams[1]);
      for (size_t i = 0; i < x.size(); ++i) {
        double chosen = std::fabs(static_cast<double>(x[i]) - y[i]);
        for (float c : table) ASSERT_LE(chosen, std::fabs(static_cast<double>(x[i]) - c)) << spec << " element " << i;
      }
    }
}

TEST(Kmeans, QuantileInitUsesEveryCentroidOnPrunedWeights) {
  // 90% zeros: most quantiles fall on 0, and the init must still start K distinct centroids
  auto x = test::synthetic(Distribution::Laplacian, 64, 128, 14);
  for (size_t i = 0; i < x.size(); ++i)
    if (i % 10) x[i] = 0.f;
  std::vector<Stream> streams;
  auto y = round_trip(*make_tensor_codec("kmeans:k=16"), x, TensorShape{{64, 128}}, &streams);
  std::vector<bool> used(16);
  for (uint8_t i : streams[0].bytes) used[i] = true;
  EXPECT_EQ(std::count(used.begin(), used.end(), true), 16);
  EXPECT_LT(Distortion::measure(x, y).relative_mse(), 0.1);
}

// Every labelling of 12 points with 3 labels (3^12 of them): the DP must find the best.
TEST(Kmeans, ExactEqualsBruteForceOnTinyInputs) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> x(12);
    for (float& v : x) v = seed == 4 ? std::round(normal(rng) * 2) : normal(rng);  // seed 4: repeated values
    double best = std::numeric_limits<double>::infinity();
    for (int code = 0; code < 531441; ++code) {  // 3^12
      double w[3] = {}, s[3] = {}, q[3] = {};
      int c = code;
      for (double v : x) {
        w[c % 3] += 1, s[c % 3] += v, q[c % 3] += v * v;
        c /= 3;
      }
      double sse = 0;
      for (int j = 0; j < 3; ++j)
        if (w[j] > 0) sse += q[j] - s[j] * s[j] / w[j];
      best = std::min(best, sse);
    }
    auto points = distinct_values(x);
    double exact = squared_error(points, train_codebook(points, rule_with(KmeansMethod::Exact, 3)));
    EXPECT_NEAR(exact, best, 1e-9 * (1 + best)) << "seed " << seed;
    double lloyd = squared_error(points, train_codebook(points, rule_with(KmeansMethod::Lloyd, 3)));
    EXPECT_GE(lloyd, best - 1e-9 * (1 + best));
  }
}

TEST(Kmeans, ExactIsNeverWorseThanLloyd) {
  bool exact_ever_better = false;
  for (auto d : {Distribution::Gaussian, Distribution::Laplacian, Distribution::HeavyTailed, Distribution::ZeroRows}) {
    auto x = test::synthetic(d, 16, 256, 9);
    for (float& v : x) v = bf16_to_float(float_to_bf16(v));  // few distinct values, as in bf16 checkpoints
    auto points = distinct_values(x);
    for (int k : {3, 16, 64}) {
      double exact = squared_error(points, train_codebook(points, rule_with(KmeansMethod::Exact, k)));
      double lloyd = squared_error(points, train_codebook(points, rule_with(KmeansMethod::Lloyd, k)));
      EXPECT_LE(exact, lloyd * (1 + 1e-12)) << "k " << k;
      exact_ever_better |= exact < lloyd * (1 - 1e-6);
    }
  }
  EXPECT_TRUE(exact_ever_better) << "Lloyd from quantiles is not optimal on these";
}

TEST(Kmeans, ExactRefusesTablesBeyondItsLimit) {
  std::vector<float> x(600000);  // 600,000 distinct values x K=256 > 2^27 split points
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 1e-6f;
  try {
    make_tensor_codec("kmeans:k=256,method=exact")->encode(x, TensorShape{{static_cast<int64_t>(x.size())}});
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("method=lloyd"), std::string::npos) << e.what();
  }
}

TEST(Kmeans, LloydErrorFallsWithK) {
  auto x = test::synthetic(Distribution::Laplacian, 64, 256, 10);
  TensorShape shape{{64, 256}};
  double previous = std::numeric_limits<double>::infinity();
  for (int k : {2, 4, 8, 16, 32, 64, 128, 256}) {
    double e = relative_mse(("kmeans:k=" + std::to_string(k)).c_str(), x, shape);
    EXPECT_LT(e, previous * 0.8) << "k " << k;  // Lloyd from quantiles gains less at large K: local minima
    previous = e;
  }
}

TEST(Kmeans, EcsqLowersIndexEntropy) {
  auto x = test::synthetic(Distribution::Gaussian, 64, 512, 11);
  TensorShape shape{{64, 512}};
  std::vector<Stream> lloyd, ecsq;
  auto y_lloyd = round_trip(*make_tensor_codec("kmeans:k=64,init=kmeanspp"), x, shape, &lloyd);
  auto y_ecsq = round_trip(*make_tensor_codec("kmeans:k=64,init=kmeanspp,method=ecsq,lambda=1e-5"), x, shape, &ecsq);
  double h_lloyd = entropy_bits(lloyd[0].bytes), h_ecsq = entropy_bits(ecsq[0].bytes);
  EXPECT_GT(h_lloyd, 5.5) << "Lloyd spreads the values over its 64 centroids";
  EXPECT_LT(h_ecsq, h_lloyd - 1.0);
  // what ECSQ pays in error for the bits it saves: at most what the same bits buy (6 dB per bit)
  double d_lloyd = Distortion::measure(x, y_lloyd).mse(), d_ecsq = Distortion::measure(x, y_ecsq).mse();
  EXPECT_GT(d_ecsq, d_lloyd);
  EXPECT_LT(d_ecsq, d_lloyd * std::pow(4.0, h_lloyd - h_ecsq));
}

TEST(Kmeans, GroupsGiveEachRowGroupItsOwnCodebook) {
  // 32 constant rows: K=4 cannot tell 32 values apart, but four rows per codebook are four values
  auto x = test::synthetic(Distribution::ConstantRows, 32, 64, 12);
  TensorShape shape{{32, 64}};
  EXPECT_GT(relative_mse("kmeans:k=4", x, shape), 1e-3);
  EXPECT_LT(relative_mse("kmeans:k=4,groups=rows:4", x, shape), 1e-6) << "only fp16 rounding";
  EXPECT_LT(relative_mse("kmeans:k=4,groups=rows:3", x, shape), 1e-6) << "the last group is two rows";
  EXPECT_GT(relative_mse("kmeans:k=4,groups=rows:5", x, shape), 1e-6) << "five values, four centroids";
}

TEST(Kmeans, KmeansPlusPlusDependsOnlyOnItsSeed) {
  auto x = test::synthetic(Distribution::Laplacian, 16, 64, 13);
  TensorShape shape{{16, 64}};
  auto a = make_tensor_codec("kmeans:k=8,init=kmeanspp,seed=5")->encode(x, shape);
  auto b = make_tensor_codec("kmeans:k=8,init=kmeanspp,seed=5")->encode(x, shape);
  auto c = make_tensor_codec("kmeans:k=8,init=kmeanspp,seed=6")->encode(x, shape);
  EXPECT_EQ(a[1].bytes, b[1].bytes);
  EXPECT_NE(a[1].bytes, c[1].bytes);
}

// Real trained weights: Lloyd from quantiles lands near the reference pipeline (4.40e-4 at K=256,
// 2.30e-3 at K=64 over all quantized matrices), and the exact DP is far better.
TEST(Kmeans, RealBase9Weights) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  Distortion lloyd256, lloyd64, exact256, exact64;
  for (const char* name : {"blocks.0.attn.c_k.weight", "blocks.4.mlp.fc.weight", "tok_emb.weight"}) {
    const auto& t = ckpt.at(name);
    auto x = t.to_floats();
    TensorShape shape{t.shape};
    lloyd256.add(Distortion::measure(x, round_trip(*make_tensor_codec("kmeans:k=256"), x, shape)));
    lloyd64.add(Distortion::measure(x, round_trip(*make_tensor_codec("kmeans:k=64"), x, shape)));
    exact256.add(Distortion::measure(x, round_trip(*make_tensor_codec("kmeans:k=256,method=exact"), x, shape)));
    exact64.add(Distortion::measure(x, round_trip(*make_tensor_codec("kmeans:k=64,method=exact"), x, shape)));
  }
  EXPECT_GT(lloyd256.relative_mse(), 1e-4);
  EXPECT_LT(lloyd256.relative_mse(), 6e-4);
  EXPECT_GT(lloyd64.relative_mse(), 5e-4);
  EXPECT_LT(lloyd64.relative_mse(), 3e-3);
  EXPECT_LT(exact256.relative_mse(), lloyd256.relative_mse() / 3);
  EXPECT_LT(exact64.relative_mse(), lloyd64.relative_mse() / 1.5);
  EXPECT_GT(exact64.relative_mse(), exact256.relative_mse() * 8) << "two bits fewer: about 16x the error";
}

}  // namespace
}  // namespace pgolf
