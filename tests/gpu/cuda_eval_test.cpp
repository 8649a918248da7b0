// The GPU forward (the CUDA trainer's, fp32: inference_trainer) and evaluate_cuda against the CPU
// reference Model<float>: per-token losses, and val_loss/val_bpb with their token and byte counts;
// calibration's moments and sampling's logits. Skipped without a GPU.
#include <gtest/gtest.h>

#ifdef PGOLF_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "artifact/load.h"
#include "data/shards.h"
#include "gpu/cuda_eval.h"
#include "gpu/cuda_train.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

// A per-token loss passes when |gpu - cpu| <= kTolerance * max(|cpu|, 1): relative, except that
// near-zero losses are held to 1e-4 nats.
constexpr double kTolerance = 1e-4;

void expect_losses_close(const std::string& what, const std::vector<double>& gpu, const std::vector<double>& cpu) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double max_abs = 0, max_relative = 0, cpu_mean = 0;
  size_t failures = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double diff = std::abs(gpu[i] - cpu[i]);
    max_abs = std::max(max_abs, diff);
    max_relative = std::max(max_relative, diff / std::abs(cpu[i]));
    if (!(diff <= kTolerance * std::max(std::abs(cpu[i]), 1.0))) ++failures;  // NaN fails too
    cpu_mean += cpu[i] / static_cast<double>(cpu.size());
  }
  std::printf("  %-32s %zu token losses (CPU mean %.6f): max |gpu - cpu| %.3g, max |gpu - cpu| / |cpu| %.3g\n",
              what.c_str(), cpu.size(), cpu_mean, max_abs, max_relative);
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " token losses differ by more than the tolerance";
}

class CudaEval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
    std::printf("  device: %s\n", cuda_device_name().c_str());
  }
  const uint64_t seed_ = std::random_device{}();
  std::mt19937_64 rng_{seed_};
  ::testing::ScopedTrace trace_{__FILE__, __LINE__, "random seed " + std::to_string(seed_)};
};

// vocab 64, 3 layers (one skip), dim 32, 4 heads / 2 KV heads (head_dim 8), MLP 64.
ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab = 64, c.dim = 32, c.layers = 3, c.heads = 4, c.kv_heads = 2, c.mlp_hidden = 64;
  return c;
}

// The reference init with every tensor moved by N(0, 0.3), since zero projections and unit scales
// hide mistakes.
Model<float> random_model(const ModelConfig& c, std::mt19937_64& rng) {
  ModelParams<float> p = init_params<float>(c, rng());
  std::normal_distribution<float> noise(0.f, 0.3f);
  for_each_parameter(p, [&](const std::string&, Matrix<float>& m, const std::vector<int64_t>&) {
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] += noise(rng);
  });
  return Model<float>(c, std::move(p));
}

Model<float> random_tiny_model(std::mt19937_64& rng) { return random_model(tiny_config(), rng); }

std::vector<uint16_t> random_tokens(size_t count, int vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<uint16_t> tokens(count);
  for (uint16_t& t : tokens) t = static_cast<uint16_t>(dist(rng));
  return tokens;
}

const Model<float>& base9() {
  static const Model<float> model = [] {
    const auto tensors = load_float_tensors({test::sample_path("base9")});
    const ModelConfig config = ModelConfig::from_tensors(tensors);
    return Model<float>(config, params_from_tensors<float>(config, tensors));
  }();
  return model;
}

std::span<const uint16_t> sample_val_tokens() {
  static const TokenShard shard = TokenShard::open(test::sample_path("sp1024/corpus_val_000000.bin"));
  return shard.tokens();
}

TEST(CudaAvailability, AnswersWithoutThrowing) { EXPECT_NO_THROW(cuda_available()); }

TEST_F(CudaEval, TinyModelTokenLossesMatchCpu) {
  const Model<float> model = random_tiny_model(rng_);
  const int seq_len = 16;
  CudaTrainer gpu = inference_trainer(model, seq_len, 2, Precision::kFp32);
  const auto a = random_tokens(seq_len + 1, 64, rng_), b = random_tokens(seq_len + 1, 64, rng_);
  const std::vector<TokenWindow> two{a, b}, one{b};
  expect_losses_close("tiny, 2 x 16", gpu.token_losses(two, seq_len), model.token_losses(two, 1));
  // Fewer and shorter windows than it was made for; the last 5 targets alone.
  const std::vector<TokenWindow> short_one{TokenWindow(a).first(9)};
  expect_losses_close("tiny, 1 x 16", gpu.token_losses(one, seq_len), model.token_losses(one, 1));
  expect_losses_close("tiny, 1 x 8", gpu.token_losses(short_one, 8), model.token_losses(short_one, 1));
  expect_losses_close("tiny, 2 x 16, last 5", gpu.token_losses(two, 5), last_targets(model.token_losses(two, 1), 2, 5));
}

// The seed's techniques: head_dim 16 (2 heads / 1 KV head) with RoPE on 8 of it, each SmearGate,
// BigramHash 64 x 16, XSA on the last 2 blocks.
TEST_F(CudaEval, TinySeedModelTokenLossesMatchCpu) {
  for (SmearGate gate : {SmearGate::kV1, SmearGate::kV2, SmearGate::kV2Unmasked}) {
    ModelConfig c = tiny_config();
    c.heads = 2, c.kv_heads = 1, c.rope_dims = 8, c.smear_gate = gate;
    c.bigram_buckets = 64, c.bigram_dim = 16, c.xsa_layers = 2;
    const Model<float> model = random_model(c, rng_);
    const int seq_len = 16;
    CudaTrainer gpu = inference_trainer(model, seq_len, 2, Precision::kFp32);
    auto a = random_tokens(seq_len + 1, 64, rng_), b = random_tokens(seq_len + 1, 64, rng_);
    a[6] = b[3] = kBosToken;
    const std::vector<TokenWindow> two{a, b};
    expect_losses_close("tiny seed model, SmearGate " + smear_gate_name(gate), gpu.token_losses(two, seq_len),
                        model.token_losses(two, 1));
  }
}

TEST_F(CudaEval, TinyModelEvalMatchesCpuPlainAndSliding) {
  const Model<float> model = random_tiny_model(rng_);
  const auto tokens = random_tokens(16 * 6 + 1, 64, rng_);
  ByteTable bytes;
  std::uniform_int_distribution<int> small(0, 3);
  for (int i = 0; i < 64; ++i) {
    bytes.base_bytes.push_back(static_cast<int16_t>(small(rng_)));
    bytes.has_leading_space.push_back(small(rng_) == 0);
    bytes.is_boundary.push_back(small(rng_) == 0);
  }
  for (int stride : {0, 5}) {
    EvalOptions options;
    options.seq_len = 16;
    options.stride = stride;
    options.threads = 1;
    const EvalResult cpu = evaluate(model, tokens, bytes, options), gpu = evaluate_cuda(model, tokens, bytes, options);
    std::printf("  stride %d: %lld windows, val_loss cpu %.8f gpu %.8f, val_bpb cpu %.8f gpu %.8f\n", stride,
                static_cast<long long>(gpu.windows), cpu.val_loss, gpu.val_loss, cpu.val_bpb, gpu.val_bpb);
    EXPECT_EQ(gpu.windows, cpu.windows);
    EXPECT_EQ(gpu.tokens, cpu.tokens);
    EXPECT_EQ(gpu.bytes, cpu.bytes);
    EXPECT_NEAR(gpu.val_loss, cpu.val_loss, kTolerance * cpu.val_loss);
    EXPECT_NEAR(gpu.val_bpb, cpu.val_bpb, kTolerance * cpu.val_bpb);
  }
}

TEST_F(CudaEval, Base9TwoSequencesMatchCpu) {
  const auto tokens = sample_val_tokens();
  const std::vector<TokenWindow> windows{tokens.subspan(0, 1025), tokens.subspan(1024, 1025)};
  CudaTrainer gpu = inference_trainer(base9(), 1024, 2, Precision::kFp32);
  const int threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  expect_losses_close("base9, 2 x 1024", gpu.token_losses(windows, 1024), base9().token_losses(windows, threads));
}

// The reference evaluator's fp32 numbers on the first 64 sequences (shared/checkpoints/base9/README.md).
TEST_F(CudaEval, Base9First64SequencesMatchReference) {
  const Tokenizer tokenizer = Tokenizer::load(test::sample_path("sp1024/corpus_1024_bpe.model"));
  EvalOptions options;
  options.max_sequences = 64;
  const EvalResult r = evaluate_cuda(base9(), sample_val_tokens(), tokenizer.byte_table(), options);
  std::printf("  base9, 64 x 1024: val_loss %.6f (reference 1.442962), val_bpb %.6f (reference 0.987506), %.3f s\n",
              r.val_loss, r.val_bpb, r.seconds);
  EXPECT_EQ(r.tokens, 65536);
  EXPECT_EQ(r.bytes, 138156);
  EXPECT_NEAR(r.val_loss, 1.442962, 5e-5);
  EXPECT_NEAR(r.val_bpb, 0.987506, 5e-5);
}

// Calibration on the GPU (pgolf calibrate --device cuda) against the CPU reference: every input's
// sum of x x^T, the last positions' logits, and the sampler given them.
class CudaCalibration : public CudaEval {};

void expect_moments_close(const std::string& what, const InputMoments& gpu, const InputMoments& cpu, double bound) {
  EXPECT_EQ(gpu.positions(), cpu.positions()) << what;
  double worst = 0;
  for (const InputSlot& s : matrix_inputs(cpu.config())) {
    const Eigen::MatrixXd a = gpu.sum(s.block, s.input).selfadjointView<Eigen::Lower>();
    const Eigen::MatrixXd b = cpu.sum(s.block, s.input).selfadjointView<Eigen::Lower>();
    worst = std::max(worst, (a - b).norm() / b.norm());
  }
  std::printf("  %-32s worst |H_gpu - H_cpu| / |H_cpu| (Frobenius) %.3g (bound %.0e)\n", what.c_str(), worst, bound);
  EXPECT_LE(worst, bound) << what;
}

TEST_F(CudaCalibration, TinyModelMomentsAndLogitsMatchCpu) {
  const Model<float> model = random_tiny_model(rng_);
  const auto tokens = random_tokens(5 * 16, 64, rng_);
  const std::vector<TokenWindow> windows = calibration_windows(tokens, 16);
  CudaTrainer gpu = inference_trainer(model, 16, 5, Precision::kFp32);
  InputMoments moments(model.config());
  gpu.add_input_moments(windows, moments);
  expect_moments_close("tiny, 5 x 16", moments, input_moments(model, windows, 1), 1e-5);
  const Matrix<float> a = gpu.last_logits(windows), b = model.last_logits(windows, 1);
  ASSERT_EQ(a.rows(), 5);
  const double diff = (a - b).cwiseAbs().maxCoeff();
  std::printf("  tiny last logits: max |gpu - cpu| %.3g\n", diff);
  EXPECT_LE(diff, 1e-4);
}

// Depth recurrence: blocks 1..2 of 3 looped three times (XSA on the last block), and two shared
// blocks looped twice: the losses, and the moments summed over a looped block's passes.
TEST_F(CudaCalibration, TinyLoopedModelMatchesCpu) {
  ModelConfig range = tiny_config(), shared = tiny_config();
  range.loop_first = 1, range.loop_last = 2, range.loops = 3, range.xsa_layers = 1;
  shared.layers = 2, shared.loop_first = 0, shared.loop_last = 1, shared.loops = 2;
  for (const ModelConfig& c : {range, shared}) {
    const Model<float> model = random_model(c, rng_);
    CudaTrainer gpu = inference_trainer(model, 17, 2, Precision::kFp32);
    const auto tokens = random_tokens(2 * 17 + 1, 64, rng_);
    const std::vector<TokenWindow> windows = calibration_windows(std::span(tokens).first(2 * 17), 17);
    const std::vector<TokenWindow> scored{std::span(tokens).first(18), std::span(tokens).subspan(17, 18)};
    expect_losses_close(c.describe(), gpu.token_losses(scored, 17), model.token_losses(scored, 1));
    InputMoments moments(c);
    gpu.add_input_moments(windows, moments);
    expect_moments_close(c.describe(), moments, input_moments(model, windows, 1), 1e-5);
  }
}

TEST_F(CudaCalibration, Base9MomentsMatchCpu) {
  const auto tokens = sample_val_tokens().first(2048);
  const std::vector<TokenWindow> windows = calibration_windows(tokens, 1024);
  const int threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  expect_moments_close("base9, 2 x 1024", input_moments_cuda(base9(), windows), input_moments(base9(), windows, threads),
                       1e-4);
}

TEST_F(CudaCalibration, SelfGenerationDrawsWhatTheCpuSamplerDraws) {
  // The same seed and logits equal to fp32 rounding give the same tokens, unless a uniform draw
  // lands within that rounding of a boundary of the cumulative distribution (about 1e-6 a draw).
  const Model<float> model = random_tiny_model(rng_);
  const SamplingOptions options{6, 20, 0.9, rng_()};
  const std::vector<uint16_t> gpu = self_generate_cuda(model, options);
  const std::vector<uint16_t> cpu = self_generate(options, model.config().vocab, 6, [&](std::span<const TokenWindow> w) {
    return model.last_logits(w, 1);
  });
  EXPECT_EQ(gpu, cpu);
}

}  // namespace
}  // namespace pgolf

#else

TEST(CudaEval, NeedCudaBuild) { GTEST_SKIP() << "built without CUDA (PGOLF_CUDA=OFF, or no nvcc found)"; }

#endif
