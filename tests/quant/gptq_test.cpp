// GPTQ: with H = I it is round-to-nearest, symbol for symbol; with a real input correlation it
// lowers the output error tr(ΔW H ΔWᵀ) below round-to-nearest's on every grid; the lazy block
// updates are only a reordering of the same sums; bad Hessians are errors that say what is wrong.
#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <cmath>

#include "checkpoint/safetensors.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"
#include "quant/tensor_codec.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::Distribution;

std::vector<float> identity(int64_t n, float scale = 1) {
  std::vector<float> h(static_cast<size_t>(n * n), 0.f);
  for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i * n + i)] = scale;
  return h;
}

struct Encoded {
  std::vector<Stream> streams;
  std::vector<float> decoded;
};

Encoded encode_with(const std::string& spec, const std::vector<float>& w, const TensorShape& shape, const InputHessian* h,
                    const std::string& name = "w") {
  std::vector<FitTensor> fit{{name, w, shape, h}};
  auto codec = fit_tensor_codec(spec, fit).front();
  Encoded e;
  e.streams = codec->encode(w, shape);
  e.decoded = decode_streams(*codec, e.streams, shape);
  return e;
}

double output_relative(const std::vector<float>& w, const std::vector<float>& y, const TensorShape& shape,
                       const InputHessian& h) {
  OutputError e = output_error(w, y, shape, h);
  return e.error / e.reference;
}

std::vector<float> base9_tensor(const std::string& name, TensorShape& shape) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  const auto& ref = ckpt.at(name);
  shape = TensorShape{ref.shape};
  return ref.to_floats();
}

// A [rows, cols] matrix's shape and a correlated calibration Hessian for it.
struct Calibrated {
  Calibrated(int64_t rows, int64_t cols, uint64_t seed)
      : shape{{rows, cols}}, h(test::correlated_hessian(cols, seed)), hessian{h, cols} {}
  Calibrated(const Calibrated&) = delete;  // hessian views h
  TensorShape shape;
  std::vector<float> h;
  InputHessian hessian;
};

const char* kGrids[] = {"int6", "int5:clip=mse", "int6:clip=std:12.85", "ecsq:step=0.03", "ecsq:relmse=0.001"};

TEST(Gptq, IdentityHessianGivesRoundToNearestSymbolsExactly) {
  for (const char* name : {"blocks.0.attn.c_k.weight", "blocks.4.mlp.fc.weight"}) {
    TensorShape shape;
    auto w = base9_tensor(name, shape);
    auto h = identity(shape.cols(), 0.37f);
    InputHessian hessian{h, shape.cols()};
    for (const char* grid : kGrids)
      for (const char* gptq : {"gptq+", "gptq:order=natural,block=32+"}) {
        auto rtn = make_tensor_codec(grid)->encode(w, shape);
        auto g = encode_with(std::string(gptq) + grid, w, shape, &hessian);
        ASSERT_EQ(rtn.size(), g.streams.size());
        for (size_t s = 0; s < rtn.size(); ++s) EXPECT_EQ(rtn[s].bytes, g.streams[s].bytes) << name << " " << gptq << grid;
      }
  }
}

TEST(Gptq, LowersTheOutputErrorBelowRoundToNearestOnEveryGrid) {
  const int64_t rows = 96, cols = 128;
  const Calibrated c(rows, cols, 7);
  const auto& [shape, h, hessian] = c;
  for (auto d : {Distribution::Gaussian, Distribution::Laplacian, Distribution::HeavyTailed}) {
    auto w = test::synthetic(d, rows, cols, 11);
    for (const char* grid : kGrids) {
      std::string spec = std::string(grid) == "ecsq:step=0.03" ? "ecsq:step=0.01" : grid;  // synthetic scale 0.02
      auto rtn = encode_with(spec, w, shape, nullptr);
      for (const char* gptq : {"gptq+", "gptq:order=natural+"}) {
        auto g = encode_with(gptq + spec, w, shape, &hessian);
        double r = output_relative(w, rtn.decoded, shape, hessian), q = output_relative(w, g.decoded, shape, hessian);
        EXPECT_LT(q, 0.8 * r) << gptq << spec << " distribution " << static_cast<int>(d);
      }
    }
  }
}

// GPTQ keeps the grid's rate model: on a real matrix and its calibration-like Hessian, gptq over
// ecsq with rdo writes symbols of less entropy than without, at an output error still below round
// to nearest with the same rdo.
TEST(Gptq, RateAwareRoundingLowersTheEntropyOfGptqSymbols) {
  TensorShape shape;
  auto w = base9_tensor("blocks.2.attn.c_q.weight", shape);
  auto h = test::correlated_hessian(shape.cols(), 5);
  InputHessian hessian{h, shape.cols()};
  auto entropy = [](const Stream& s) {
    SymbolHistogram hist(s.element_bytes);
    hist.add(s.bytes);
    return hist.entropy_bits_per_symbol();
  };
  auto plain = encode_with("gptq+ecsq:step=0.2", w, shape, &hessian);
  auto rdo = encode_with("gptq+ecsq:step=0.2,rdo=0.5", w, shape, &hessian);
  auto rtn_rdo = encode_with("ecsq:step=0.2,rdo=0.5", w, shape, nullptr);
  EXPECT_LT(entropy(rdo.streams[0]), 0.97 * entropy(plain.streams[0]));
  EXPECT_LT(output_relative(w, rdo.decoded, shape, hessian), 0.8 * output_relative(w, rtn_rdo.decoded, shape, hessian));
}

TEST(Gptq, BlockSizeOnlyReordersTheSameSums) {
  const int64_t rows = 40, cols = 300;
  const Calibrated c(rows, cols, 3);
  const auto& [shape, h, hessian] = c;
  auto w = test::synthetic(Distribution::Gaussian, rows, cols, 5);
  ScalarGrid grid{std::vector<float>(rows, 0.004f), 31};
  GptqOptions a, b;
  b.block = 7;
  auto qa = gptq_round(w, shape, hessian, grid, a, cpu_gptq_engine());
  auto qb = gptq_round(w, shape, hessian, grid, b, cpu_gptq_engine());
  size_t same = 0;
  for (size_t i = 0; i < qa.size(); ++i) same += qa[i] == qb[i];
  EXPECT_GE(static_cast<double>(same), 0.999 * static_cast<double>(qa.size()));
  EXPECT_EQ(qa, gptq_round(w, shape, hessian, grid, a, cpu_gptq_engine())) << "deterministic";
}

TEST(Gptq, DeadColumnsAreZero) {
  const int64_t rows = 16, cols = 32;
  auto h = test::correlated_hessian(cols, 9);
  for (int64_t dead : {3, 17})
    for (int64_t j = 0; j < cols; ++j) h[static_cast<size_t>(dead * cols + j)] = h[static_cast<size_t>(j * cols + dead)] = 0;
  InputHessian hessian{h, cols};
  TensorShape shape{{rows, cols}};
  auto w = test::synthetic(Distribution::Gaussian, rows, cols, 4);
  auto g = encode_with("gptq+int6", w, shape, &hessian);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t dead : {3, 17}) EXPECT_EQ(g.decoded[static_cast<size_t>(r * cols + dead)], 0.f);
}

TEST(Gptq, SpecDecoderAndParameters) {
  EXPECT_EQ(make_tensor_codec("gptq+int6")->spec(), "gptq+int6");
  auto codec = make_tensor_codec("gptq:order=natural,damp=0.05,block=64+ecsq:step=0.03");
  EXPECT_EQ(codec->spec(), "gptq:order=natural,damp=0.05,block=64+ecsq:step=0.03");
  EXPECT_EQ(codec->decoder_spec(), "ecsq:step=0.03");
  EXPECT_EQ(make_tensor_codec("gptq+int6+lrcorr:rank=4,weight=hessian")->decoder_spec(), "int6+lrcorr:rank=4");
  for (const char* bad : {"gptq", "gptq+kmeans:k=16", "gptq+fp16", "gptq:order=random+int6", "gptq:damp=-1+int6",
                          "gptq:block=0+int6", "gptq:foo=1+int6", "gptq+prune:0.1+int6"})
    EXPECT_THROW(make_tensor_codec(bad), InputError) << bad;
  // Without calibration it cannot encode; its streams decode as the grid's.
  TensorShape shape{{4, 8}};
  auto w = test::synthetic(Distribution::Gaussian, 4, 8, 1);
  EXPECT_THROW(make_tensor_codec("gptq+int6")->encode(w, shape), InputError);
}

TEST(Gptq, TotalTargetIsFittedBeforeRounding) {
  // gptq+ecsq:totalrelmse: the grid's shared step comes from its own fit step, then GPTQ rounds on it.
  const int64_t rows = 32, cols = 64;
  auto h = test::correlated_hessian(cols, 2);
  InputHessian hessian{h, cols};
  auto a = test::synthetic(Distribution::Gaussian, rows, cols, 1), b = test::synthetic(Distribution::Laplacian, rows, cols, 2, 0.05f);
  TensorShape shape{{rows, cols}};
  std::vector<FitTensor> fit{{"a", a, shape, &hessian}, {"b", b, shape, &hessian}};
  auto plain = fit_tensor_codec("ecsq:totalrelmse=0.001", fit);
  auto gptq = fit_tensor_codec("gptq+ecsq:totalrelmse=0.001", fit);
  EXPECT_EQ(gptq[0]->spec(), "gptq+" + plain[0]->spec());
  EXPECT_EQ(gptq[1]->spec(), gptq[0]->spec());
}

TEST(Gptq, BadHessiansAreErrorsNamingTheTensor) {
  const int64_t rows = 8, cols = 16;
  TensorShape shape{{rows, cols}};
  auto w = test::synthetic(Distribution::Gaussian, rows, cols, 1);
  auto expect_error = [&](const InputHessian* h, const std::string& what) {
    try {
      std::vector<FitTensor> fit{{"blocks.0.attn.c_q.weight", w, shape, h}};
      auto codec = fit_tensor_codec("gptq+int6", fit).front();
      codec->encode(w, shape);
      ADD_FAILURE() << "no error for " << what;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error(nullptr, "blocks.0.attn.c_q.weight");  // missing: fit names the tensor
  auto wrong = identity(cols + 1);
  InputHessian wrong_shape{wrong, cols + 1};
  expect_error(&wrong_shape, "17x17, not 16x16");
  auto nan = identity(cols);
  nan[5] = std::nanf("");
  nan[5 * cols] = std::nanf("");
  InputHessian with_nan{nan, cols};
  expect_error(&with_nan, "non-finite");
  auto negative = identity(cols, -1.f);
  InputHessian negative_diag{negative, cols};
  expect_error(&negative_diag, "not positive semi-definite");
  auto indefinite = identity(cols);
  indefinite[1] = indefinite[cols] = 3.f;  // [[1, 3], [3, 1]]: eigenvalue -2
  InputHessian not_psd{indefinite, cols};
  expect_error(&not_psd, "not positive semi-definite");
  auto asymmetric = identity(cols);
  asymmetric[2] = 0.5f;
  InputHessian not_symmetric{asymmetric, cols};
  expect_error(&not_symmetric, "not symmetric");
}

TEST(Gptq, HessianWeightedCorrectionLowersTheOutputError) {
  // With float factors the H^½-weighted SVD is the best rank-r correction in output space.
  const int64_t rows = 64, cols = 96;
  const Calibrated c(rows, cols, 13);
  const auto& [shape, h, hessian] = c;
  auto w = test::synthetic(Distribution::HeavyTailed, rows, cols, 3);
  auto plain = encode_with("gptq+int4+lrcorr:rank=8,factors=fp32", w, shape, &hessian);
  auto weighted = encode_with("gptq+int4+lrcorr:rank=8,factors=fp32,weight=hessian", w, shape, &hessian);
  auto base = encode_with("gptq+int4", w, shape, &hessian);
  double p = output_relative(w, plain.decoded, shape, hessian), q = output_relative(w, weighted.decoded, shape, hessian);
  EXPECT_LT(q, p);
  EXPECT_LT(p, output_relative(w, base.decoded, shape, hessian));
  EXPECT_THROW(encode_with("int4+lrcorr:rank=8,weight=hessian", w, shape, nullptr), InputError);
}

}  // namespace
}  // namespace pgolf
