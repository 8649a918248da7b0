// Composite tensor codecs: prune (wrapper), lowrank (wrapper), lrcorr (corrector), alone and
// stacked, on synthetic distributions and real base9 weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "quant/distortion.h"
#include "quant/svd.h"
#include "quant/tensor_decoder_registry.h"
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
  auto out = decode_streams(codec, streams, shape);
  if (streams_out) *streams_out = std::move(streams);
  return out;
}

double relative_mse(std::string_view spec, std::span<const float> x, const TensorShape& shape) {
  return Distortion::measure(x, round_trip(*make_tensor_codec(spec), x, shape)).relative_mse();
}

uint32_t lowrank_rank(const std::vector<Stream>& streams) {
  uint32_t r;
  std::memcpy(&r, streams[0].bytes.data(), 4);  // little-endian hosts only, which is all we build on
  return r;
}

const char* kCompositeSpecs[] = {
    "prune:0.03+int6",           "prune:0.1,scope=row+int5",       "prune:threshold=0.01+int6",
    "prune:0.05+kmeans:k=16",    "prune:0.05+lowrank:rank=8+fp16", "lowrank:rank=8+fp16",
    "lowrank:energy=0.9+int8",   "int6+lrcorr:rank=4",             "int6+lrcorr:rank=4,factors=int4",
    "int6+lrcorr:rank=0",        "prune:0.03+int6+lrcorr:rank=4",  "lowrank:rank=16+int8+lrcorr:rank=2",
    "prune:0.02+prune:0.01+fp32"};

class EveryComposite : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryComposite, SpecIsCanonicalAndBytesAreDeterministic) {
  auto codec = make_tensor_codec(GetParam());
  EXPECT_EQ(codec->spec(), GetParam());
  EXPECT_FALSE(codec->is_passthrough());
  TensorShape shape{{64, 96}};
  auto x = test::synthetic(Distribution::Gaussian, 64, 96, 1);
  std::vector<Stream> a, b;
  auto ya = round_trip(*codec, x, shape, &a);
  auto yb = round_trip(*make_tensor_codec(codec->spec()), x, shape, &b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].bytes, b[i].bytes) << "stream " << i;
  EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * 4));
}

TEST_P(EveryComposite, SurvivesEveryDistributionAndShape) {
  auto codec = make_tensor_codec(GetParam());
  for (auto d : {Distribution::Gaussian, Distribution::Laplacian, Distribution::HeavyTailed, Distribution::ConstantRows,
                 Distribution::ZeroRows}) {
    auto x = test::synthetic(d, 48, 80, 2);
    auto y = round_trip(*codec, x, TensorShape{{48, 80}});
    ASSERT_EQ(y.size(), x.size());
    auto dist = Distortion::measure(x, y);
    EXPECT_TRUE(std::isfinite(dist.mse()));
    EXPECT_LT(dist.relative_mse(), 1.0) << static_cast<int>(d);  // better than decoding zeros
  }
  // all zeros decode to exact zeros: 2-D, 1-D, scalar, empty
  for (auto dims : std::vector<std::vector<int64_t>>{{16, 16}, {37}, {}, {0, 5}}) {
    TensorShape shape{dims};
    std::vector<float> zeros(static_cast<size_t>(shape.numel()), 0.f);
    auto y = round_trip(*codec, zeros, shape);
    ASSERT_EQ(y.size(), zeros.size());
    for (float v : y) EXPECT_EQ(v, 0.f);
  }
  // small and 1-D non-zero tensors: ranks clamp to min(rows, cols)
  for (auto dims : std::vector<std::vector<int64_t>>{{37}, {}, {3, 2}, {2, 1, 5}}) {
    TensorShape shape{dims};
    auto x = test::synthetic(Distribution::Laplacian, 1, shape.numel(), 7);
    auto y = round_trip(*codec, x, shape);
    ASSERT_EQ(y.size(), x.size());
    EXPECT_TRUE(std::isfinite(Distortion::measure(x, y).mse()));
  }
}

TEST_P(EveryComposite, RefusesNonFiniteValues) {
  auto codec = make_tensor_codec(GetParam());
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto x = test::synthetic(Distribution::Gaussian, 4, 8, 6);
    x[13] = bad;
    EXPECT_THROW(codec->encode(x, TensorShape{{4, 8}}), InputError);
  }
}

TEST_P(EveryComposite, CorruptStreamsAreErrors) {
  auto codec = make_tensor_codec(GetParam());
  TensorShape shape{{8, 16}};
  auto x = test::synthetic(Distribution::Gaussian, 8, 16, 3);
  auto streams = codec->encode(x, shape);
  auto views = views_of(streams);
  for (size_t i = 0; i < views.size(); ++i) {
    if (views[i].empty()) continue;
    auto shorter = views;
    shorter[i] = shorter[i].first(shorter[i].size() - 1);
    EXPECT_THROW(codec->decode(shorter, shape), InputError) << "stream " << i;
  }
  auto fewer = views;
  fewer.pop_back();
  EXPECT_THROW(codec->decode(fewer, shape), InputError);
  auto more = views;
  more.push_back(views.back());
  EXPECT_THROW(codec->decode(more, shape), InputError);
  EXPECT_THROW(codec->decode({}, shape), InputError);
  EXPECT_THROW(codec->decode(views, TensorShape{{8, 17}}), InputError);
}

INSTANTIATE_TEST_SUITE_P(All, EveryComposite, ::testing::ValuesIn(kCompositeSpecs));

// Singular values past the float maximum make U·S infinite (fuzz/corpus/tensor_codec_roundtrip/
// lowrank-infinite-factors): refused, never stored as factors that decode to NaN.
TEST(CompositeSpec, LowRankNeverDecodesToNaN) {
  const std::vector<float> x(6, 3.39e38f);
  const TensorShape shape{{2, 3}};
  for (const char* spec : {"lowrank:rank=1+fp16", "lowrank:rank=1+int8", "lowrank:rank=2+fp32"}) {
    auto codec = make_tensor_codec(spec);
    try {
      for (float v : decode_streams(*codec, codec->encode(x, shape), shape)) EXPECT_TRUE(std::isfinite(v)) << spec;
    } catch (const InputError&) {
    }
  }
}

TEST(CompositeSpec, DefaultsAreLeftOut) {
  EXPECT_EQ(make_tensor_codec("prune:0.03,scope=tensor+int6")->spec(), "prune:0.03+int6");
  EXPECT_EQ(make_tensor_codec("int6+lrcorr:rank=4,factors=int8")->spec(), "int6+lrcorr:rank=4");
  EXPECT_EQ(make_tensor_codec("prune:threshold=1e-3+int6")->spec(), "prune:threshold=0.001+int6");
}

TEST(CompositeSpec, BadSpecsAreInputErrors) {
  for (const char* bad :
       {"prune", "prune:0.03", "prune+int6", "prune:1.5+int6", "prune:-0.1+int6", "prune:x+int6", "prune:0.1,0.2+int6",
        "prune:0.1,threshold=0.1+int6", "prune:threshold=0.1,scope=row+int6", "prune:0.1,scope=col+int6",
        "prune:0.1,scope=row,scope=row+int6", "prune:threshold=-1+int6", "prune:0.1,x=1+int6", "prune:0.1+lrcorr:rank=4",
        "lowrank:rank=8", "lowrank:rank=0+fp16", "lowrank:rank=x+fp16", "lowrank:energy=0+fp16",
        "lowrank:energy=1.5+fp16", "lowrank:rank=8,energy=0.9+fp16", "lowrank:8+fp16", "lowrank+fp16",
        "lowrank:rank=8+int9", "lrcorr:rank=4", "lrcorr:rank=4+int6", "int6+lrcorr", "int6+lrcorr:rank=-1",
        "int6+lrcorr:4", "int6+lrcorr:rank=4,rank=5", "int6+lrcorr:rank=4,factors=int9",
        "int6+lrcorr:rank=4,factors=prune:0.1", "int6+lrcorr:rank=4,factors=lrcorr:rank=2", "int6+lrcorr:rank=4,x=1"})
    EXPECT_THROW(make_tensor_codec(bad), InputError) << bad;
}

// Pruning ---------------------------------------------------------------------------------------

TEST(Prune, ZeroesExactlyTheRequestedCountOfSmallestMagnitudes) {
  int64_t rows = 64, cols = 96;
  auto x = test::synthetic(Distribution::Gaussian, rows, cols, 11);
  auto y = round_trip(*make_tensor_codec("prune:0.03+fp32"), x, TensorShape{{rows, cols}});
  float largest_pruned = 0, smallest_kept = std::numeric_limits<float>::infinity();
  int64_t zeros = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (y[i] == 0.f) {
      ++zeros;
      largest_pruned = std::max(largest_pruned, std::fabs(x[i]));
    } else {
      EXPECT_EQ(y[i], x[i]);
      smallest_kept = std::min(smallest_kept, std::fabs(x[i]));
    }
  }
  EXPECT_EQ(zeros, std::llround(0.03 * rows * cols));
  EXPECT_LE(largest_pruned, smallest_kept);
}

TEST(Prune, PerRowScopePrunesEachRow) {
  int64_t rows = 16, cols = 96;
  auto x = test::synthetic(Distribution::HeavyTailed, rows, cols, 12);
  auto y = round_trip(*make_tensor_codec("prune:0.1,scope=row+fp32"), x, TensorShape{{rows, cols}});
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(std::count(y.begin() + r * cols, y.begin() + (r + 1) * cols, 0.f), std::llround(0.1 * cols)) << r;
}

TEST(Prune, ThresholdZeroesSmallMagnitudesOnly) {
  auto x = test::synthetic(Distribution::Laplacian, 32, 64, 13);
  auto y = round_trip(*make_tensor_codec("prune:threshold=0.01+fp32"), x, TensorShape{{32, 64}});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], std::fabs(x[i]) < 0.01f ? 0.f : x[i]);
}

TEST(Prune, TiesGoInPositionOrder) {
  std::vector<float> x(100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 2 ? 0.5f : -0.5f;
  auto y = round_trip(*make_tensor_codec("prune:0.25+fp32"), x, TensorShape{{100}});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], i < 25 ? 0.f : x[i]);
  auto all = round_trip(*make_tensor_codec("prune:1+fp32"), x, TensorShape{{100}});
  EXPECT_EQ(std::count(all.begin(), all.end(), 0.f), 100);
}

// Int-N keeps zeros by itself: no mask. K-means and low-rank do not: a mask forces them.
TEST(Prune, PrunedPositionsDecodeToZero) {
  int64_t rows = 48, cols = 128;
  TensorShape shape{{rows, cols}};
  auto x = test::synthetic(Distribution::Laplacian, rows, cols, 14);
  auto pruned = round_trip(*make_tensor_codec("prune:0.05+fp32"), x, shape);
  for (const auto& [inner, has_mask] : std::vector<std::pair<std::string, bool>>{
           {"int6", false}, {"int3", false}, {"fp16", false}, {"kmeans:k=16", true}, {"kmeans:k=256,method=exact", true},
           {"kmeans:k=64,groups=rows:1", true}, {"lowrank:rank=8+fp16", true}, {"lowrank:rank=48+fp32", true}}) {
    std::vector<Stream> streams;
    auto y = round_trip(*make_tensor_codec("prune:0.05+" + inner), x, shape, &streams);
    EXPECT_EQ(streams.back().group == "mask", has_mask) << inner;
    EXPECT_EQ(streams.size(), make_tensor_codec(inner)->encode(x, shape).size() + has_mask) << inner;
    for (size_t i = 0; i < x.size(); ++i) {
      if (pruned[i] == 0.f) {
        ASSERT_EQ(y[i], 0.f) << inner << " element " << i;
      }
    }
  }
}

TEST(Prune, PruneZeroIsTheInnerCodecBitForBit) {
  auto x = test::synthetic(Distribution::Gaussian, 32, 64, 15);
  TensorShape shape{{32, 64}};
  std::vector<Stream> pruned, plain;
  auto a = round_trip(*make_tensor_codec("prune:0+int6"), x, shape, &pruned);
  auto b = round_trip(*make_tensor_codec("int6"), x, shape, &plain);
  ASSERT_EQ(pruned.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(pruned[i].group, plain[i].group);
    EXPECT_EQ(pruned[i].bytes, plain[i].bytes);
  }
  EXPECT_EQ(a, b);
}

TEST(Prune, MalformedMasksAreErrors) {
  auto codec = make_tensor_codec("prune:0.1+kmeans:k=8");
  TensorShape shape{{3, 5}};  // 15 elements: one spare bit in the mask's last byte
  auto x = test::synthetic(Distribution::Gaussian, 3, 5, 16);
  auto streams = codec->encode(x, shape);
  ASSERT_EQ(streams.back().group, "mask");
  streams.back().bytes.back() |= 0x80;
  EXPECT_THROW(codec->decode(views_of(streams), shape), InputError);
}

// Low rank --------------------------------------------------------------------------------------

TEST(LowRank, ErrorFallsWithRankAndFullRankIsNearExact) {
  int64_t rows = 64, cols = 96;
  TensorShape shape{{rows, cols}};
  auto x = test::synthetic(Distribution::Gaussian, rows, cols, 21);
  for (const char* inner : {"fp32", "int8"}) {
    double previous = 1.0;
    for (int rank : {4, 8, 16, 32, 48}) {
      double err = relative_mse("lowrank:rank=" + std::to_string(rank) + "+" + inner, x, shape);
      EXPECT_LT(err, previous) << inner << " rank " << rank;
      previous = err;
    }
  }
  EXPECT_LT(relative_mse("lowrank:rank=64+fp32", x, shape), 1e-10);
  EXPECT_LT(relative_mse("lowrank:rank=1000+fp32", x, shape), 1e-10) << "the rank clamps to min(rows, cols)";
  std::vector<Stream> streams;
  round_trip(*make_tensor_codec("lowrank:rank=1000+fp32"), x, shape, &streams);
  EXPECT_EQ(lowrank_rank(streams), 64u);
  EXPECT_EQ(streams[0].group, "lowrank.meta");
}

// A matrix of known rank is recovered from that many components.
TEST(LowRank, RecoversALowRankMatrix) {
  int64_t rows = 40, cols = 30, rank = 3;
  auto a = test::synthetic(Distribution::Gaussian, rows, rank, 22, 1.f);
  auto b = test::synthetic(Distribution::Gaussian, rank, cols, 23, 1.f);
  std::vector<float> w(static_cast<size_t>(rows * cols), 0.f);
  add_product(a, b, rows, rank, cols, w);
  EXPECT_LT(relative_mse("lowrank:rank=3+fp32", w, TensorShape{{rows, cols}}), 1e-10);
  EXPECT_GT(relative_mse("lowrank:rank=2+fp32", w, TensorShape{{rows, cols}}), 1e-3);
  std::vector<Stream> streams;
  round_trip(*make_tensor_codec("lowrank:energy=0.999999+fp32"), w, TensorShape{{rows, cols}}, &streams);
  EXPECT_EQ(lowrank_rank(streams), 3u);
}

TEST(LowRank, EnergyPicksTheSmallestRankThatMeetsIt) {
  int64_t rows = 48, cols = 64;
  TensorShape shape{{rows, cols}};
  auto x = test::synthetic(Distribution::HeavyTailed, rows, cols, 24);
  auto s = thin_svd(x, rows, cols, false).singular_values;
  for (double energy : {0.3, 0.5, 0.9, 0.99, 1.0}) {
    char spec[64];
    std::snprintf(spec, sizeof spec, "lowrank:energy=%g+fp32", energy);
    std::vector<Stream> streams;
    auto y = round_trip(*make_tensor_codec(spec), x, shape, &streams);
    int64_t rank = lowrank_rank(streams);
    EXPECT_GE(energy_share(s, rank), energy) << spec;
    EXPECT_LT(energy_share(s, rank - 1), energy) << spec;
    EXPECT_LE(Distortion::measure(x, y).relative_mse(), 1 - energy + 1e-6) << spec;
  }
}

TEST(LowRank, MalformedRanksAreErrors) {
  auto codec = make_tensor_codec("lowrank:rank=4+int8");
  TensorShape shape{{8, 16}};
  auto x = test::synthetic(Distribution::Gaussian, 8, 16, 25);
  auto streams = codec->encode(x, shape);
  for (uint32_t bad : {5u, 0xffffffffu, 3u}) {  // beyond rank=4; absurd; below the factors' real shape
    auto corrupt = streams;
    std::memcpy(corrupt[0].bytes.data(), &bad, 4);
    EXPECT_THROW(codec->decode(views_of(corrupt), shape), InputError) << bad;
  }
}

// PR #212 found 20.6/29.0/41.9/60.6/83.3% of its embedding's variance in ranks 16/32/64/128/256.
TEST(LowRank, Base9EmbeddingExplainedVariance) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  const auto& t = ckpt.at("tok_emb.weight");
  auto x = t.to_floats();
  int64_t rows = t.shape[0], cols = t.shape[1];
  auto s = thin_svd(x, rows, cols, false).singular_values;
  double k = static_cast<double>(s.size()), previous = 0;
  for (int64_t rank : {16, 32, 64, 128, 256}) {
    double share = energy_share(s, rank);
    std::printf("tok_emb [%lld, %lld]: rank %3lld explains %.1f%% of the variance\n", static_cast<long long>(rows),
                static_cast<long long>(cols), static_cast<long long>(rank), 100 * share);
    EXPECT_GT(share, previous);
    EXPECT_LT(share, 1.0);
    EXPECT_GE(share, static_cast<double>(rank) / k) << "the leading components hold at least their share";
    previous = share;
  }
}

// Low-rank correction ---------------------------------------------------------------------------

TEST(LowRankCorrection, RankZeroIsTheBaseCodec) {
  auto x = test::synthetic(Distribution::Laplacian, 32, 64, 31);
  TensorShape shape{{32, 64}};
  std::vector<Stream> corrected, plain;
  auto a = round_trip(*make_tensor_codec("int6+lrcorr:rank=0"), x, shape, &corrected);
  auto b = round_trip(*make_tensor_codec("int6"), x, shape, &plain);
  EXPECT_EQ(a, b);
  ASSERT_GE(corrected.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(corrected[i].bytes, plain[i].bytes);
}

// Correcting a rank-8 approximation with 8 more components is about the rank-16 approximation.
TEST(LowRankCorrection, CorrectsALowRankBase) {
  auto x = test::synthetic(Distribution::Gaussian, 64, 96, 32);
  TensorShape shape{{64, 96}};
  double base = relative_mse("lowrank:rank=8+fp32", x, shape);
  double corrected = relative_mse("lowrank:rank=8+fp32+lrcorr:rank=8,factors=fp32", x, shape);
  double rank16 = relative_mse("lowrank:rank=16+fp32", x, shape);
  EXPECT_LT(corrected, base);
  EXPECT_NEAR(corrected, rank16, 1e-6);
  EXPECT_LT(relative_mse("lowrank:rank=8+fp32+lrcorr:rank=8", x, shape), base) << "int8 factors";
}

TEST(LowRankCorrection, LowersInt6ErrorOnBase9) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  for (const char* name : {"blocks.0.attn.c_k.weight", "blocks.4.mlp.fc.weight", "blocks.8.mlp.proj.weight"}) {
    const auto& t = ckpt.at(name);
    auto x = t.to_floats();
    TensorShape shape{t.shape};
    double int6 = relative_mse("int6", x, shape);
    double corrected = relative_mse("int6+lrcorr:rank=4", x, shape);
    std::printf("%s: int6 relative MSE %.4g, int6+lrcorr:rank=4 %.4g\n", name, int6, corrected);
    EXPECT_LT(corrected, int6) << name;
  }
}

TEST(Composite, RealBase9WeightsRoundTrip) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  const auto& t = ckpt.at("blocks.3.attn.c_q.weight");
  auto x = t.to_floats();
  TensorShape shape{t.shape};
  double int6 = relative_mse("int6", x, shape);
  EXPECT_LT(relative_mse("prune:0.01+int6", x, shape), 1.5 * int6) << "1% of the smallest weights costs little";
  EXPECT_GT(relative_mse("prune:0.1+int6", x, shape), int6);
  EXPECT_LT(relative_mse("lowrank:rank=256+int8", x, shape), 0.5);
}

}  // namespace
}  // namespace pgolf
