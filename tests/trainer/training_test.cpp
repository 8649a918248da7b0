#include "trainer/training.h"

#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cfloat>
#include <cmath>

#include "artifact/load.h"
#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using test::input_error;
using test::TempDir;
using test::tiny_config;

// A learnable stream: mostly next = (5 * token + 3) mod vocab, with a random token one time in eight.
std::vector<uint16_t> patterned_tokens(size_t count, int vocab, uint64_t seed) {
  std::vector<uint16_t> tokens = test::random_tokens(count, vocab, seed);
  std::mt19937_64 rng(seed + 1);
  for (size_t i = 1; i < count; ++i)
    if (rng() % 8 != 0) tokens[i] = static_cast<uint16_t>((5 * tokens[i - 1] + 3) % vocab);
  return tokens;
}

// Two train shards of a tiny corpus in dir.
std::vector<std::string> write_train_shards(const TempDir& dir, int vocab) {
  const std::vector<uint16_t> tokens = patterned_tokens(3000, vocab, 5);
  std::vector<std::string> paths = {dir.file("t_train_000000.bin"), dir.file("t_train_000001.bin")};
  write_shard(paths[0], std::span(tokens).first(1700), false);
  write_shard(paths[1], std::span(tokens).subspan(1700), false);
  return paths;
}

std::vector<double> run(TrainState& state, const std::vector<std::string>& shards, const TrainSettings& s) {
  TokenStream stream(shards, state.data);
  auto engine = make_cpu_engine(state, s.optimizer, 2);
  return train(*engine, stream, state, s, nullptr, [](const std::string&) {}).losses;
}

TEST(Optimizer, NewtonSchulzBringsSingularValuesNearOne) {
  for (auto [rows, cols] : {std::pair{24, 40}, std::pair{40, 24}, std::pair{32, 32}}) {
    const std::vector<float> values = test::synthetic(test::Distribution::HeavyTailed, rows, cols, 3, 1.0f);
    const Matrix<float> g = Eigen::Map<const Matrix<float>>(values.data(), rows, cols);
    const Matrix<float> x = newton_schulz(g, 5);
    ASSERT_EQ(x.rows(), rows);
    const Eigen::VectorXf before = Eigen::JacobiSVD<Eigen::MatrixXf>(g).singularValues();
    const Eigen::VectorXf after = Eigen::JacobiSVD<Eigen::MatrixXf>(x).singularValues();
    EXPECT_GT(before.maxCoeff() / before.minCoeff(), 3.0f) << "the test matrix should be far from orthogonal";
    EXPECT_GT(after.minCoeff(), 0.6f) << rows << "x" << cols;
    EXPECT_LT(after.maxCoeff(), 1.25f) << rows << "x" << cols;
  }
  EXPECT_TRUE(newton_schulz(Matrix<float>::Zero(4, 6), 5).isZero());  // no NaN from a zero gradient
}

// The records' Polar Express schedule lands the singular values closer to 1 than the stock
// coefficients in the same five iterations; its names parse.
TEST(Optimizer, PolarExpressCoefficientsOrthogonaliseCloser) {
  const std::vector<float> values = test::synthetic(test::Distribution::HeavyTailed, 24, 40, 3, 1.0f);
  const Matrix<float> g = Eigen::Map<const Matrix<float>>(values.data(), 24, 40);
  auto spread = [&](NewtonSchulzCoefficients kind) {
    const Eigen::VectorXf s = Eigen::JacobiSVD<Eigen::MatrixXf>(newton_schulz(g, 5, kind)).singularValues();
    return std::max(s.maxCoeff() - 1, 1 - s.minCoeff());
  };
  EXPECT_LT(spread(NewtonSchulzCoefficients::kPolarExpress), spread(NewtonSchulzCoefficients::kStock));
  EXPECT_FLOAT_EQ(newton_schulz_step(NewtonSchulzCoefficients::kPolarExpress, 0).a, 8.156554524902461f);
  EXPECT_FLOAT_EQ(newton_schulz_step(NewtonSchulzCoefficients::kPolarExpress, 7).c, 0.42323551169305323f);
  EXPECT_EQ(parse_newton_schulz_coefficients("polar-express"), NewtonSchulzCoefficients::kPolarExpress);
  EXPECT_NE(input_error([] { parse_newton_schulz_coefficients("quintic"); }).find("stock or polar-express"),
            std::string::npos);
}

// One Adam and one Muon step by hand, on a model whose every gradient is 0.5.
TEST(Optimizer, StepMatchesHandComputedAdamAndMuon) {
  const ModelConfig config = tiny_config();
  OptimizerSettings s;
  ModelParams<float> params = init_params<float>(config, 1), before = params;
  ModelParams<float> grad = zero_params<float>(config);
  for (auto& [name, g] : named_tensors(grad)) g->setConstant(0.5f);
  OptimizerState state = zero_optimizer_state(config);
  optimizer_step(s, 0.5, 0, params, grad, state);
  // Adam's first step moves every element by lr (m / sqrt(v) = sign(g) after bias correction).
  EXPECT_NEAR(before.tok_emb(3, 4) - params.tok_emb(3, 4), 0.05 * 0.5, 1e-6);
  EXPECT_NEAR(before.blocks[1].q_gain(0, 2) - params.blocks[1].q_gain(0, 2), 0.04 * 0.5, 1e-6);
  // Muon at step 0: momentum 0.85, u = g + 0.85 * g, a rank-one matrix, orthogonalised.
  const Matrix<float>& fc = params.blocks[0].mlp_fc;  // [64, 32]: scaled by sqrt(2)
  const Matrix<float> expected =
      before.blocks[0].mlp_fc - float(0.04 * 0.5 * std::sqrt(2.0)) * newton_schulz(grad.blocks[0].mlp_fc * 1.85f, 5);
  EXPECT_LT((fc - expected).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_NEAR(state.momentum.blocks[0].mlp_fc(0, 0), 0.5, 1e-7);
  EXPECT_EQ(state.steps, 1);
  EXPECT_NEAR(muon_momentum(s, 250), 0.9, 1e-12);
  EXPECT_EQ(muon_momentum(s, 800), 0.95);
  EXPECT_EQ(param_group("blocks.3.resid_mix"), ParamGroup::Scalar);
  EXPECT_EQ(param_group("blocks.3.attn.proj.weight"), ParamGroup::Matrix);
}

// Muon's decoupled weight decay scales each matrix by 1 - lr · decay before the same update;
// Adam's groups are untouched by it.
// One step at lr scale 0.5 of the tiny model's init, every gradient 0.5: the weights before it, after it
// with the default settings (a) and after it with `changed` (b).
struct TwoSteps {
  ModelParams<float> before, a, b;
};
TwoSteps step_plain_and(const OptimizerSettings& changed) {
  const ModelConfig config = tiny_config();
  TwoSteps r{init_params<float>(config, 1), {}, {}};
  r.a = r.b = r.before;
  ModelParams<float> grad = zero_params<float>(config);
  for (auto& [name, g] : named_tensors(grad)) g->setConstant(0.5f);
  ModelParams<float> grad_b = grad;
  OptimizerState sa = zero_optimizer_state(config), sb = zero_optimizer_state(config);
  optimizer_step(OptimizerSettings{}, 0.5, 0, r.a, grad, sa);
  optimizer_step(changed, 0.5, 0, r.b, grad_b, sb);
  return r;
}

TEST(Optimizer, MuonWeightDecayScalesTheMatricesFirst) {
  OptimizerSettings decayed;
  decayed.muon_weight_decay = 0.5;
  const auto [before, a, b] = step_plain_and(decayed);
  const float keep = static_cast<float>(1 - 0.04 * 0.5 * 0.5);
  const Matrix<float> update = a.blocks[0].mlp_fc - before.blocks[0].mlp_fc;
  EXPECT_LT((b.blocks[0].mlp_fc - (keep * before.blocks[0].mlp_fc + update)).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT((b.blocks[0].mlp_fc - a.blocks[0].mlp_fc).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_EQ(a.tok_emb, b.tok_emb);
  EXPECT_EQ(a.blocks[1].q_gain, b.blocks[1].q_gain);
}

// The moving average starts at the weights where it is started and follows each step after it;
// before, steps leave it unstarted.
TEST(Optimizer, MovingAverageFollowsEveryStep) {
  const ModelConfig config = tiny_config();
  OptimizerSettings s;
  s.ema_decay = 0.75;
  ModelParams<float> params = init_params<float>(config, 1);
  OptimizerState state = zero_optimizer_state(config);
  ModelParams<float> first_grad = test::random_params<float>(config, 9);
  optimizer_step(s, 1.0, 0, params, first_grad, state);
  EXPECT_TRUE(state.ema.blocks.empty());
  start_moving_average(s, params, state);
  Matrix<float> expected = params.blocks[0].mlp_fc;
  for (int step = 1; step < 4; ++step) {
    ModelParams<float> grad = test::random_params<float>(config, 10 + step);
    optimizer_step(s, 1.0, step, params, grad, state);
    expected = 0.75f * expected + 0.25f * params.blocks[0].mlp_fc;
  }
  EXPECT_LT((state.ema.blocks[0].mlp_fc - expected).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT((state.ema.blocks[0].mlp_fc - params.blocks[0].mlp_fc).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_TRUE(zero_optimizer_state(config).ema.blocks.empty());
}

// --ema-warmup: the decay after step n is min(D, (1 + n) / (10 + n)): 2/11, 3/12, ... until D, which
// 0.9965 reaches at step 2,560; the average follows that recursion.
TEST(Optimizer, WarmedUpAverageTakesTheSmallerDecay) {
  OptimizerSettings s;
  s.ema_decay = 0.9965;
  EXPECT_EQ(ema_decay_at(s, 1), 0.9965);
  s.ema_warmup = true;
  EXPECT_DOUBLE_EQ(ema_decay_at(s, 1), 2.0 / 11);
  EXPECT_DOUBLE_EQ(ema_decay_at(s, 2559), 2560.0 / 2569);
  EXPECT_EQ(ema_decay_at(s, 2570), 0.9965);
  const ModelConfig config = tiny_config();
  ModelParams<float> params = init_params<float>(config, 1);
  OptimizerState state = zero_optimizer_state(config);
  start_moving_average(s, params, state);
  Matrix<float> expected = params.blocks[0].mlp_fc;
  for (int step = 0; step < 3; ++step) {
    ModelParams<float> grad = test::random_params<float>(config, 20 + step);
    optimizer_step(s, 1.0, step, params, grad, state);
    const auto decay = static_cast<float>((2.0 + step) / (11.0 + step));
    expected = decay * expected + (1 - decay) * params.blocks[0].mlp_fc;
  }
  EXPECT_LT((state.ema.blocks[0].mlp_fc - expected).cwiseAbs().maxCoeff(), 1e-6);
}

// AdamW's decay scales the embedding's and the scalars' tensors by 1 - lr · decay (their own lr)
// before the same Adam update; the matrices are untouched by it.
// MuonEq-R: the update of a matrix whose gradient rows differ in scale is Newton-Schulz of the rows
// brought to rms 1; without it the large rows dominate.
TEST(Optimizer, MuonRowNormalisationEqualisesTheRowsFirst) {
  OptimizerSettings rows;
  rows.muon_row_normalize = true;
  const auto [before, a, b] = step_plain_and(rows);  // every gradient 0.5: rows already equal, the same update
  EXPECT_LT((a.blocks[0].mlp_fc - b.blocks[0].mlp_fc).cwiseAbs().maxCoeff(), 1e-5);
  const ModelConfig config = tiny_config();
  ModelParams<float> params = init_params<float>(config, 1);
  const ModelParams<float> start = params;
  ModelParams<float> grad = test::random_params<float>(config, 4);
  grad.blocks[0].mlp_fc.topRows(8) *= 50.0f;
  const Matrix<float> g = grad.blocks[0].mlp_fc;
  OptimizerState state = zero_optimizer_state(config);
  optimizer_step(rows, 1.0, 0, params, grad, state);
  Matrix<float> equal = 1.85f * g;  // Nesterov at step 0, then each row over its rms
  for (Eigen::Index r = 0; r < equal.rows(); ++r)
    equal.row(r) /= std::sqrt(equal.row(r).squaredNorm() / static_cast<float>(equal.cols()) + FLT_EPSILON);
  const Matrix<float> expected = start.blocks[0].mlp_fc - float(0.04 * std::sqrt(2.0)) * newton_schulz(equal, 5);
  EXPECT_LT((params.blocks[0].mlp_fc - expected).cwiseAbs().maxCoeff(), 1e-5);
}

TEST(Optimizer, AdamWeightDecayScalesTheEmbeddingAndScalarsFirst) {
  OptimizerSettings decayed;
  decayed.embed_weight_decay = 0.5, decayed.scalar_weight_decay = 0.25;
  const auto [before, a, b] = step_plain_and(decayed);
  const auto keep = [](double lr, double decay) { return static_cast<float>(1 - lr * 0.5 * decay); };
  EXPECT_LT((b.tok_emb - (keep(0.05, 0.5) * before.tok_emb + (a.tok_emb - before.tok_emb))).cwiseAbs().maxCoeff(), 1e-6);
  const Matrix<float>& gain = before.blocks[1].q_gain;
  EXPECT_LT((b.blocks[1].q_gain - (keep(0.04, 0.25) * gain + (a.blocks[1].q_gain - gain))).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT((b.blocks[1].q_gain - a.blocks[1].q_gain).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_EQ(a.blocks[0].mlp_fc, b.blocks[0].mlp_fc);
}

TEST(Optimizer, GradientClippingScalesToTheNorm) {
  const ModelConfig config = tiny_config();
  OptimizerSettings s;
  s.grad_clip = 0.25;
  ModelParams<float> params = init_params<float>(config, 1);
  ModelParams<float> grad = zero_params<float>(config);
  for (auto& [name, g] : named_tensors(grad)) g->setConstant(0.5f);
  OptimizerState state = zero_optimizer_state(config);
  optimizer_step(s, 1.0, 0, params, grad, state);
  EXPECT_NEAR(gradient_norm(grad), 0.25, 1e-5);
}

TEST(Training, WarmdownIsLinearByStepsOrByTime) {
  TrainSettings s;
  s.steps = 100;
  s.warmdown_steps = 40;
  EXPECT_EQ(lr_scale(s, 59, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(s, 60, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(s, 80, 0), 0.5);
  s.max_seconds = 100;  // 1 s per step so far: the warmdown is the last 40 s
  EXPECT_EQ(lr_scale(s, 50, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(s, 80, 80), 0.5);
  EXPECT_EQ(lr_scale(s, 120, 120), 0.0);
  s.lr_floor = 0.1;  // the same, stopping at the floor
  EXPECT_DOUBLE_EQ(lr_scale(s, 80, 80), 0.5);
  EXPECT_DOUBLE_EQ(lr_scale(s, 98, 98), 0.1);
  EXPECT_DOUBLE_EQ(lr_scale(s, 120, 120), 0.1);
  s.lr_floor = 1.5;
  EXPECT_NE(input_error([&] { s.validate(); }).find("--lr-floor"), std::string::npos);
}

TEST(Training, StepsLowerTheLoss) {
  TempDir dir;
  const ModelConfig config = tiny_config();
  const auto shards = write_train_shards(dir, config.vocab);
  TrainState state = initial_train_state(config, 1337);
  const std::vector<double> losses = run(state, shards, test::tiny_train_settings(30));
  ASSERT_EQ(losses.size(), 30u);
  EXPECT_NEAR(losses[0], std::log(64.0), 0.1);  // the reference init starts near uniform
  EXPECT_LT(losses.back(), losses[0] - 1.0);
  EXPECT_EQ(state.step, 30);
  EXPECT_EQ(state.optimizer.steps, 30);
  // 30 steps x 2 micro-batches x 65 tokens = 3900: past the 3000 of the corpus, wrapped to shard 0.
  EXPECT_EQ(state.data.shard, 0);
  EXPECT_EQ(state.data.offset, 3900 - 3000);
}

TEST(Training, ResumeGivesTheSameLossesAsAStraightRun) {
  TempDir dir;
  const ModelConfig config = tiny_config();
  const auto shards = write_train_shards(dir, config.vocab);
  TrainSettings s = test::tiny_train_settings(12);
  TrainState straight = initial_train_state(config, 7);
  const std::vector<double> expected = run(straight, shards, s);

  TrainState first = initial_train_state(config, 7);
  s.stop_at = 5;
  std::vector<double> losses = run(first, shards, s);
  ASSERT_EQ(losses.size(), 5u);
  save_train_state(dir.file("run.state"), first, false);
  TrainState resumed = load_train_state(dir.file("run.state"));
  EXPECT_EQ(resumed.step, 5);
  s.stop_at = 0;
  const std::vector<double> rest = run(resumed, shards, s);
  losses.insert(losses.end(), rest.begin(), rest.end());
  EXPECT_EQ(losses, expected);  // bitwise
  EXPECT_TRUE(resumed.params.blocks[2].mlp_proj == straight.params.blocks[2].mlp_proj);
}

// With a moving average: it travels in the state (resume stays bitwise, the average too), the
// checkpoint holds it, and the final validation scores it, not the weights.
TEST(Training, MovingAverageResumesAndIsWhatTheRunEndsWith) {
  TempDir dir;
  const ModelConfig config = tiny_config();
  const auto shards = write_train_shards(dir, config.vocab);
  TrainSettings s = test::tiny_train_settings(8);
  s.optimizer.ema_decay = 0.5;
  TrainState straight = initial_train_state(config, 7);
  run(straight, shards, s);
  TrainState first = initial_train_state(config, 7);
  s.stop_at = 3;
  run(first, shards, s);
  save_train_state(dir.file("run.state"), first, false);
  TrainState resumed = load_train_state(dir.file("run.state"));
  EXPECT_TRUE(resumed.optimizer.ema.blocks[1].c_q == first.optimizer.ema.blocks[1].c_q);
  s.stop_at = 0;
  run(resumed, shards, s);
  EXPECT_TRUE(resumed.optimizer.ema.blocks[2].mlp_fc == straight.optimizer.ema.blocks[2].mlp_fc);
  EXPECT_TRUE(resumed.params.blocks[2].mlp_fc == straight.params.blocks[2].mlp_fc);
  EXPECT_EQ(&checkpoint_weights(straight), &straight.optimizer.ema);
  EXPECT_FALSE(straight.optimizer.ema.blocks[2].mlp_fc == straight.params.blocks[2].mlp_fc);
  TrainState without = resumed;  // resumed without --ema: the weights are the checkpoint again
  s.steps = 9, s.optimizer.ema_decay = 0;
  run(without, shards, s);
  EXPECT_EQ(&checkpoint_weights(without), &without.params);
  s.optimizer.ema_decay = 0.5;

  const std::vector<uint16_t> val_tokens = test::random_tokens(4 * 16 + 1, config.vocab, 12);
  const ValSet val{val_tokens, test::made_up_bytes(config.vocab)};
  TrainState more = straight;
  s.steps = 9;
  TokenStream stream(shards, more.data);
  auto engine = make_cpu_engine(more, s.optimizer, 2);
  const TrainResult result = train(*engine, stream, more, s, &val, [](const std::string&) {});
  EvalOptions options;
  options.seq_len = s.seq_len;
  const Model<float> average(config, more.optimizer.ema), weights(config, more.params);
  EXPECT_NEAR(result.final_val.val_loss, evaluate(average, val.tokens, val.bytes, options).val_loss, 1e-9);
  EXPECT_GT(std::abs(result.final_val.val_loss - evaluate(weights, val.tokens, val.bytes, options).val_loss), 1e-6);
}

TEST(Training, CheckpointIsBf16WithTheReferenceNames) {
  TempDir dir;
  const ModelConfig config = tiny_config();
  const ModelParams<float> params = test::random_params<float>(config, 3);
  save_checkpoint(dir.file("model.safetensors"), params, {{"format", "pt"}}, false);
  const auto tensors = load_float_tensors({dir.file("model.safetensors")});
  EXPECT_EQ(ModelConfig::from_tensors(tensors).describe(), config.describe());
  const ModelParams<float> read = params_from_tensors<float>(config, tensors);
  EXPECT_LT((read.tok_emb - params.tok_emb).cwiseAbs().maxCoeff(), params.tok_emb.cwiseAbs().maxCoeff() / 128);
  EXPECT_NE(input_error([&] { save_checkpoint(dir.file("model.safetensors"), params, {{"format", "pt"}}, false); }), "");
}

TEST(Training, BadStatesAndSettingsAreRefused) {
  TempDir dir;
  const ModelConfig config = tiny_config();
  save_checkpoint(dir.file("model.safetensors"), init_params<float>(config, 1), {{"format", "pt"}}, false);
  EXPECT_NE(input_error([&] { load_train_state(dir.file("model.safetensors")); }).find("not a pgolf training state"),
            std::string::npos);
  TrainSettings s = test::tiny_train_settings(10);
  s.tokens_per_step = 100;
  EXPECT_NE(input_error([&] { s.validate(); }).find("not a multiple"), std::string::npos);
  const auto shards = write_train_shards(dir, config.vocab);
  EXPECT_NE(input_error([&] { TokenStream(shards, {2, 0}); }).find("outside"), std::string::npos);
}

TEST(Training, TokenStreamReadsAcrossShardsAndWraps) {
  TempDir dir;
  const auto shards = write_train_shards(dir, 64);
  const std::vector<uint16_t> all = patterned_tokens(3000, 64, 5);
  TokenStream stream(shards);
  EXPECT_EQ(stream.take(1600), std::vector<uint16_t>(all.begin(), all.begin() + 1600));
  EXPECT_EQ(stream.take(200), std::vector<uint16_t>(all.begin() + 1600, all.begin() + 1800));
  EXPECT_EQ(stream.position().shard, 1);
  std::vector<uint16_t> wrapped = stream.take(1300);
  EXPECT_EQ(std::vector<uint16_t>(wrapped.end() - 100, wrapped.end()), std::vector<uint16_t>(all.begin(), all.begin() + 100));
}

}  // namespace
}  // namespace pgolf
