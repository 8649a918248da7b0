// Calibration Hessians from the reference forward: held to what can be computed without the
// observer (the head's H through the public logits, block 0's attention input by hand), the same
// for any thread count to rounding, written under every weight that takes the input; train
// shards only; self-generation starts at BOS, follows the logits and repeats for a seed.
#include "trainer/calibration.h"

#include <gtest/gtest.h>

#include <cmath>

#include "checkpoint/safetensors.h"
#include "data/shards.h"
#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using test::input_error;
using test::random_params;
using test::random_tokens;
using test::tiny_config;

struct Calibrated {
  Model<float> model{tiny_config(), random_params<float>(tiny_config(), 21)};
  std::vector<uint16_t> tokens = random_tokens(6 * 24, tiny_config().vocab, 22);
  std::vector<TokenWindow> windows = calibration_windows(tokens, 24);
};

double relative_difference(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).norm() / b.norm();
}

Eigen::MatrixXd full(const InputMoments& m, int block, MatrixInput input) {
  return m.sum(block, input).selfadjointView<Eigen::Lower>();
}

TEST(CalibrationMoments, TheHeadsHessianGivesTheLogitsEnergy) {
  // logits = cap tanh(z / cap) with z = final_normed E^T, so Z^T Z = E (Σ x x^T) E^T, where Z is
  // recovered from the public logits alone.
  Calibrated c;
  const InputMoments m = input_moments(c.model, c.windows, 2);
  EXPECT_EQ(m.positions(), static_cast<int64_t>(c.tokens.size()));
  const double cap = c.model.config().logit_softcap;
  Eigen::MatrixXd zz = Eigen::MatrixXd::Zero(c.model.config().vocab, c.model.config().vocab);
  for (const TokenWindow& w : c.windows) {
    const Eigen::MatrixXd logits = c.model.logits(w).cast<double>();
    const Eigen::MatrixXd z = cap * (logits.array() / cap).atanh().matrix();
    zz += z.transpose() * z;
  }
  const Eigen::MatrixXd e = c.model.params().tok_emb.cast<double>();
  EXPECT_LT(relative_difference(e * full(m, -1, MatrixInput::kHead) * e.transpose(), zz), 1e-4);
}

TEST(CalibrationMoments, BlockZerosAttentionInputFollowsTheEmbedding) {
  // Block 0 sees x = (resid_mix[0] + resid_mix[1]) x0, x0 = rms_norm(tok_emb[t]); c_q, c_k and c_v
  // take rms_norm(x).
  Calibrated c;
  const InputMoments m = input_moments(c.model, c.windows, 1);
  const auto& p = c.model.params();
  auto rms_normed = [](Eigen::VectorXd v) {
    return Eigen::VectorXd(v / std::sqrt(v.squaredNorm() / static_cast<double>(v.size()) + 1.1920928955078125e-07));
  };
  const Eigen::VectorXd mix = (p.blocks[0].resid_mix.row(0) + p.blocks[0].resid_mix.row(1)).transpose().cast<double>();
  Eigen::MatrixXd expected = Eigen::MatrixXd::Zero(c.model.config().dim, c.model.config().dim);
  for (uint16_t t : c.tokens) {
    const Eigen::VectorXd x0 = rms_normed(p.tok_emb.row(t).transpose().cast<double>());
    const Eigen::VectorXd in = rms_normed(mix.cwiseProduct(x0));
    expected += in * in.transpose();
  }
  EXPECT_LT(relative_difference(full(m, 0, MatrixInput::kAttention), expected), 1e-5);
}

TEST(CalibrationMoments, AnyThreadCountGivesTheSameSumsToRounding) {
  Calibrated c;
  const InputMoments one = input_moments(c.model, c.windows, 1);
  const InputMoments three = input_moments(c.model, c.windows, 3);
  size_t units = 0;
  const InputMoments again =
      input_moments(c.model, c.windows, 3, [&](const std::string& stage, size_t done, size_t total) {
        EXPECT_EQ(stage, "calibrating");
        EXPECT_EQ(total, c.windows.size());
        units = done;
      });
  EXPECT_EQ(units, c.windows.size());
  for (const InputSlot& s : matrix_inputs(c.model.config())) {
    EXPECT_LT(relative_difference(full(three, s.block, s.input), full(one, s.block, s.input)), 1e-12);
    EXPECT_EQ(full(three, s.block, s.input), full(again, s.block, s.input)) << "deterministic per thread count";
  }
}

TEST(CalibrationMoments, EveryWeightGetsItsInputsHessianAndTheFileSaysWhere) {
  Calibrated c;
  const ModelConfig config = c.model.config();
  const std::vector<WeightHessian> hessians = weight_hessians(input_moments(c.model, c.windows, 2));
  // One per quantized matrix: the head (tied embedding), then per block c_q, c_k, c_v, proj, fc, proj.
  ASSERT_EQ(hessians.size(), 1 + 6 * static_cast<size_t>(config.layers));
  EXPECT_EQ(hessians[0].name, "tok_emb.weight");
  EXPECT_EQ(hessians[1].name, "blocks.0.attn.c_q.weight");
  EXPECT_EQ(hessians[1].values, hessians[3].values) << "c_q and c_v share one input";
  EXPECT_EQ(hessians[5].name, "blocks.0.mlp.fc.weight");
  EXPECT_EQ(hessians[6].name, "blocks.0.mlp.proj.weight");
  EXPECT_EQ(hessians[6].dim, config.mlp_hidden);
  EXPECT_EQ(hessians[4].dim, config.heads * config.head_dim());
  for (const WeightHessian& h : hessians) {
    double trace = 0;
    for (int64_t i = 0; i < h.dim; ++i) {
      trace += h.values[static_cast<size_t>(i * h.dim + i)];
      for (int64_t j = 0; j < i; ++j)
        EXPECT_EQ(h.values[static_cast<size_t>(i * h.dim + j)], h.values[static_cast<size_t>(j * h.dim + i)]);
    }
    EXPECT_NEAR(trace, h.trace, 1e-5 * h.trace) << h.name;
    EXPECT_GT(h.trace, 0) << h.name;
  }
  test::TempDir dir;
  const std::string path = dir.file("h.safetensors");
  write_hessians(path, hessians, 144, {"base.safetensors", "train:somewhere", 24}, false);
  const Checkpoint file = Checkpoint::open({path});
  EXPECT_EQ(file.metadata().at("tokens"), "144");
  EXPECT_EQ(file.metadata().at("seq_len"), "24");
  EXPECT_EQ(file.metadata().at("source"), "train:somewhere");
  EXPECT_EQ(file.metadata().at("model"), "base.safetensors");
  EXPECT_EQ(file.at("blocks.2.mlp.proj.weight").to_floats(), hessians.back().values);
  EXPECT_NE(input_error([&] { write_hessians(path, hessians, 144, {"m", "x", 24}, false); }), "") << "exists";
  EXPECT_NE(input_error([&] { weight_hessians(InputMoments(config)); }), "") << "no positions";
}

TEST(CalibrationData, OnlyTrainShardsAreReadAndWindowsAreWhole) {
  test::TempDir dir;
  std::vector<uint16_t> train(100), val(1000, 9);
  for (size_t i = 0; i < train.size(); ++i) train[i] = static_cast<uint16_t>(i);
  write_shard(dir.file("c_train_000000.bin"), std::span(train).first(60), false);
  write_shard(dir.file("c_train_000001.bin"), std::span(train).subspan(60), false);
  write_shard(dir.file("c_val_000000.bin"), val, false);
  // 70 tokens round up to 3 windows of 32: across both shards, never the val tokens.
  const std::vector<uint16_t> read = read_train_windows(dir.path().string(), 70, 32);
  EXPECT_EQ(read, std::vector<uint16_t>(train.begin(), train.begin() + 96));
  EXPECT_NE(input_error([&] { read_train_windows(dir.path().string(), 101, 1); }).find("train shards hold 100"),
            std::string::npos);
  test::TempDir only_val;
  write_shard(only_val.file("c_val_000000.bin"), val, false);
  EXPECT_NE(input_error([&] { read_train_windows(only_val.path().string(), 10, 5); }), "");
  EXPECT_NE(input_error([&] { calibration_windows(read, 50); }), "") << "96 is not whole windows of 50";
}

TEST(SelfGeneration, StartsAtBosFollowsTheLogitsAndRepeatsForASeed) {
  const int vocab = 16;
  // Logits that put almost all mass on (last token + 3) % vocab.
  size_t calls = 0;
  const LastLogits next = [&](std::span<const TokenWindow> prefixes) {
    ++calls;
    Matrix<float> logits = Matrix<float>::Zero(static_cast<Eigen::Index>(prefixes.size()), vocab);
    for (size_t i = 0; i < prefixes.size(); ++i) logits(static_cast<Eigen::Index>(i), (prefixes[i].back() + 3) % vocab) = 30;
    return logits;
  };
  SamplingOptions o{5, 12, 1.0, 7};
  const std::vector<uint16_t> tokens = self_generate(o, vocab, 2, next);
  ASSERT_EQ(tokens.size(), 60u);
  EXPECT_EQ(calls, 11u * 3u) << "11 positions, 5 prefixes 2 at a time";
  for (size_t s = 0; s < 5; ++s) {
    EXPECT_EQ(tokens[s * 12], kBosToken);
    for (size_t t = 1; t < 12; ++t) EXPECT_EQ(tokens[s * 12 + t], (tokens[s * 12 + t - 1] + 3) % vocab);
  }
  // A flat distribution: every token appears, and a seed repeats the draw exactly.
  const LastLogits flat = [&](std::span<const TokenWindow> prefixes) {
    return Matrix<float>::Zero(static_cast<Eigen::Index>(prefixes.size()), vocab).eval();
  };
  SamplingOptions many{40, 40, 0.7, 3};
  const std::vector<uint16_t> a = self_generate(many, vocab, 40, flat), b = self_generate(many, vocab, 7, flat);
  EXPECT_EQ(a, b) << "same seed, any batching";
  std::vector<int> seen(vocab, 0);
  for (uint16_t t : a) seen[t]++;
  for (int v = 0; v < vocab; ++v) EXPECT_GT(seen[v], 40) << v;
  many.seed = 4;
  EXPECT_NE(self_generate(many, vocab, 40, flat), a);
  EXPECT_NE(input_error([&] { self_generate({1, 4, 0.0, 1}, vocab, 1, flat); }), "") << "temperature 0";
  EXPECT_NE(input_error([&] { self_generate({0, 4, 1.0, 1}, vocab, 1, flat); }), "") << "no sequences";
  EXPECT_NE(input_error([&] { self_generate({1, 4, 1.0, 1}, 1, 1, flat); }), "") << "no BOS in a vocab of 1";
}

}  // namespace
}  // namespace pgolf
