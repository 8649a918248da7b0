// ECSQ: each target is met (relative MSE, entropy, step), the error bound of rounding holds
// (|x - y| <= step/2), wide symbols round-trip, the shared step meets a total target, and bad
// params or streams are InputErrors.
#include "quant/ecsq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "checkpoint/safetensors.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"
#include "quant/distortion.h"
#include "quant/scalar_grid.h"
#include "quant/tensor_codec.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::Distribution;

std::vector<float> steps_of(const Stream& s) {
  std::vector<float> steps(s.bytes.size() / 4);
  std::memcpy(steps.data(), s.bytes.data(), s.bytes.size());
  return steps;
}

double symbol_entropy_bits(const Stream& s) {
  SymbolHistogram h(s.element_bytes);
  h.add(s.bytes);
  return h.entropy_bits_per_symbol();
}

// Decodes and checks the rounding bound against the stored steps.
std::vector<float> round_trip_within_half_step(const TensorCodec& codec, const std::vector<float>& x, const TensorShape& shape,
                                               std::vector<Stream>& streams) {
  streams = codec.encode(x, shape);
  auto y = decode_streams(codec, streams, shape);
  EXPECT_EQ(y.size(), x.size());
  auto steps = steps_of(streams[1]);
  size_t per_step = x.size() / steps.size();
  for (size_t i = 0; i < x.size(); ++i) {
    float step = steps[i / per_step];
    if (std::fabs(x[i] - y[i]) > 0.5f * step * (1 + 1e-5f) + 1e-30f) {
      ADD_FAILURE() << codec.spec() << ": element " << i << " is " << x[i] << ", decoded " << y[i] << ", step " << step;
      break;
    }
  }
  return y;
}

TEST(Ecsq, RelativeMseTargetIsMetPerTensorAndPerRow) {
  for (const char* spec : {"ecsq:relmse=0.00095", "ecsq:relmse=0.01,scope=row"}) {
    auto codec = make_tensor_codec(spec);
    EXPECT_EQ(codec->spec(), spec);
    for (auto d : {Distribution::Gaussian, Distribution::Laplacian, Distribution::HeavyTailed}) {
      auto x = test::synthetic(d, 64, 256, 3);
      TensorShape shape{{64, 256}};
      std::vector<Stream> streams;
      auto y = round_trip_within_half_step(*codec, x, shape, streams);
      double target = std::string(spec).find("0.01") != std::string::npos ? 0.01 : 0.00095;
      double rel = Distortion::measure(x, y).relative_mse();
      EXPECT_LE(rel, target) << spec;
      EXPECT_GT(rel, 0.9 * target) << spec << ": the search takes the coarsest step within the target";
      EXPECT_EQ(steps_of(streams[1]).size(), std::string(spec).ends_with("row") ? 64u : 1u);
    }
  }
}

TEST(Ecsq, BitsTargetBoundsTheSymbolEntropy) {
  auto codec = make_tensor_codec("ecsq:bits=4.5");
  auto x = test::synthetic(Distribution::Laplacian, 128, 128, 4);
  std::vector<Stream> streams;
  round_trip_within_half_step(*codec, x, TensorShape{{128, 128}}, streams);
  double bits = symbol_entropy_bits(streams[0]);
  EXPECT_LE(bits, 4.5);
  EXPECT_GT(bits, 4.3);
}

TEST(Ecsq, FixedStepIsTheStoredStepAndWideSymbolsRoundTrip) {
  auto x = test::synthetic(Distribution::HeavyTailed, 32, 64, 5, 1.0f);
  x[7] = 300.0f, x[9] = -1000.0f;  // beyond int8 at step 1
  TensorShape shape{{32, 64}};
  std::vector<Stream> streams;
  auto y = round_trip_within_half_step(*make_tensor_codec("ecsq:step=1"), x, shape, streams);
  EXPECT_EQ(streams[0].group, "ecsq16");
  EXPECT_EQ(streams[0].element_bytes, 2);
  EXPECT_TRUE(streams[0].integer);
  EXPECT_EQ(steps_of(streams[1]), std::vector<float>{1.0f});
  EXPECT_EQ(y[9], -1000.0f);

  round_trip_within_half_step(*make_tensor_codec("ecsq:step=100"), x, shape, streams);
  EXPECT_EQ(streams[0].group, "ecsq8");
  EXPECT_EQ(streams[0].bytes.size(), x.size());
}

TEST(Ecsq, ZerosAndConstantRows) {
  for (auto d : {Distribution::ZeroRows, Distribution::ConstantRows}) {
    auto x = test::synthetic(d, 16, 32, 6);
    for (const char* spec : {"ecsq:relmse=0.001", "ecsq:bits=3,scope=row", "ecsq:relmse=0.001,scope=row"}) {
      std::vector<Stream> streams;
      auto y = round_trip_within_half_step(*make_tensor_codec(spec), x, TensorShape{{16, 32}}, streams);
      if (std::string(spec).find("relmse") != std::string::npos)
        EXPECT_LE(Distortion::measure(x, y).relative_mse(), 0.001) << spec;
    }
  }
  std::vector<float> zeros(100, 0.0f);
  auto y = decode_streams(*make_tensor_codec("ecsq:relmse=0.1"), make_tensor_codec("ecsq:relmse=0.1")->encode(zeros, {{100}}), {{100}});
  EXPECT_EQ(y, zeros);
}

TEST(Ecsq, FitSharesOneStepThatMeetsTheTotalTargetOnBase9) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  std::vector<std::vector<float>> tensors;
  std::vector<FitTensor> fit;
  for (const auto& t : ckpt.tensors())
    if (t.shape.size() == 2 && t.numel() > 65536 && tensors.size() < 6) tensors.push_back(t.to_floats()), fit.push_back({t.name, {}, {t.shape}});
  ASSERT_EQ(tensors.size(), 6u);
  for (size_t i = 0; i < fit.size(); ++i) fit[i].values = tensors[i];
  FittedCodecs fitted = fit_tensor_codec("ecsq:totalrelmse=0.00095", fit);
  ASSERT_EQ(fitted.size(), fit.size());
  Distortion total;
  for (size_t i = 0; i < fit.size(); ++i) {
    EXPECT_TRUE(fitted[i]->spec().starts_with("ecsq:step=")) << fitted[i]->spec();
    EXPECT_EQ(fitted[i]->spec(), fitted[0]->spec());
    std::vector<Stream> streams;
    total.add(Distortion::measure(tensors[i], round_trip_within_half_step(*fitted[i], tensors[i], fit[i].shape, streams)));
  }
  EXPECT_LE(total.relative_mse(), 0.00095);
  EXPECT_GT(total.relative_mse(), 0.00090);
  // Alone, an unfitted total target is the tensor's own relative MSE.
  auto alone = make_tensor_codec("ecsq:totalrelmse=0.00095");
  std::vector<Stream> streams;
  auto y = round_trip_within_half_step(*alone, tensors[0], fit[0].shape, streams);
  EXPECT_NEAR(Distortion::measure(tensors[0], y).relative_mse(), 0.00095, 0.00005);
}

TEST(Ecsq, BadParamsAreInputErrors) {
  for (const char* spec : {"ecsq", "ecsq:relmse=0", "ecsq:relmse=1.5", "ecsq:bits=0", "ecsq:bits=17", "ecsq:step=-1",
                           "ecsq:step=abc", "ecsq:relmse=0.1,bits=3", "ecsq:foo=1", "ecsq:relmse=0.1,scope=col",
                           "ecsq:step=0.1,scope=row", "ecsq:totalrelmse=0.1,scope=row", "ecsq:0.1", "ecsq:step=inf"})
    EXPECT_THROW(make_tensor_codec(spec), InputError) << spec;
  std::vector<float> x = {1.0f, 1e6f};
  EXPECT_THROW(make_tensor_codec("ecsq:step=0.001")->encode(x, {{2}}), InputError) << "symbols beyond 16 bits";
  x[0] = NAN;
  EXPECT_THROW(make_tensor_codec("ecsq:relmse=0.01")->encode(x, {{2}}), InputError);
}

TEST(Ecsq, MalformedStreamsAreInputErrors) {
  auto codec = make_tensor_codec("ecsq:relmse=0.01,scope=row");
  auto x = test::synthetic(Distribution::Gaussian, 4, 8, 7);
  TensorShape shape{{4, 8}};
  auto streams = codec->encode(x, shape);
  auto decode = [&](std::vector<std::vector<uint8_t>> s) {
    std::vector<std::span<const uint8_t>> views(s.begin(), s.end());
    return codec->decode(views, shape);
  };
  EXPECT_NO_THROW(decode({streams[0].bytes, streams[1].bytes}));
  EXPECT_THROW(decode({streams[0].bytes}), InputError);
  EXPECT_THROW(decode({{streams[0].bytes.begin(), streams[0].bytes.end() - 1}, streams[1].bytes}), InputError);
  EXPECT_THROW(decode({streams[0].bytes, {streams[1].bytes.begin(), streams[1].bytes.end() - 4}}), InputError);
  auto bad_step = streams[1].bytes;
  float inf = INFINITY;
  std::memcpy(bad_step.data() + 4, &inf, 4);
  EXPECT_THROW(decode({streams[0].bytes, bad_step}), InputError);
}

// Found by fuzz/tensor_codec_roundtrip: a subnormal step (tiny values) has an infinite inverse, and
// twice a value near the float maximum is Inf; both made the symbols undefined.
TEST(Ecsq, ExtremeMagnitudesKeepAFiniteStep) {
  std::vector<std::vector<float>> cases = {{1e-44f, -3e-45f, 0.f, 7e-45f},
                                           {3e38f, -3.4e38f, 1.f, 0.f},
                                           {1e-40f, 2e-39f, -1e-41f, 5e-39f}};
  for (const auto& x : cases) {
    for (const char* spec : {"ecsq:relmse=0.001", "ecsq:bits=2", "ecsq:relmse=0.01,scope=row"}) {
      std::vector<Stream> streams;
      auto y = round_trip_within_half_step(*make_tensor_codec(spec), x, TensorShape{{1, 4}}, streams);
      for (float v : y) EXPECT_TRUE(std::isfinite(v)) << spec << " " << x[0];
      for (float step : steps_of(streams[1])) EXPECT_TRUE(std::isnormal(step)) << spec << " " << x[0] << ": step " << step;
    }
  }
}

// The float maximum rounded to a coarse step lands past it (fuzz/corpus/tensor_codec_roundtrip/ecsq-float-max):
// the codec refuses it rather than store a value that decodes to Inf.
TEST(Ecsq, NeverDecodesAFiniteValueToInf) {
  const std::vector<float> x = {std::numeric_limits<float>::max(), 1.f, -2.f, 0.5f};
  for (const char* spec : {"ecsq:bits=3,scope=row", "ecsq:bits=1", "ecsq:relmse=0.5"}) {
    auto codec = make_tensor_codec(spec);
    const TensorShape shape{{1, 4}};
    try {
      for (float v : decode_streams(*codec, codec->encode(x, shape), shape)) EXPECT_TRUE(std::isfinite(v)) << spec;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("float range"), std::string::npos) << e.what();
    }
  }
}

// Rate-aware rounding (ECSQ and int-N): a value just past a midpoint goes to the likelier symbol;
// on a real matrix the symbols' entropy falls and the error rises, ECSQ's elements stay within one
// step, the stored spec (what the decoder reads) has no rdo, and rdo=0 is round to nearest.
TEST(Ecsq, RateAwareRoundingTradesErrorForEntropy) {
  ScalarGrid grid(std::vector<float>{1.0f}, kEcsqMaxSymbol);
  std::vector<float> mostly_zero(100, 0.1f);
  mostly_zero.push_back(1.0f);
  grid.fit_rates(mostly_zero, 101, 0.1f);
  EXPECT_EQ(grid.round(0, 0.55f), 0);  // 0 costs 0.3025 + 0.1·0.03 bits; 1 costs 0.2025 + 0.1·6.1 bits
  EXPECT_EQ(grid.round(0, 0.95f), 1);
  grid.fit_rates(mostly_zero, 101, 0);
  EXPECT_EQ(grid.round(0, 0.55f), 1);

  TensorShape shape;
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  const auto& ref = ckpt.at("blocks.3.mlp.fc.weight");
  shape = TensorShape{ref.shape};
  auto x = ref.to_floats();
  // int-N grids take the same option (the within-one-step bound is ECSQ's: int-N clamps).
  for (auto [plain, with_rdo] : {std::pair{"ecsq:step=0.2", "ecsq:step=0.2,rdo=0.5"}, std::pair{"int4", "int4:rdo=0.5"}}) {
    auto nearest = make_tensor_codec(plain), rdo = make_tensor_codec(with_rdo);
    EXPECT_EQ(rdo->spec(), with_rdo);
    EXPECT_EQ(rdo->decoder_spec(), plain);
    EXPECT_EQ(make_tensor_codec(std::string(with_rdo).replace(std::string(with_rdo).find("0.5"), 3, "0"))->spec(), plain);
    auto a = nearest->encode(x, shape), b = rdo->encode(x, shape);
    EXPECT_LT(symbol_entropy_bits(b[0]), 0.97 * symbol_entropy_bits(a[0])) << with_rdo;
    auto ya = decode_streams(*nearest, a, shape), yb = decode_streams(*rdo, b, shape);
    EXPECT_GT(Distortion::measure(x, yb).relative_mse(), Distortion::measure(x, ya).relative_mse()) << with_rdo;
    if (std::string(plain).starts_with("ecsq")) {
      for (size_t i = 0; i < x.size(); ++i) ASSERT_LE(std::fabs(x[i] - yb[i]), 0.2f * (1 + 1e-5f)) << i;
    }
  }
  EXPECT_THROW(make_tensor_codec("ecsq:step=0.03,rdo=-1"), InputError);
  EXPECT_THROW(make_tensor_codec("int6:rdo=nan"), InputError);
}

}  // namespace
}  // namespace pgolf
