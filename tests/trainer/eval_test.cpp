#include "trainer/eval.h"

#include <gtest/gtest.h>

#include <numeric>

#include "artifact/load.h"
#include "data/shards.h"
#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

const Tokenizer& sp1024() {
  static const Tokenizer tokenizer = Tokenizer::load(test::sample_path("sp1024/corpus_1024_bpe.model"));
  return tokenizer;
}

std::vector<uint16_t> sample_val_tokens() {
  auto shard = TokenShard::open(test::sample_path("sp1024/corpus_val_000000.bin"));
  return {shard.tokens().begin(), shard.tokens().end()};
}

const Model<float>& base9() {
  static const Model<float> model = [] {
    auto tensors = load_float_tensors({test::sample_path("base9")});
    ModelConfig config = ModelConfig::from_tensors(tensors);
    return Model<float>(config, params_from_tensors<float>(config, tensors));
  }();
  return model;
}

// The reference evaluator's numbers for the base9 checkpoint (bf16 weights in fp32, fp32 math),
// from shared/checkpoints/base9/README.md.
void check_base9(int64_t sequences, int64_t bytes, double val_loss, double val_bpb) {
  EXPECT_EQ(base9().config().describe(), "9 layers, dim 512, 8 heads / 4 KV heads, MLP 1024, vocab 1024");
  EvalOptions options;
  options.max_sequences = sequences;
  const std::vector<uint16_t> tokens = sample_val_tokens();
  const EvalResult r = evaluate(base9(), tokens, sp1024().byte_table(), options);
  EXPECT_EQ(r.sequences, sequences);
  EXPECT_EQ(r.tokens, sequences * 1024);
  EXPECT_EQ(r.bytes, bytes);
  EXPECT_NEAR(r.val_loss, val_loss, 0.0005);
  EXPECT_NEAR(r.val_bpb, val_bpb, 0.0004);
  ::testing::Test::RecordProperty("val_loss", std::to_string(r.val_loss));
  ::testing::Test::RecordProperty("val_bpb", std::to_string(r.val_bpb));
  ::testing::Test::RecordProperty("seconds", std::to_string(r.seconds));
  std::printf("base9, %lld sequences: val_loss %.6f val_bpb %.6f bytes %lld in %.1f s (%.0f tokens/s)\n",
              static_cast<long long>(sequences), r.val_loss, r.val_bpb, static_cast<long long>(r.bytes), r.seconds,
              r.tokens_per_second);
}

TEST(Eval, Base9First8SequencesMatchTheReference) { check_base9(8, 16334, 1.296670, 0.938213); }

TEST(Eval, Base9First64SequencesMatchTheReference) { check_base9(64, 138156, 1.442962, 0.987506); }

// A small model over the real vocab, for the window bookkeeping.
Model<double> small_model() {
  ModelConfig config = test::tiny_config();
  config.vocab = 1024;
  return Model<double>(config, test::random_params<double>(config, 61));
}

TEST(Eval, PlainEvalIsTheMeanOverNonOverlappingSequences) {
  const Model<double> model = small_model();
  const std::vector<uint16_t> tokens = sample_val_tokens();
  EvalOptions options;
  options.seq_len = 16;
  options.max_sequences = 5;
  const EvalResult r = evaluate(model, tokens, sp1024().byte_table(), options);
  double loss_sum = 0;
  int64_t bytes = 0;
  for (int i = 0; i < 5; ++i) {
    const TokenWindow window = std::span(tokens).subspan(i * 16, 17);
    const auto losses = model.token_losses(std::span(&window, 1), 1);
    loss_sum += std::accumulate(losses.begin(), losses.end(), 0.0);
    for (int t = 0; t < 16; ++t) bytes += sp1024().byte_table().bytes(window[t], window[t + 1]);
  }
  EXPECT_EQ(r.windows, 5);
  EXPECT_EQ(r.tokens, 80);
  EXPECT_EQ(r.bytes, bytes);
  EXPECT_NEAR(r.val_loss, loss_sum / 80, 1e-12);
  EXPECT_NEAR(r.val_bpb, r.val_loss / std::log(2.0) * 80 / static_cast<double>(bytes), 1e-12);
}

// seq_len 8, 3 sequences (24 targets), stride 5: windows end at 8, 13, 18, 23 and then 24;
// each scores the targets the previous one did not reach.
TEST(Eval, SlidingWindowsScoreEveryTargetOnceWithTheirContext) {
  const Model<double> model = small_model();
  const std::vector<uint16_t> tokens = sample_val_tokens();
  EvalOptions plain;
  plain.seq_len = 8;
  plain.max_sequences = 3;
  EvalOptions sliding = plain;
  sliding.stride = 5;
  const EvalResult p = evaluate(model, tokens, sp1024().byte_table(), plain);
  const EvalResult s = evaluate(model, tokens, sp1024().byte_table(), sliding);
  EXPECT_EQ(s.windows, 5);
  EXPECT_EQ(s.tokens, 24);
  EXPECT_EQ(s.bytes, p.bytes);

  const std::vector<std::pair<int, int>> scored = {{0, 8}, {8, 13}, {13, 18}, {18, 23}, {23, 24}};  // [from, to)
  double loss_sum = 0;
  for (const auto& [from, to] : scored) {
    const TokenWindow window = std::span(tokens).subspan(to - 8, 9);
    const auto losses = model.token_losses(std::span(&window, 1), 1);
    for (int target = from; target < to; ++target) loss_sum += losses[target - (to - 8)];
  }
  EXPECT_NEAR(s.val_loss, loss_sum / 24, 1e-12);
  EXPECT_GT(std::abs(s.val_loss - p.val_loss), 1e-6);  // the extra context is used

  sliding.stride = 8;  // a stride of seq_len is the plain eval
  const EvalResult same = evaluate(model, tokens, sp1024().byte_table(), sliding);
  EXPECT_EQ(same.val_loss, p.val_loss);
  EXPECT_EQ(same.bytes, p.bytes);
}

TEST(Eval, TokenizerVocabMustBeTheModels) {
  const ModelConfig config = test::tiny_config();
  const Model<float> model(config, init_params<float>(config, 1));
  const std::vector<uint16_t> tokens = test::random_tokens(100, config.vocab, 2);
  EvalOptions options;
  options.seq_len = 16;
  std::string message = test::input_error([&] { evaluate(model, tokens, sp1024().byte_table(), options); });
  EXPECT_NE(message.find("tokenizer vocab 1024 != model vocab 64"), std::string::npos) << message;
}

TEST(Eval, TooFewTokensOrABadStrideAreInputErrors) {
  const Model<double> model = small_model();
  const std::vector<uint16_t> tokens = sample_val_tokens();
  EvalOptions options;
  options.seq_len = 16;
  EXPECT_NE(test::input_error([&] { evaluate(model, std::span(tokens).first(16), sp1024().byte_table(), options); })
                .find("fewer than one sequence"),
            std::string::npos);
  options.stride = 17;
  EXPECT_NE(test::input_error([&] { evaluate(model, tokens, sp1024().byte_table(), options); }).find("stride 17"),
            std::string::npos);
}

}  // namespace
}  // namespace pgolf
