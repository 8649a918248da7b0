#include "trainer/eval.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "artifact/load.h"
#include "core/random.h"
#include "data/shards.h"
#include "support/test_support.h"
#include "trainer/optimizer.h"
#include "trainer/test_helpers.h"
#include "trainer/ttt.h"

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

// Score-first test-time training over sliding windows on a tiny float model: every target's loss
// as evaluate_windows scores it, by stream position (the window's start is its offset in tokens).
struct TttRun {
  EvalResult result;
  std::map<int64_t, double> losses;  // target position -> loss
  int adapted = 0;                   // chunks trained on
};
TttRun run_ttt(const std::vector<uint16_t>& tokens, int64_t chunk, double lr) {
  ModelConfig config = test::tiny_config();
  config.vocab = 1024;
  Model<float> model(config, test::random_params<float>(config, 62));
  EvalOptions options;
  options.seq_len = 16, options.max_sequences = 6, options.stride = 4, options.adapt_chunk = chunk;
  TttSgdOptions sgd;
  sgd.lr = lr, sgd.epochs = 2, sgd.batch_sequences = 2, sgd.frozen_blocks = 1;
  const std::unique_ptr<TttEngine> engine = make_cpu_ttt_engine(model, 1);
  TttSgd ttt(*engine, sgd, config.layers, options.seq_len);
  TttRun run;
  const std::span<const uint16_t> stream(tokens);
  run.result = evaluate_windows(
      stream, sp1024().byte_table(), config.vocab, options, 3,
      [&](std::span<const TokenWindow> windows, size_t scored) {
        const std::vector<double> losses = model.token_losses(windows, 1);
        for (size_t w = 0; w < windows.size(); ++w)
          for (int t = 0; t < 16; ++t)  // the first window to reach a target is the one that scores it
            run.losses.try_emplace(windows[w].data() - stream.data() + t, losses[w * 16 + t]);
        return last_targets(losses, windows.size(), scored);
      },
      [&](int64_t c, int64_t chunks, std::span<const uint16_t> chunk_tokens) {
        EXPECT_EQ(chunk_tokens.data() - stream.data(), c * chunk);  // chunk c's targets, not one more
        EXPECT_EQ(static_cast<int64_t>(chunk_tokens.size()), chunk + 1);
        EXPECT_LT(c + 1, chunks);  // never the last
        ttt.adapt(c, chunks, chunk_tokens);
        ++run.adapted;
      });
  return run;
}

// Changing the tokens after position t + 1 never changes the loss of a target at t or before,
// with TTT on; TTT does change the later losses.
TEST(Eval, TestTimeTrainingScoresFirst) {
  std::vector<uint16_t> tokens = sample_val_tokens();
  tokens.resize(6 * 16 + 1);
  const TttRun plain = run_ttt(tokens, 0, 0.05), adapted = run_ttt(tokens, 24, 0.05);
  EXPECT_EQ(adapted.adapted, 3);  // 96 targets in chunks of 24: trained after chunks 0, 1 and 2
  EXPECT_EQ(adapted.result.tokens, plain.result.tokens);
  EXPECT_EQ(adapted.result.bytes, plain.result.bytes);
  for (int64_t p = 0; p < 24; ++p) EXPECT_EQ(adapted.losses.at(p), plain.losses.at(p)) << p;  // chunk 0: not yet trained
  EXPECT_NE(adapted.losses.at(60), plain.losses.at(60));
  for (int64_t t : {30, 50, 71}) {
    std::vector<uint16_t> changed = tokens;
    for (size_t i = static_cast<size_t>(t) + 2; i < changed.size(); ++i) changed[i] = static_cast<uint16_t>((changed[i] * 7 + 3) % 1024);
    const TttRun other = run_ttt(changed, 24, 0.05);
    for (int64_t p = 0; p <= t; ++p) EXPECT_EQ(other.losses.at(p), adapted.losses.at(p)) << "t " << t << ", target " << p;
    EXPECT_NE(other.losses.at(t + 1), adapted.losses.at(t + 1));
  }
}

// On text that repeats, training on what was scored lowers the loss of what follows.
TEST(Eval, TestTimeTrainingLearnsARepeatedText) {
  std::vector<uint16_t> tokens = sample_val_tokens();
  tokens.resize(24);
  while (tokens.size() < 6 * 16 + 1) tokens.push_back(tokens[tokens.size() - 24]);
  const TttRun plain = run_ttt(tokens, 0, 0.05), adapted = run_ttt(tokens, 24, 0.05);
  std::printf("repeated text: val_loss %.4f plain, %.4f with TTT\n", plain.result.val_loss, adapted.result.val_loss);
  EXPECT_LT(adapted.result.val_loss, plain.result.val_loss - 0.3);
  TttSgdOptions bad;
  bad.frozen_blocks = 4;
  EXPECT_NE(test::input_error([&] { bad.validate(3); }).find("--ttt-freeze 4"), std::string::npos);
}

// A chunk whose last window is shorter than seq_len (40 targets in windows of 16, 16 and 8): one
// SGD step is the step on the mean over all 40 targets, as one pass over the three windows gives it.
TEST(Eval, TestTimeTrainingWeighsAShortLastWindowByItsTargets) {
  const ModelConfig config = test::tiny_config();
  const std::vector<uint16_t> tokens = test::random_tokens(41, config.vocab, 63);
  const ModelParams<float> start = test::random_params<float>(config, 64);
  TttSgdOptions sgd;
  sgd.lr = 0.1, sgd.momentum = 0, sgd.epochs = 1, sgd.batch_sequences = 3, sgd.grad_clip = 0;
  Model<float> adapted(config, start);
  const std::unique_ptr<TttEngine> engine = make_cpu_ttt_engine(adapted, 1);
  TttSgd(*engine, sgd, config.layers, 16).adapt(0, 1, tokens);
  const std::span<const uint16_t> stream(tokens);
  const std::vector<TokenWindow> windows = {stream.subspan(0, 17), stream.subspan(16, 17), stream.subspan(32, 9)};
  ModelParams<float> grad;
  Model<float>(config, start).loss_and_gradient(windows, grad, 1);
  ModelParams<float> first = start;
  const auto after = named_tensors(adapted.params()), before = named_tensors(first), g = named_tensors(grad);
  for (size_t i = 0; i < after.size(); ++i) {
    const Matrix<float> expected = *before[i].second - sgd.lr * *g[i].second;
    EXPECT_LT((*after[i].second - expected).cwiseAbs().maxCoeff(), 1e-6) << after[i].first;
  }
}

// Document-wise scoring: every target once, with its own document's tokens as context only.
struct LoraRun {
  EvalResult result;
  std::vector<double> losses;  // per target position
  std::vector<DocumentChunk> chunks;
};
LoraRun run_documents(const std::vector<uint16_t>& tokens, bool adapt, double lr = 0.05) {
  ModelConfig config = test::tiny_config();
  config.vocab = 1024;
  Model<float> model(config, test::random_params<float>(config, 62));
  EvalOptions options;
  options.seq_len = 16, options.max_sequences = 6;
  TttLoraOptions lora;
  lora.rank = 2, lora.chunk_tokens = 5, lora.lr = lr, lora.matrices = {"attn.c_q", "attn.c_v", "mlp.proj"};
  const std::unique_ptr<TttEngine> engine = make_cpu_ttt_engine(model, 1);
  TttLora ttt(*engine, lora, config.layers, options.seq_len);
  LoraRun run;
  run.result = evaluate_documents(tokens, sp1024().byte_table(), config.vocab, options, lora.chunk_tokens,
                                  [&](const DocumentChunk& chunk) {
                                    run.chunks.push_back(chunk);
                                    const std::vector<double> losses =
                                        adapt ? ttt.score(chunk) : engine->score_suffix(chunk.window, chunk.scored, false);
                                    run.losses.insert(run.losses.end(), losses.begin(), losses.end());
                                    return losses;
                                  });
  return run;
}

// The CPU adapters (the GPU's oracle) against Adam's first step done by hand: with B = 0, dA = 0 and
// dB = s G A^T, so A stays and B moves by lr sign(dB) (m^ = g, v^ = g^2); the weight becomes
// W + s B A. reset() restores W and A.
TEST(Eval, LoraAdaptersTakeAdamsFirstStep) {
  Random random(65);
  auto draw = [&](int rows, int cols) {
    Matrix<float> m(rows, cols);
    for (auto& x : m.reshaped()) x = static_cast<float>(random.uniform() - 0.5);
    return m;
  };
  const Matrix<float> base = draw(6, 5), gradient_value = draw(6, 5);
  Matrix<float> weight = base, gradient = gradient_value;
  TttLoraOptions options;
  options.rank = 2, options.alpha = 4, options.lr = 0.01;
  const std::unique_ptr<LoraAdapters> adapters = make_cpu_lora_adapters(options, {{&weight, &gradient}});
  EXPECT_EQ(weight, base);
  adapters->adam_step();
  const Matrix<float> a = lora_first_draws(options, {5})[0];
  const float scale = 2;  // alpha / rank
  const Matrix<float> d_b = scale * (gradient_value * a.transpose());
  const Matrix<float> b = -options.lr * d_b.array().sign().matrix();
  const Matrix<float> expected = base + scale * (b * a);
  EXPECT_LT((weight - expected).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT((weight - base).cwiseAbs().maxCoeff(), 1e-3);
  adapters->reset();
  EXPECT_EQ(weight, base);
  // AdamW: the same step after A and B are scaled by 1 - lr decay (B is 0 then, A moves).
  options.weight_decay = 2;
  gradient = gradient_value;
  make_cpu_lora_adapters(options, {{&weight, &gradient}})->adam_step();
  const Matrix<float> decayed = base + scale * (b * ((1 - options.lr * options.weight_decay) * a));
  EXPECT_LT((weight - decayed).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT((weight - expected).cwiseAbs().maxCoeff(), 1e-5);
}

// Documents start at BOS; a window never reaches before its document's BOS; the targets are the
// plain eval's, each scored once; without adapting, a target's loss is the model's on its document alone.
TEST(Eval, DocumentsScoreEveryTargetWithItsOwnContext) {
  std::vector<uint16_t> tokens = sample_val_tokens();
  tokens.resize(6 * 16 + 1);
  for (size_t bos : {7, 30, 31, 60}) tokens[bos] = kBosToken;
  const LoraRun run = run_documents(tokens, false);
  ModelConfig config = test::tiny_config();
  config.vocab = 1024;
  const Model<float> model(config, test::random_params<float>(config, 62));
  EvalOptions plain;
  plain.seq_len = 16, plain.max_sequences = 6;
  const EvalResult whole = evaluate(model, tokens, sp1024().byte_table(), plain);
  EXPECT_EQ(run.result.tokens, whole.tokens);
  EXPECT_EQ(run.result.bytes, whole.bytes);
  ASSERT_EQ(run.losses.size(), 96u);
  const std::span<const uint16_t> stream(tokens);
  int64_t position = 0;
  for (const DocumentChunk& chunk : run.chunks) {
    const int64_t start = chunk.window.data() - stream.data();
    const int64_t first = start + static_cast<int64_t>(chunk.window.size() - 1 - chunk.scored);
    EXPECT_EQ(first, position);  // in order, none skipped
    for (size_t i = 1; i + 1 < chunk.window.size(); ++i) EXPECT_NE(chunk.window[i], kBosToken) << "an input past its BOS";
    // The document's start: the last BOS at or before the first scored target's input.
    int64_t document = first;
    while (document > 0 && tokens[static_cast<size_t>(document)] != kBosToken) --document;
    EXPECT_EQ(start, std::max(document, first + static_cast<int64_t>(chunk.scored) - 16));
    position += static_cast<int64_t>(chunk.scored);
  }
  // Target 40 (document [31, 60)) from its document alone.
  const std::vector<double> alone = model.suffix_losses(stream.subspan(31, 11), 1, nullptr);
  EXPECT_EQ(run.losses.at(40), alone[0]);
}

// Per-document LoRA scores first (changing tokens after t never changes a loss at t or before),
// resets at each document (a document's first chunk scores as without adapting), and adapts after.
TEST(Eval, LoraTestTimeTrainingScoresFirstAndResetsPerDocument) {
  std::vector<uint16_t> tokens = sample_val_tokens();
  tokens.resize(6 * 16 + 1);
  tokens[50] = kBosToken;
  const LoraRun plain = run_documents(tokens, false), adapted = run_documents(tokens, true);
  for (int64_t p : {0, 4, 50, 54}) EXPECT_EQ(adapted.losses.at(p), plain.losses.at(p)) << p;  // first chunks
  EXPECT_NE(adapted.losses.at(12), plain.losses.at(12));
  EXPECT_NE(adapted.losses.at(70), plain.losses.at(70));
  for (int64_t t : {20, 44, 71}) {
    std::vector<uint16_t> changed = tokens;
    for (size_t i = static_cast<size_t>(t) + 2; i < changed.size(); ++i)
      if (changed[i] != kBosToken) changed[i] = static_cast<uint16_t>((changed[i] * 7 + 3) % 1024 | 2);
    const LoraRun other = run_documents(changed, true);
    for (int64_t p = 0; p <= t; ++p) EXPECT_EQ(other.losses.at(p), adapted.losses.at(p)) << "t " << t << ", target " << p;
    EXPECT_NE(other.losses.at(t + 1), adapted.losses.at(t + 1));
  }
  // A document's numbers never depend on the one before it.
  std::vector<uint16_t> other_first = tokens;
  for (size_t i = 1; i < 50; ++i) other_first[i] = static_cast<uint16_t>((tokens[i] * 5 + 11) % 1024 | 2);
  const LoraRun other = run_documents(other_first, true);
  for (size_t p = 50; p < 96; ++p) EXPECT_EQ(other.losses.at(p), adapted.losses.at(p)) << p;
}

// On a document that repeats itself, the adapters learn it: later chunks score lower.
TEST(Eval, LoraTestTimeTrainingLearnsARepeatedDocument) {
  std::vector<uint16_t> tokens = sample_val_tokens();
  tokens.resize(12);
  tokens[0] = kBosToken;
  while (tokens.size() < 6 * 16 + 1) tokens.push_back(tokens[tokens.size() - 11] == kBosToken ? 5 : tokens[tokens.size() - 11]);
  const LoraRun plain = run_documents(tokens, false), adapted = run_documents(tokens, true, 0.02);
  std::printf("repeated document: val_loss %.4f without adapting, %.4f with LoRA\n", plain.result.val_loss,
              adapted.result.val_loss);
  EXPECT_LT(adapted.result.val_loss, plain.result.val_loss - 0.3);
}

// The gradient of a window's last targets is loss_and_gradient's over a window that scores all of them.
TEST(Eval, SuffixGradientIsTheWholeWindowsWhenEveryTargetIsScored) {
  const ModelConfig config = test::tiny_config();
  const Model<double> model(config, test::random_params<double>(config, 3));
  const std::vector<uint16_t> tokens = test::random_tokens(17, config.vocab, 4);
  const TokenWindow window(tokens);
  ModelParams<double> suffix, whole;
  const std::vector<double> losses = model.suffix_losses(window, 16, &suffix);
  const double loss = model.loss_and_gradient(std::span(&window, 1), whole, 1);
  EXPECT_NEAR(std::accumulate(losses.begin(), losses.end(), 0.0) / 16, loss, 1e-12);
  const auto a = named_tensors(suffix), b = named_tensors(whole);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT((*a[i].second - *b[i].second).norm(), 1e-12) << a[i].first;
  // Scoring the last 4: the earlier targets' share is gone, and the gradient is theirs alone.
  ModelParams<double> tail;
  model.suffix_losses(window, 4, &tail);
  EXPECT_GT((tail.tok_emb - whole.tok_emb).norm(), 1e-6);
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
