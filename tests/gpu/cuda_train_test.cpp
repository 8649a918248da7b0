// The CUDA trainer against the CPU reference at a tiny configuration: the loss and every gradient
// tensor of one micro-batch, 20 optimizer steps' losses (fp32: to 1e-4; bf16: to the tolerances
// below), the same at base9's shape on real tokens (fewer steps), bitwise resume, and the memory
// check; data parallel over NCCL against one GPU. Skipped without a GPU (the two-rank test without two).
#include <gtest/gtest.h>

#ifdef PGOLF_HAVE_CUDA
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <thread>
#include <utility>

#include "data/shards.h"
#include "gpu/cuda_eval.h"
#include "gpu/cuda_train.h"
#include "gpu/rank_group.h"
#include "kernels/cuda_check.h"
#include "support/test_support.h"
#include "trainer/eval.h"
#include "trainer/test_helpers.h"
#include "trainer/ttt.h"

namespace pgolf {
namespace {

class CudaTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  }
};

// count windows of seq_len + 1 tokens from tokens[first], one token of overlap, as the trainer's.
std::vector<TokenWindow> windows_of(const std::vector<uint16_t>& tokens, size_t first, int count, int seq_len) {
  std::vector<TokenWindow> windows;
  for (int b = 0; b < count; ++b) windows.push_back(std::span(tokens).subspan(first + b * seq_len, seq_len + 1));
  return windows;
}

// |gpu - reference| / |reference| over the whole tensor (Frobenius norms).
double relative_error(const Matrix<float>& gpu, const Matrix<double>& reference) {
  return (gpu.cast<double>() - reference).norm() / std::max(reference.norm(), 1e-30);
}

// bf16 mode (GEMM inputs, attention's q, k, v, p and ds rounded to 8 significant bits, fp32 sums)
// against the double CPU model. Per gradient tensor, relative Frobenius error: llm.c's bf16
// test allows 4e-3 to 5e-1 per tensor. The loss of one micro-batch is much closer (sums of many
// rounding errors cancel); 20 steps of training may drift a little more.
constexpr double kBf16GradientTolerance = 5e-2, kBf16LossTolerance = 2e-3, kBf16StepsTolerance = 2e-2;

// One precision's bounds: every gradient tensor's relative error, and the loss's.
struct Bounds {
  Precision precision;
  double gradient, loss;
};
constexpr Bounds kFp32Bounds{Precision::kFp32, 1e-4, 1e-5};
constexpr Bounds kBf16Bounds{Precision::kBf16, kBf16GradientTolerance, kBf16LossTolerance};

// The loss and every gradient tensor of one micro-batch of `sequences` x seq_len tokens in each
// precision of `checks`, against one double CPU run, within that precision's bounds.
void check_gradients(const ModelConfig& config, int sequences, int seq_len,
                     std::initializer_list<Bounds> checks = {kFp32Bounds}) {
  const ModelParams<double> params = test::random_params<double>(config, 3);
  TrainState state = initial_train_state(config, 1);
  state.params = params_from_tensors<float>(config, params_to_tensors(params));
  TrainSettings s;
  s.seq_len = seq_len;
  s.micro_batch = sequences;
  s.tokens_per_step = int64_t{sequences} * seq_len;
  std::vector<uint16_t> tokens = test::random_tokens(sequences * seq_len + 1, config.vocab, 4);
  tokens[5] = tokens[seq_len + 3] = kBosToken;  // documents that start inside the sequences
  const auto windows = windows_of(tokens, 0, sequences, seq_len);
  ModelParams<double> reference;
  const double cpu_loss = Model<double>(config, params).loss_and_gradient(windows, reference, 2);
  const auto cpu_tensors = named_tensors(reference);

  for (const Bounds& bounds : checks) {
    const bool reduced = bounds.precision != Precision::kFp32;
    CudaTrainer gpu(state, s, bounds.precision);
    const double gpu_loss = gpu.accumulate(windows, 1.0);
    std::printf("  %s, %d x %d tokens, %s: loss gpu %.8f, cpu (double) %.8f\n", config.describe().c_str(), sequences,
                seq_len, bounds.precision == Precision::kBf16 ? "bf16" : reduced ? "tf32" : "fp32", gpu_loss, cpu_loss);
    EXPECT_NEAR(gpu_loss, cpu_loss, bounds.loss * cpu_loss);
    const ModelParams<float> g = gpu.gradient();
    const auto gpu_tensors = named_tensors(g);
    double worst = 0;
    for (size_t i = 0; i < gpu_tensors.size(); ++i) {
      const double error = relative_error(*gpu_tensors[i].second, *cpu_tensors[i].second);
      worst = std::max(worst, error);
      // A scalar's gradient in bf16 (bigram.scale: one sum over every row and channel, with
      // cancellation) has no averaging over elements: twice the bound (measured 0.058 on an H200);
      // so has a two-element one (q_gain of a 2-head model with MTP heads: 0.078 on an H100), and so
      // have a parallel block's lanes (each of the six such a sum).
      const bool scalar = reduced && (cpu_tensors[i].second->size() <= 2 || gpu_tensors[i].first.ends_with(".lanes"));
      EXPECT_LT(error, scalar ? 2 * bounds.gradient : bounds.gradient) << gpu_tensors[i].first;
      if (reduced) std::printf("    %-24s %.3g\n", gpu_tensors[i].first.c_str(), error);
      EXPECT_GT(cpu_tensors[i].second->norm(), 0) << gpu_tensors[i].first << " has no gradient to compare";
    }
    std::printf("  worst per-tensor relative gradient error %.3g over %zu tensors\n", worst, gpu_tensors.size());
  }
}

// head_dim 64 as base9, 80 tokens: several attention tiles, the last one partial.
ModelConfig wide_config() {
  ModelConfig wide = test::tiny_config();
  wide.dim = 128, wide.heads = 2, wide.kv_heads = 1, wide.mlp_hidden = 128, wide.layers = 2;
  return wide;
}

// The tiny configuration with head_dim 16, the smallest the bf16 attention takes.
ModelConfig tiny_bf16_config() {
  ModelConfig config = test::tiny_config();
  config.heads = 2, config.kv_heads = 1;
  return config;
}

// The seed's techniques on tiny_bf16_config: RoPE on 8 of 16 dims, SmearGate v1, BigramHash 64 x 16.
ModelConfig tiny_seed_config() {
  ModelConfig config = tiny_bf16_config();
  config.rope_dims = 8, config.smear_gate = SmearGate::kV1, config.bigram_buckets = 64, config.bigram_dim = 16;
  return config;
}

TEST_F(CudaTrain, LossAndEveryGradientMatchTheCpuReference) {
  check_gradients(test::tiny_config(), 4, 16);  // head_dim 8
  check_gradients(wide_config(), 2, 80);
}

// The twenty steps' optimizer: the tiny training settings' (clipping, momentum warm-up).
OptimizerSettings twenty_steps_optimizer() { return test::tiny_train_settings(20).optimizer; }
void follow_cpu_for_twenty_steps(const ModelConfig& config, Precision precision, double tolerance,
                                 const OptimizerSettings& optimizer = twenty_steps_optimizer(), int loop_from_step = 0);

// LeakyReLU(0.5)² in the MLP: the same twin checks, fp32, and twenty steps.
TEST_F(CudaTrain, LeakyReluSquaredMatchesTheCpuReference) {
  ModelConfig leaky = test::tiny_config();
  leaky.mlp_negative_slope = 0.5;
  check_gradients(leaky, 4, 16);
  follow_cpu_for_twenty_steps(leaky, Precision::kFp32, 1e-3);
}

// The same twin checks with the seed's techniques, in fp32 and in bf16 (same tolerances as above).
TEST_F(CudaTrain, SeedTechniquesMatchTheCpuReference) {
  check_gradients(tiny_seed_config(), 4, 16);
  follow_cpu_for_twenty_steps(tiny_seed_config(), Precision::kFp32, 1e-3);
  check_gradients(tiny_seed_config(), 4, 16, {kBf16Bounds});
  follow_cpu_for_twenty_steps(tiny_seed_config(), Precision::kBf16, kBf16StepsTolerance);
}

// XSA on every block (GQA: heads share value vectors), fp32 and bf16; on the last block with the
// seed's techniques.
TEST_F(CudaTrain, XsaMatchesTheCpuReference) {
  ModelConfig config = tiny_bf16_config();
  config.xsa_layers = config.layers;
  check_gradients(config, 4, 16);
  follow_cpu_for_twenty_steps(config, Precision::kFp32, 1e-3);
  check_gradients(config, 4, 16, {kBf16Bounds});
  follow_cpu_for_twenty_steps(config, Precision::kBf16, kBf16StepsTolerance);
  ModelConfig seed = tiny_seed_config();
  seed.xsa_layers = 1;
  check_gradients(seed, 4, 16);
}

// SmearGate v2 (masked at BOS, and not) over BigramHash, fp32.
TEST_F(CudaTrain, SmearGateV2MatchesTheCpuReference) {
  for (SmearGate gate : {SmearGate::kV2, SmearGate::kV2Unmasked}) {
    ModelConfig config = tiny_seed_config();
    config.smear_gate = gate;
    check_gradients(config, 4, 16);
    follow_cpu_for_twenty_steps(config, Precision::kFp32, 1e-3);
  }
}

// Depth recurrence: blocks 1..2 of 3 looped twice with XSA on the last (fp32 and bf16; the loop
// starting at step 8 of 20), and PR #212's two shared blocks looped three times.
ModelConfig tiny_looped_config() {
  ModelConfig config = tiny_bf16_config();
  config.loop_first = 1, config.loop_last = 2, config.loops = 2, config.xsa_layers = 1;
  return config;
}

TEST_F(CudaTrain, LoopedBlocksMatchTheCpuReference) {
  check_gradients(tiny_looped_config(), 4, 16);
  follow_cpu_for_twenty_steps(tiny_looped_config(), Precision::kFp32, 1e-3, twenty_steps_optimizer(), 8);
  check_gradients(tiny_looped_config(), 4, 16, {kBf16Bounds});
  follow_cpu_for_twenty_steps(tiny_looped_config(), Precision::kBf16, kBf16StepsTolerance, twenty_steps_optimizer(), 8);
  ModelConfig shared = tiny_bf16_config();
  shared.layers = 2, shared.loop_first = 0, shared.loop_last = 1, shared.loops = 3;
  check_gradients(shared, 4, 16);
  follow_cpu_for_twenty_steps(shared, Precision::kFp32, 1e-3);
}

// Parallel residual lanes from block 2 of 4 (the lanes split at a layer that takes a U-Net skip, the
// next one adds its skip to both) with the seed's techniques and XSA on the last block, fp32 and bf16;
// and after a looped block (virtual layers 3 and 4 of 5).
TEST_F(CudaTrain, ParallelLanesMatchTheCpuReference) {
  ModelConfig config = tiny_seed_config();
  config.layers = 4, config.parallel_from = 2, config.xsa_layers = 1;
  check_gradients(config, 4, 16);
  follow_cpu_for_twenty_steps(config, Precision::kFp32, 1e-3);
  check_gradients(config, 4, 16, {kBf16Bounds});
  follow_cpu_for_twenty_steps(config, Precision::kBf16, kBf16StepsTolerance);
  ModelConfig looped = tiny_bf16_config();
  looped.layers = 4, looped.loop_first = 1, looped.loop_last = 1, looped.loops = 2, looped.parallel_from = 2;
  check_gradients(looped, 4, 16);
  follow_cpu_for_twenty_steps(looped, Precision::kFp32, 1e-3, twenty_steps_optimizer(), 8);
}

// Multi-token heads (PR #212's MTP, two heads at 0.3): their gradients (tok_emb's share, the heads',
// and through the final norm every block's) and twenty Muon steps, fp32 and bf16.
TEST_F(CudaTrain, MultiTokenHeadsMatchTheCpuReference) {
  ModelConfig config = tiny_bf16_config();
  config.mtp_heads = 2, config.mtp_weight = 0.3;
  check_gradients(config, 4, 16);
  follow_cpu_for_twenty_steps(config, Precision::kFp32, 1e-3);
  check_gradients(config, 4, 16, {kBf16Bounds});
  follow_cpu_for_twenty_steps(config, Precision::kBf16, kBf16StepsTolerance);
}

// Score-first TTT through the CUDA trainer (fp32) against the CPU reference: sliding windows,
// chunks of 40 targets (each chunk's last window shorter than seq_len), SGD with momentum, clip and
// the first block frozen; the same val_loss.
TEST_F(CudaTrain, TestTimeTrainingFollowsTheCpuReference) {
  const ModelConfig config = test::tiny_config();
  const std::vector<uint16_t> tokens = test::random_tokens(8 * 16 + 1, config.vocab, 21);
  const ByteTable bytes = test::made_up_bytes(config.vocab);
  EvalOptions options;
  options.seq_len = 16, options.stride = 4, options.adapt_chunk = 40;
  TttSgdOptions sgd;
  sgd.lr = 0.05, sgd.epochs = 2, sgd.batch_sequences = 2, sgd.frozen_blocks = 1, sgd.grad_clip = 0.5;
  const ModelParams<float> start = test::random_params<float>(config, 22);
  auto adapt_with = [&](TttSgd& ttt) {
    return [&](int64_t chunk, int64_t chunks, std::span<const uint16_t> chunk_tokens) { ttt.adapt(chunk, chunks, chunk_tokens); };
  };
  Model<float> cpu_model(config, start);
  const auto cpu_engine = make_cpu_ttt_engine(cpu_model, 2);
  TttSgd cpu_ttt(*cpu_engine, sgd, config.layers, options.seq_len);
  const EvalResult cpu = evaluate_windows(
      tokens, bytes, config.vocab, options, 4,
      [&](std::span<const TokenWindow> w, size_t scored) {
        return last_targets(cpu_model.token_losses(w, 2), w.size(), scored);
      },
      adapt_with(cpu_ttt));
  TrainState state = initial_train_state(config, 1);
  state.params = start;
  TrainSettings settings = test::tiny_train_settings(1);
  settings.micro_batch = sgd.batch_sequences, settings.tokens_per_step = 2 * 16;
  CudaTrainer gpu_trainer(state, settings, Precision::kFp32);
  TttSgd gpu_ttt(gpu_trainer, sgd, config.layers, options.seq_len);
  const EvalResult gpu = evaluate_windows(
      tokens, bytes, config.vocab, options, gpu_trainer.windows_per_call(),
      [&](std::span<const TokenWindow> w, size_t scored) { return gpu_trainer.token_losses(w, scored); },
      adapt_with(gpu_ttt));
  options.adapt_chunk = 0;
  const EvalResult untrained = evaluate_windows(tokens, bytes, config.vocab, options, 4,
      [&](std::span<const TokenWindow> w, size_t scored) {
        return last_targets(Model<float>(config, start).token_losses(w, 2), w.size(), scored);
      });
  std::printf("  TTT val_loss: cpu %.6f, gpu %.6f (without TTT %.6f)\n", cpu.val_loss, gpu.val_loss, untrained.val_loss);
  EXPECT_NEAR(gpu.val_loss, cpu.val_loss, 1e-4);
  EXPECT_GT(std::abs(cpu.val_loss - untrained.val_loss), 1e-3);
}

// A sliding eval through the trainer runs the last layer past its K and V on each window's scored
// rows alone: at seq 300 (those rows start past whole attention tiles), stride 64 (the first window
// scored whole, the last one short), XSA on the last block, and with parallel lanes (both lanes'
// scored rows packed), the CPU model's val_loss, fp32 and bf16.
TEST_F(CudaTrain, SlidingEvalScoresTheScoredRowsAlone) {
  ModelConfig xsa = tiny_seed_config();
  xsa.xsa_layers = 1;
  ModelConfig lanes = xsa;
  lanes.layers = 4, lanes.parallel_from = 2;
  for (const ModelConfig& config : {xsa, lanes}) {
    const int seq_len = 300;
    const std::vector<uint16_t> tokens = test::random_tokens(3 * seq_len + 1, config.vocab, 31);
    const ByteTable bytes = test::made_up_bytes(config.vocab);
    EvalOptions options;
    options.seq_len = seq_len, options.stride = 64;
    const ModelParams<float> params = test::random_params<float>(config, 32);
    const Model<float> model(config, params);
    const EvalResult cpu = evaluate_windows(tokens, bytes, config.vocab, options, 4,
                                            [&](std::span<const TokenWindow> w, size_t scored) {
                                              return last_targets(model.token_losses(w, 2), w.size(), scored);
                                            });
    for (Precision precision : {Precision::kFp32, Precision::kBf16}) {
      TrainState state = initial_train_state(config, 1);
      state.params = params;
      TrainSettings settings;
      settings.seq_len = seq_len, settings.micro_batch = 4, settings.tokens_per_step = 4 * seq_len;
      CudaTrainer trainer(state, settings, precision);
      const EvalResult gpu = evaluate_windows(
          tokens, bytes, config.vocab, options, trainer.windows_per_call(),
          [&](std::span<const TokenWindow> w, size_t scored) { return trainer.token_losses(w, scored); });
      std::printf("  %s: sliding val_loss: cpu %.6f, gpu %s %.6f\n", config.describe().c_str(), cpu.val_loss,
                  precision == Precision::kFp32 ? "fp32" : "bf16", gpu.val_loss);
      EXPECT_EQ(gpu.tokens, cpu.tokens);
      EXPECT_NEAR(gpu.val_loss, cpu.val_loss,
                  precision == Precision::kFp32 ? 1e-5 : kBf16LossTolerance * cpu.val_loss);
    }
  }
}

// Per-document LoRA through the CUDA trainer (fp32, each chunk's window a pass of its own length,
// unscored rows masked) against the CPU reference: documents at BOS, chunks of 5, Adam on three matrices.
TEST_F(CudaTrain, LoraTestTimeTrainingFollowsTheCpuReference) {
  const ModelConfig config = test::tiny_config();
  std::vector<uint16_t> tokens = test::random_tokens(6 * 16 + 1, config.vocab, 23);
  for (size_t bos : {0, 9, 40, 41, 77}) tokens[bos] = kBosToken;
  const ByteTable bytes = test::made_up_bytes(config.vocab);
  EvalOptions options;
  options.seq_len = 16;
  TttLoraOptions lora;
  lora.rank = 2, lora.chunk_tokens = 5, lora.lr = 0.05, lora.matrices = {"attn.c_q", "attn.c_v", "mlp.proj"};
  lora.beta1 = 0.5, lora.weight_decay = 0.5;  // AdamW, the later records' form
  const ModelParams<float> start = test::random_params<float>(config, 24);
  auto run = [&](TttEngine& engine, bool adapt) {
    TttLora ttt(engine, lora, config.layers, options.seq_len);
    return evaluate_documents(tokens, bytes, config.vocab, options, lora.chunk_tokens, [&](const DocumentChunk& chunk) {
      return adapt ? ttt.score(chunk) : engine.score_suffix(chunk.window, chunk.scored, false);
    });
  };
  Model<float> cpu_model(config, start);
  const auto cpu_engine = make_cpu_ttt_engine(cpu_model, 2);
  const EvalResult cpu = run(*cpu_engine, true);
  TrainState state = initial_train_state(config, 1);
  state.params = start;
  TrainSettings settings = test::tiny_train_settings(1);
  settings.micro_batch = 1, settings.tokens_per_step = 16;
  CudaTrainer gpu_trainer(state, settings, Precision::kFp32);
  const EvalResult gpu_documents = run(gpu_trainer, false);
  const EvalResult gpu = run(gpu_trainer, true);
  Model<float> untouched(config, start);
  const auto plain_engine = make_cpu_ttt_engine(untouched, 2);
  const EvalResult cpu_documents = run(*plain_engine, false);
  std::printf("  LoRA TTT val_loss: cpu %.6f, gpu %.6f (documents without adapting: cpu %.6f, gpu %.6f)\n", cpu.val_loss,
              gpu.val_loss, cpu_documents.val_loss, gpu_documents.val_loss);
  EXPECT_NEAR(gpu.val_loss, cpu.val_loss, 1e-4);
  EXPECT_NEAR(gpu_documents.val_loss, cpu_documents.val_loss, 1e-5);
  EXPECT_GT(std::abs(cpu.val_loss - cpu_documents.val_loss), 1e-3);
}

TEST_F(CudaTrain, Bf16LossAndEveryGradientFollowTheCpuReference) {
  check_gradients(wide_config(), 2, 80, {kBf16Bounds});
}

// The same run on both engines, step by step: the losses within `tolerance`.
void follow_cpu_for_twenty_steps(const ModelConfig& config, Precision precision, double tolerance,
                                 const OptimizerSettings& optimizer, int loop_from_step) {
  TrainSettings s = test::tiny_train_settings(20);
  s.optimizer = optimizer;
  const std::vector<uint16_t> tokens = test::random_tokens(20 * 2 * (4 * 16 + 1), config.vocab, 6);
  TrainState start = initial_train_state(config, 1337);
  auto cpu = make_cpu_engine(start, s.optimizer, 2);
  CudaTrainer gpu(start, s, precision);
  double worst = 0;
  for (int step = 0; step < 20; ++step) {
    if (step == 5) cpu->start_ema(), gpu.start_ema();  // the average from step 5 (TrainSettings::ema_from)
    cpu->set_looping(step >= loop_from_step);
    gpu.set_looping(step >= loop_from_step);
    double cpu_loss = 0, gpu_loss = 0;
    for (int k = 0; k < 2; ++k) {
      const auto windows = windows_of(tokens, static_cast<size_t>(2 * step + k) * 65, 4, 16);
      cpu_loss += cpu->accumulate(windows, 0.5) / 2;
      gpu_loss += gpu.accumulate(windows, 0.5) / 2;
    }
    const double scale = lr_scale(s, step, 0);
    cpu->step(scale, step);
    gpu.step(scale, step);
    worst = std::max(worst, std::abs(gpu_loss - cpu_loss));
    EXPECT_NEAR(gpu_loss, cpu_loss, tolerance) << "step " << step;
    if (step % 5 == 0 || step == 19) std::printf("  step %2d: cpu %.6f gpu %.6f\n", step, cpu_loss, gpu_loss);
  }
  std::printf("  20 steps: max |gpu - cpu| loss %.3g\n", worst);
  if (optimizer.ema_decay > 0) {  // the moving averages, tensor by tensor
    TrainState cpu_state, gpu_state;
    cpu->export_state(cpu_state);
    gpu.export_state(gpu_state);
    const auto a = named_tensors(cpu_state.optimizer.ema), b = named_tensors(gpu_state.optimizer.ema);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_LT((*a[i].second - *b[i].second).cwiseAbs().maxCoeff(), 1e-4) << a[i].first;
  }
}

TEST_F(CudaTrain, TwentyStepsFollowTheCpuReference) {
  follow_cpu_for_twenty_steps(test::tiny_config(), Precision::kFp32, 1e-3);
}

TEST_F(CudaTrain, MuonWeightDecayFollowsTheCpuReference) {
  OptimizerSettings decayed = twenty_steps_optimizer();
  decayed.muon_weight_decay = 0.5;
  follow_cpu_for_twenty_steps(test::tiny_config(), Precision::kFp32, 1e-3, decayed);
}

// The records' optimizer: AdamW on the embedding and scalars, MuonEq-R, Polar Express Newton-Schulz, and the
// weights' moving average (compared tensor by tensor at the end).
TEST_F(CudaTrain, TheRecordsOptimizerFollowsTheCpuReference) {
  OptimizerSettings records = twenty_steps_optimizer();
  records.embed_weight_decay = 0.5, records.scalar_weight_decay = 0.25, records.ema_decay = 0.9, records.ema_warmup = true;
  records.newton_schulz_coefficients = NewtonSchulzCoefficients::kPolarExpress;
  records.muon_row_normalize = true;
  follow_cpu_for_twenty_steps(test::tiny_config(), Precision::kFp32, 1e-3, records);
}

TEST_F(CudaTrain, Bf16TwentyStepsFollowTheCpuReference) {
  follow_cpu_for_twenty_steps(tiny_bf16_config(), Precision::kBf16, kBf16StepsTolerance);
}

// Also with the seed's techniques, whose tensors and state travel in the file too.
TEST_F(CudaTrain, ResumeIsBitwise) {
  ModelConfig lanes = tiny_seed_config();
  lanes.layers = 4, lanes.parallel_from = 2;
  for (const ModelConfig& config : {tiny_bf16_config(), tiny_seed_config(), tiny_looped_config(), lanes}) {
    TrainSettings s = test::tiny_train_settings(8);
    s.loop_from = config.recurrent() ? 0.25 : 0;  // the loop starts at step 2, before the break
    const std::vector<uint16_t> tokens = test::random_tokens(3000, config.vocab, 8);
    test::TempDir dir;
    write_shard(dir.file("t_train_000000.bin"), tokens, false);
    const std::vector<std::string> shards = {dir.file("t_train_000000.bin")};
    auto run = [&](TrainState& state) {
      TokenStream stream(shards, state.data);
      CudaTrainer gpu(state, s, Precision::kBf16);  // its kernels are as deterministic as fp32's
      return train(gpu, stream, state, s, nullptr, [](const std::string&) {}).losses;
    };
    TrainState straight = initial_train_state(config, 5);
    const std::vector<double> expected = run(straight);
    TrainState resumed = initial_train_state(config, 5);
    s.stop_at = 4;
    std::vector<double> losses = run(resumed);
    save_train_state(dir.file("run.state"), resumed, false);
    resumed = load_train_state(dir.file("run.state"));
    s.stop_at = 0;
    const std::vector<double> rest = run(resumed);
    losses.insert(losses.end(), rest.begin(), rest.end());
    EXPECT_EQ(losses, expected) << config.describe();
  }
}

// A tiny run through train() on rank r of group (none: alone) on the current device: its losses
// and its final state.
struct RunResult {
  std::vector<double> losses;
  TrainState state;
};
RunResult train_tiny(const std::vector<std::string>& shards, const TrainSettings& s,
                     std::unique_ptr<cuda::RankGroup> group) {
  RunResult r{{}, initial_train_state(test::tiny_config(), 5)};
  TokenStream stream(shards, r.state.data);
  CudaTrainer gpu(r.state, s, Precision::kFp32, std::move(group));
  r.losses = train(gpu, stream, r.state, s, nullptr, [](const std::string&) {}).losses;
  return r;
}

bool same_params(const TrainState& a, const TrainState& b) {
  const auto x = named_tensors(a.params), y = named_tensors(b.params);
  for (size_t i = 0; i < x.size(); ++i)
    if (!(*x[i].second == *y[i].second)) return false;
  return true;
}

class CudaTrainRanks : public CudaTrain {
 protected:
  void SetUp() override {
    CudaTrain::SetUp();
    if (IsSkipped()) return;
    const std::vector<uint16_t> tokens = test::random_tokens(3000, test::tiny_config().vocab, 9);
    write_shard(dir_.file("t_train_000000.bin"), tokens, false);
    shards_ = {dir_.file("t_train_000000.bin")};
  }
  test::TempDir dir_;
  std::vector<std::string> shards_;
};

// A group of one rank goes through every collective (sums, the owners' broadcasts) and must
// change nothing: NCCL on one rank copies.
TEST_F(CudaTrainRanks, OneRankGroupRepeatsTheLoneTrainerBitwise) {
  const TrainSettings s = test::tiny_train_settings(6);
  const RunResult alone = train_tiny(shards_, s, nullptr);
  const RunResult grouped = train_tiny(shards_, s, std::move(cuda::RankGroup::local(1)[0]));
  EXPECT_EQ(grouped.losses, alone.losses);
  EXPECT_TRUE(same_params(grouped.state, alone.state));
}

// Two GPUs, one micro-batch each, against one GPU doing both: the same losses up to the order of
// the gradient sums, and both ranks end with identical weights.
TEST_F(CudaTrainRanks, TwoRanksFollowOneGpuAtTheSameGlobalBatch) {
  int devices = 0;
  PGOLF_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices < 2) GTEST_SKIP() << "needs 2 GPUs, this machine has " << devices;
  const TrainSettings s = test::tiny_train_settings(8);
  const RunResult single = train_tiny(shards_, s, nullptr);
  auto groups = cuda::RankGroup::local(2);
  std::vector<RunResult> ranks(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      PGOLF_CUDA_CHECK(cudaSetDevice(r));
      ranks[r] = train_tiny(shards_, s, std::move(groups[r]));
    });
  for (auto& t : threads) t.join();
  PGOLF_CUDA_CHECK(cudaSetDevice(0));
  EXPECT_EQ(ranks[0].losses, ranks[1].losses);
  EXPECT_TRUE(same_params(ranks[0].state, ranks[1].state));
  ASSERT_EQ(ranks[0].losses.size(), single.losses.size());
  double worst = 0;
  for (size_t i = 0; i < single.losses.size(); ++i) {
    worst = std::max(worst, std::abs(ranks[0].losses[i] - single.losses[i]));
    EXPECT_NEAR(ranks[0].losses[i], single.losses[i], 1e-5 * single.losses[i]) << "step " << i;
  }
  std::printf("  8 steps on 2 ranks: max |2 GPUs - 1 GPU| loss %.3g\n", worst);
}

// base9's shape (dim 512, 9 blocks, 8 / 4 heads, MLP 1024, vocab 1024) at seq 1024: one micro-batch's
// loss and gradients in fp32, tf32 and bf16, then four steps on the corpus's real tokens from the reference's
// initialisation and recipe, fp32 and bf16, beside one CPU run. The tiny twins above cannot see a
// fault that needs the real sizes (attention over 1,024 positions in many tiles, a 1,024-way
// softmax, Muon on 1024 x 512 matrices); issue 35's gap opened only at this shape.
TEST_F(CudaTrain, Base9ShapeFollowsTheCpuReference) {
  ModelConfig config = test::tiny_config();
  config.dim = 512, config.layers = 9, config.heads = 8, config.kv_heads = 4, config.mlp_hidden = 1024;
  config.vocab = 1024;
  // TF32 (10 significant bits) takes bf16's (8) bounds: a fault at these sizes is far outside either.
  const Bounds tf32{Precision::kTf32, kBf16GradientTolerance, kBf16LossTolerance};
  check_gradients(config, 2, 1024, {kFp32Bounds, tf32, kBf16Bounds});

  constexpr int kSteps = 4, kSeqLen = 1024, kSequences = 2;
  TrainSettings s;
  s.seq_len = kSeqLen, s.micro_batch = kSequences, s.tokens_per_step = kSequences * kSeqLen;
  s.steps = kSteps, s.warmdown_steps = 2;
  const TokenShard shard = TokenShard::open(test::sample_path("sp1024/corpus_train_000000.bin"));
  const std::span<const uint16_t> tokens = shard.tokens();
  const auto windows = [&](int step) {
    std::vector<TokenWindow> w;
    for (int b = 0; b < kSequences; ++b)
      w.push_back(tokens.subspan(static_cast<size_t>(step * kSequences + b) * kSeqLen, kSeqLen + 1));
    return w;
  };
  const TrainState start = initial_train_state(config, 1337);
  std::vector<double> cpu_losses;
  auto cpu = make_cpu_engine(start, s.optimizer, kSequences);
  for (int step = 0; step < kSteps; ++step) {
    cpu_losses.push_back(cpu->accumulate(windows(step), 1.0));
    cpu->step(lr_scale(s, step, 0), step);
  }
  for (auto [precision, tolerance] : {std::pair{Precision::kFp32, 1e-3}, std::pair{Precision::kBf16, kBf16StepsTolerance}}) {
    CudaTrainer gpu(start, s, precision);
    for (int step = 0; step < kSteps; ++step) {
      const double loss = gpu.accumulate(windows(step), 1.0);
      gpu.step(lr_scale(s, step, 0), step);
      std::printf("  %s step %d: cpu %.6f gpu %.6f\n", precision == Precision::kFp32 ? "fp32" : "bf16", step,
                  cpu_losses[static_cast<size_t>(step)], loss);
      EXPECT_NEAR(loss, cpu_losses[static_cast<size_t>(step)], tolerance) << "step " << step;
    }
  }
}

TEST_F(CudaTrain, AConfigThatDoesNotFitIsRefusedBeforeAllocating) {
  ModelConfig config = test::tiny_config();
  config.dim = 512, config.heads = 8, config.kv_heads = 4, config.mlp_hidden = 1024, config.vocab = 1024;
  TrainSettings s;
  s.micro_batch = 4096;
  s.tokens_per_step = 4096 * 1024;
  const std::string message =
      test::input_error([&] { CudaTrainer(initial_train_state(config, 1), s, Precision::kBf16); });
  EXPECT_NE(message.find("MiB of GPU memory"), std::string::npos) << message;
}

}  // namespace
}  // namespace pgolf

#else

TEST(CudaTrain, NeedCudaBuild) { GTEST_SKIP() << "built without CUDA (PGOLF_CUDA=OFF, or no nvcc found)"; }

#endif
