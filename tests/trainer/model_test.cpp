#include "trainer/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using test::random_params;
using test::random_tokens;
using test::tiny_config;

// Windows of seq_len + 1 tokens cut from one token stream, as the trainer batches them.
std::vector<TokenWindow> windows_of(const std::vector<uint16_t>& tokens, int batch, int seq_len) {
  std::vector<TokenWindow> windows;
  for (int b = 0; b < batch; ++b) windows.push_back(std::span(tokens).subspan(b * seq_len, seq_len + 1));
  return windows;
}

template <typename T>
double mean_loss(const Model<T>& model, std::span<const TokenWindow> windows) {
  std::vector<double> losses = model.token_losses(windows, 1);
  return std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
}

// Central differences in double against the backward, on sampled elements of every tensor.
// The loss is only known to about 1e-15 relative, so a difference quotient is good to about
// 1e-10 absolute: the relative check takes elements whose gradient is at least 1e-3, and
// uniformly sampled elements (small gradients included) must agree to 1e-9 absolute.
void check_gradient_by_finite_differences(const ModelConfig& config) {
  Model<double> model(config, random_params<double>(config, 7));
  std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, config.vocab, 8);
  tokens[5] = tokens[21] = kBosToken;  // documents start inside the windows
  const auto windows = windows_of(tokens, 2, 16);
  ModelParams<double> grad;
  const double loss = model.loss_and_gradient(windows, grad, 2);
  EXPECT_NEAR(loss, mean_loss(model, windows), 1e-12);
  if (config.mtp_heads == 0) EXPECT_NEAR(model.objective(windows, 2), loss, 1e-12);

  std::vector<const Matrix<double>*> grads;
  for_each_parameter(grad, [&](const std::string&, const Matrix<double>& m, const std::vector<int64_t>&) {
    grads.push_back(&m);
  });
  std::mt19937_64 rng(9);
  size_t tensor = 0;
  double worst_relative = 0;
  for_each_parameter(model.params(), [&](const std::string& name, Matrix<double>& m, const std::vector<int64_t>&) {
    const auto analytic = grads[tensor++]->reshaped<Eigen::RowMajor>();
    auto weights = m.reshaped<Eigen::RowMajor>();
    auto numeric = [&](Eigen::Index i) {
      const double saved = weights(i), h = 1e-5;
      weights(i) = saved + h;
      const double up = model.objective(windows, 1);
      weights(i) = saved - h;
      const double down = model.objective(windows, 1);
      weights(i) = saved;
      return (up - down) / (2 * h);
    };
    std::vector<Eigen::Index> large;
    for (Eigen::Index i = 0; i < analytic.size(); ++i)
      if (std::abs(analytic(i)) >= 1e-3) large.push_back(i);
    ASSERT_GE(large.size(), 1u) << name << " has no gradient of 1e-3 or more";
    for (int sample = 0; sample < 8; ++sample) {
      const Eigen::Index i = large[rng() % large.size()];
      const double n = numeric(i), a = analytic(i);
      const double relative = std::abs(n - a) / std::max(std::abs(n), std::abs(a));
      worst_relative = std::max(worst_relative, relative);
      EXPECT_LT(relative, 1e-6) << name << "[" << i << "]: numeric " << n << ", analytic " << a;
    }
    for (int sample = 0; sample < 4; ++sample) {
      const auto i = static_cast<Eigen::Index>(rng() % static_cast<uint64_t>(analytic.size()));
      EXPECT_NEAR(numeric(i), analytic(i), 1e-9) << name << "[" << i << "]";
    }
  });
  EXPECT_EQ(tensor, static_cast<size_t>(1 + 10 * config.layers + 1 + (config.smear_v1() ? 1 : config.smear_v2() ? 2 : 0) +
                                        (config.bigram_buckets > 0 ? 3 : 0) + config.mtp_heads +
                                        (config.parallel_from > 0 ? config.layers - config.parallel_from : 0)));
  std::printf("%s: worst relative error %.2e\n", config.describe().c_str(), worst_relative);
}

TEST(Model, GradientMatchesFiniteDifferencesForEveryTensor) { check_gradient_by_finite_differences(tiny_config()); }

// LeakyReLU(0.5)²: its own gradient check, and a different loss from relu² on the same weights.
TEST(Model, LeakyReluSquaredGradientMatchesFiniteDifferences) {
  ModelConfig leaky = tiny_config();
  leaky.mlp_negative_slope = 0.5;
  check_gradient_by_finite_differences(leaky);
  const ModelConfig relu = tiny_config();
  const auto params = random_params<double>(relu, 3);
  const std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, relu.vocab, 4);
  const auto windows = windows_of(tokens, 2, 16);
  EXPECT_NE(mean_loss(Model<double>(relu, params), windows), mean_loss(Model<double>(leaky, params), windows));
}

// The seed's model (partial RoPE, SmearGate v1, BigramHash) at the tiny size.
ModelConfig tiny_seed_config() {
  ModelConfig c = tiny_config();
  c.rope_dims = 4;  // of 8
  c.smear_gate = SmearGate::kV1;
  c.bigram_buckets = 16;
  c.bigram_dim = 8;
  return c;
}

TEST(Model, SeedTechniquesGradientMatchesFiniteDifferences) { check_gradient_by_finite_differences(tiny_seed_config()); }

// SmearGate v2, masked at BOS and not, alone and over BigramHash; the windows hold BOS tokens.
TEST(Model, SmearGateV2GradientMatchesFiniteDifferences) {
  for (SmearGate gate : {SmearGate::kV2, SmearGate::kV2Unmasked}) {
    ModelConfig c = tiny_seed_config();
    c.smear_gate = gate;
    check_gradient_by_finite_differences(c);
    c.bigram_buckets = c.bigram_dim = 0;
    check_gradient_by_finite_differences(c);
  }
}

// XSA on the last block and on every block (GQA: two heads share each value vector).
TEST(Model, XsaGradientMatchesFiniteDifferences) {
  for (int layers : {1, 3}) {
    ModelConfig c = tiny_config();
    c.xsa_layers = layers;
    check_gradient_by_finite_differences(c);
  }
  ModelConfig c = tiny_seed_config();
  c.xsa_layers = 2;
  check_gradient_by_finite_differences(c);
}

// XSA changes the model; 0 layers is the plain model; more layers than the model has is refused.
TEST(Model, XsaChangesTheModel) {
  const ModelConfig plain = tiny_config();
  ModelConfig all = plain;
  all.xsa_layers = plain.layers;
  const auto params = random_params<double>(plain, 9);
  const std::vector<uint16_t> tokens = random_tokens(17, plain.vocab, 10);
  const std::vector<TokenWindow> windows{tokens};
  EXPECT_NE(mean_loss(Model<double>(plain, params), windows), mean_loss(Model<double>(all, params), windows));
  ModelConfig none = plain;
  none.xsa_layers = 0;
  EXPECT_EQ(mean_loss(Model<double>(plain, params), windows), mean_loss(Model<double>(none, params), windows));
  ModelConfig too_many = plain;
  too_many.xsa_layers = 4;
  EXPECT_NE(test::input_error([&] { too_many.validate(); }).find("XSA on the last 4 layers of 3"), std::string::npos);
}

// v2 with zero λ is the model without SmearGate; the BOS mask changes the loss only when a window
// holds a BOS after its first position.
TEST(Model, SmearGateV2IsMaskedAtBos) {
  ModelConfig masked = tiny_config();
  masked.smear_gate = SmearGate::kV2;
  ModelConfig unmasked = masked;
  unmasked.smear_gate = SmearGate::kV2Unmasked;
  ModelParams<double> params = random_params<double>(masked, 5);
  std::vector<uint16_t> tokens = random_tokens(17, masked.vocab, 6);
  for (uint16_t& t : tokens) t = t == kBosToken ? 2 : t;
  const std::vector<TokenWindow> windows{tokens};
  EXPECT_EQ(mean_loss(Model<double>(masked, params), windows), mean_loss(Model<double>(unmasked, params), windows));
  tokens[8] = kBosToken;
  EXPECT_NE(mean_loss(Model<double>(masked, params), windows), mean_loss(Model<double>(unmasked, params), windows));
  ModelParams<double> zero = params;
  zero.smear_lambda.setZero();
  ModelParams<double> none = params;
  none.smear_gate.resize(0, 0), none.smear_lambda.resize(0, 0);
  EXPECT_EQ(mean_loss(Model<double>(masked, zero), windows), mean_loss(Model<double>(tiny_config(), none), windows));
}

// Each technique changes the loss on its own; partial RoPE over the whole head is plain RoPE.
TEST(Model, EachSeedTechniqueChangesTheModel) {
  const ModelConfig seed = tiny_seed_config();
  const auto params = random_params<double>(seed, 3);
  const std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, seed.vocab, 4);
  const auto windows = windows_of(tokens, 2, 16);
  const double all = mean_loss(Model<double>(seed, params), windows);
  ModelConfig whole_head = seed;
  whole_head.rope_dims = seed.head_dim();
  ModelConfig no_rope_dims = seed;
  no_rope_dims.rope_dims = 0;
  EXPECT_NE(mean_loss(Model<double>(whole_head, params), windows), all);
  EXPECT_EQ(mean_loss(Model<double>(whole_head, params), windows), mean_loss(Model<double>(no_rope_dims, params), windows));
  ModelParams<double> no_smear = params;
  no_smear.smear_gate.resize(0, 0);
  ModelConfig without_smear = seed;
  without_smear.smear_gate = SmearGate::kNone;
  EXPECT_NE(mean_loss(Model<double>(without_smear, no_smear), windows), all);
  // A zero bigram scale is the model without BigramHash.
  ModelParams<double> zero_scale = params;
  zero_scale.bigram_scale.setZero();
  ModelParams<double> no_bigram = params;
  no_bigram.bigram_embed.resize(0, 0), no_bigram.bigram_proj.resize(0, 0), no_bigram.bigram_scale.resize(0, 0);
  ModelConfig without_bigram = seed;
  without_bigram.bigram_buckets = without_bigram.bigram_dim = 0;
  EXPECT_NE(mean_loss(Model<double>(seed, zero_scale), windows), all);
  EXPECT_EQ(mean_loss(Model<double>(seed, zero_scale), windows),
            mean_loss(Model<double>(without_bigram, no_bigram), windows));
}

// The records' hash in int32: independent arithmetic in int64, wrapped by hand, floor remainder.
TEST(Model, BigramBucketsFollowTheRecordsHash) {
  auto int32_wrap = [](int64_t v) { return ((v + (int64_t{1} << 31)) % (int64_t{1} << 32) + (int64_t{1} << 32)) % (int64_t{1} << 32) - (int64_t{1} << 31); };
  const std::vector<uint16_t> ids = {5, 7, 1023, 0, 65535, 60000, 3};
  for (int buckets : {2, 4096, 2816}) {
    const std::vector<uint16_t> got = bigram_buckets_of(ids, buckets);
    ASSERT_EQ(got.size(), ids.size());
    EXPECT_EQ(got[0], buckets - 1);
    for (size_t t = 1; t < ids.size(); ++t) {
      const int64_t mixed = int32_wrap(36313 * int64_t{ids[t]}) ^ int32_wrap(27191 * int64_t{ids[t - 1]});
      const int64_t m = buckets - 1;
      EXPECT_EQ(got[t], ((mixed % m) + m) % m) << "position " << t << ", buckets " << buckets;
    }
  }
  EXPECT_EQ(bigram_buckets_of(std::vector<uint16_t>{5, 7}, 4096)[1], (36313 * 7 ^ 27191 * 5) % 4095);
}

// Changing token p changes the logits at p and after, never before.
template <typename T>
void check_causality(const ModelConfig& config) {
  const Model<T> model(config, random_params<T>(config, 11));
  std::vector<uint16_t> inputs = random_tokens(24, config.vocab, 12);
  const Matrix<T> before = model.logits(inputs);
  const int p = 13;
  inputs[p] = static_cast<uint16_t>((inputs[p] + 1) % config.vocab);
  const Matrix<T> after = model.logits(inputs);
  for (int t = 0; t < p; ++t) EXPECT_TRUE(before.row(t) == after.row(t)) << "position " << t;
  for (int t = p; t < 24; ++t) EXPECT_GT((before.row(t) - after.row(t)).norm(), 0) << "position " << t;
}

TEST(Model, LaterTokensNeverChangeEarlierLogits) {
  check_causality<float>(tiny_config());
  check_causality<double>(tiny_config());
  check_causality<double>(tiny_seed_config());
}

// GQA is the same model as full attention with each KV head repeated for its query heads.
TEST(Model, GroupedQueryAttentionEqualsRepeatedKvHeads) {
  const ModelConfig config = tiny_config();
  const ModelParams<double> grouped = random_params<double>(config, 21);
  ModelConfig full_config = config;
  full_config.kv_heads = config.heads;
  ModelParams<double> full = grouped;
  const int d = config.head_dim(), group = config.heads / config.kv_heads;
  for (size_t i = 0; i < grouped.blocks.size(); ++i) {
    full.blocks[i].c_k.resize(config.heads * d, config.dim);
    full.blocks[i].c_v.resize(config.heads * d, config.dim);
    for (int h = 0; h < config.heads; ++h) {
      full.blocks[i].c_k.middleRows(h * d, d) = grouped.blocks[i].c_k.middleRows(h / group * d, d);
      full.blocks[i].c_v.middleRows(h * d, d) = grouped.blocks[i].c_v.middleRows(h / group * d, d);
    }
  }
  const std::vector<uint16_t> inputs = random_tokens(20, config.vocab, 22);
  const Matrix<double> a = Model<double>(config, grouped).logits(inputs);
  const Matrix<double> b = Model<double>(full_config, full).logits(inputs);
  EXPECT_LT((a - b).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_GT(a.cwiseAbs().maxCoeff(), 1.0);
}

TEST(Model, FloatAndDoubleAgree) {
  const ModelConfig config = tiny_config();
  const auto tensors = params_to_tensors(random_params<double>(config, 31));
  const Model<float> single(config, params_from_tensors<float>(config, tensors));
  const Model<double> twice(config, params_from_tensors<double>(config, tensors));
  const std::vector<uint16_t> tokens = random_tokens(3 * 16 + 1, config.vocab, 32);
  const auto windows = windows_of(tokens, 3, 16);

  const Matrix<float> logits = single.logits(std::span(tokens).first(16));
  const Matrix<double> reference = twice.logits(std::span(tokens).first(16));
  EXPECT_LT((logits.cast<double>() - reference).cwiseAbs().maxCoeff(), 1e-4 * reference.cwiseAbs().maxCoeff());

  ModelParams<float> g_single;
  ModelParams<double> g_twice;
  EXPECT_NEAR(single.loss_and_gradient(windows, g_single, 2), twice.loss_and_gradient(windows, g_twice, 2), 1e-5);
  const auto a = params_to_tensors(g_single), b = params_to_tensors(g_twice);
  for (const auto& [name, t] : b) {
    const auto& f = a.at(name).values;
    double diff = 0, norm = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      diff += (double(f[i]) - t.values[i]) * (double(f[i]) - t.values[i]);
      norm += double(t.values[i]) * t.values[i];
    }
    EXPECT_LT(std::sqrt(diff), 1e-3 * std::sqrt(norm)) << name;
  }
}

TEST(Model, ThreadCountDoesNotChangeTheResult) {
  const ModelConfig config = tiny_config();
  const Model<double> model(config, random_params<double>(config, 41));
  const std::vector<uint16_t> tokens = random_tokens(3 * 12 + 1, config.vocab, 42);
  const auto windows = windows_of(tokens, 3, 12);
  ModelParams<double> one, two;
  EXPECT_NEAR(model.loss_and_gradient(windows, one, 1), model.loss_and_gradient(windows, two, 2), 1e-13);
  const auto a = params_to_tensors(one), b = params_to_tensors(two);
  for (const auto& [name, t] : a)
    for (size_t i = 0; i < t.values.size(); ++i) ASSERT_NEAR(t.values[i], b.at(name).values[i], 1e-7) << name;
  EXPECT_EQ(model.token_losses(windows, 1), model.token_losses(windows, 2));
}

TEST(Model, InitFollowsTheReference) {
  ModelConfig config = tiny_config();
  config.vocab = 1024;
  const ModelParams<double> p = init_params<double>(config, 1337);
  const double std = std::sqrt(p.tok_emb.squaredNorm() / static_cast<double>(p.tok_emb.size()));
  EXPECT_NEAR(std, 0.005, 0.0002);
  EXPECT_NEAR(p.tok_emb.mean(), 0.0, 0.0001);
  for (const auto& b : p.blocks) {
    EXPECT_EQ(b.attn_proj.norm(), 0.0);
    EXPECT_EQ(b.mlp_proj.norm(), 0.0);
    EXPECT_LE(b.c_q.cwiseAbs().maxCoeff(), 1 / std::sqrt(32.0));
    EXPECT_GT(b.c_q.cwiseAbs().maxCoeff(), 0.9 / std::sqrt(32.0));
    EXPECT_LE(b.mlp_fc.cwiseAbs().maxCoeff(), 1 / std::sqrt(32.0));
    EXPECT_TRUE((b.q_gain.array() == 1.5).all());
    EXPECT_TRUE((b.attn_scale.array() == 1).all() && (b.mlp_scale.array() == 1).all());
    EXPECT_TRUE((b.resid_mix.row(0).array() == 1).all() && (b.resid_mix.row(1).array() == 0).all());
  }
  EXPECT_TRUE((p.skip_weights.array() == 1).all());
  EXPECT_EQ(p.skip_weights.rows(), 1);
  EXPECT_TRUE(init_params<double>(config, 1337).tok_emb == p.tok_emb);
  EXPECT_FALSE(init_params<double>(config, 1338).tok_emb == p.tok_emb);
}

// The checkpoint round trip and the errors that name what is wrong.
TEST(ModelParams, TensorsRoundTripAndBadTensorsAreNamed) {
  const ModelConfig config = tiny_config();
  const auto tensors = params_to_tensors(random_params<float>(config, 51));
  EXPECT_EQ(tensors.size(), 32u);
  const ModelConfig read = ModelConfig::from_tensors(tensors);
  EXPECT_EQ(read.describe(), config.describe());
  EXPECT_EQ(params_to_tensors(params_from_tensors<float>(read, tensors)).at("blocks.2.mlp.fc.weight").values,
            tensors.at("blocks.2.mlp.fc.weight").values);

  auto missing = tensors;
  missing.erase("blocks.1.attn.c_v.weight");
  std::string message = test::input_error([&] { params_from_tensors<float>(config, missing); });
  EXPECT_NE(message.find("missing tensor blocks.1.attn.c_v.weight"), std::string::npos) << message;
  missing = tensors;
  missing.erase("tok_emb.weight");
  message = test::input_error([&] { ModelConfig::from_tensors(missing); });
  EXPECT_NE(message.find("missing tensor tok_emb.weight"), std::string::npos) << message;

  auto wrong = tensors;
  wrong["blocks.2.mlp.proj.weight"].shape = {64, 32};
  message = test::input_error([&] { params_from_tensors<float>(config, wrong); });
  EXPECT_NE(message.find("blocks.2.mlp.proj.weight: expected shape [32, 64], got [64, 32]"), std::string::npos)
      << message;
  wrong = tensors;
  wrong["blocks.0.attn.c_k.weight"].shape = {12, 32};
  message = test::input_error([&] { ModelConfig::from_tensors(wrong); });
  EXPECT_NE(message.find("blocks.0.attn.c_k.weight"), std::string::npos) << message;

  auto extra = tensors;
  extra["bigram.weight"] = {{2}, {0, 0}};
  message = test::input_error([&] { params_from_tensors<float>(config, extra); });
  EXPECT_NE(message.find("unexpected tensor bigram.weight"), std::string::npos) << message;
}

// SmearGate and BigramHash under Parameter Golf's names (bigram.scale 0-D), read back off the
// tensors alone; a SmearGate tensor in a model without one is named.
TEST(ModelParams, SeedTensorsRoundTripUnderParameterGolfNames) {
  ModelConfig config = tiny_seed_config();
  config.rope_dims = 0;  // not in the tensors: the metadata carries it
  const auto tensors = params_to_tensors(random_params<float>(config, 52));
  EXPECT_EQ(tensors.size(), 36u);
  EXPECT_EQ(tensors.at("smear.gate").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(tensors.at("bigram.embed.weight").shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(tensors.at("bigram.proj.weight").shape, (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(tensors.at("bigram.scale").shape.empty());
  const ModelConfig read = ModelConfig::from_tensors(tensors);
  EXPECT_EQ(read.describe(), config.describe());
  EXPECT_EQ(params_to_tensors(params_from_tensors<float>(read, tensors)).at("bigram.scale").values,
            tensors.at("bigram.scale").values);
  const std::string message = test::input_error([&] { params_from_tensors<float>(tiny_config(), tensors); });
  EXPECT_NE(message.find("unexpected tensor"), std::string::npos) << message;
  EXPECT_TRUE(params_to_tensors(init_params<float>(config, 1)).at("bigram.scale").values == std::vector<float>{0.05f});
  // v2: its names; the mask travels in the metadata.
  ModelConfig v2 = config;
  v2.smear_gate = SmearGate::kV2Unmasked;
  const auto v2_tensors = params_to_tensors(random_params<float>(v2, 53));
  EXPECT_EQ(v2_tensors.at("smear_gate.weight").shape, (std::vector<int64_t>{1, kSmearWindow}));
  EXPECT_TRUE(v2_tensors.at("smear_lambda").shape.empty());
  EXPECT_FALSE(v2_tensors.contains("smear.gate"));
  EXPECT_EQ(ModelConfig::from_tensors(v2_tensors).smear_gate, SmearGate::kV2);
  const auto recorded = recorded_settings(recorded_metadata(v2, 64));
  EXPECT_EQ(with_recorded(ModelConfig::from_tensors(v2_tensors), recorded).describe(), v2.describe());
  // The bf16 RoPE table travels in the metadata too, and changes the model's losses.
  ModelConfig bf16_rope = v2;
  bf16_rope.rope_rounding = RopeRounding::kBf16;
  auto bf16_metadata = recorded_metadata(bf16_rope, 64);
  EXPECT_EQ(bf16_metadata.at("pgolf.rope_table"), "bf16");
  EXPECT_EQ(with_recorded(ModelConfig::from_tensors(v2_tensors), recorded_settings(bf16_metadata)).describe(),
            bf16_rope.describe());
  EXPECT_NE(bf16_rope.describe(), v2.describe());
  const auto v2_params = random_params<double>(v2, 54);
  const std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, v2.vocab, 55);
  const auto windows = windows_of(tokens, 2, 16);
  EXPECT_NE(mean_loss(Model<double>(v2, v2_params), windows), mean_loss(Model<double>(bf16_rope, v2_params), windows));
  bf16_metadata["pgolf.rope_table"] = "fp8";
  EXPECT_NE(test::input_error([&] { recorded_settings(bf16_metadata); }).find("pgolf.rope_table"), std::string::npos);
  ModelConfig wide = config;
  wide.rope_dims = 10;
  EXPECT_NE(test::input_error([&] { wide.validate(); }).find("partial RoPE"), std::string::npos);
  ModelConfig empty_table = config;
  empty_table.bigram_dim = 0;
  EXPECT_NE(test::input_error([&] { empty_table.validate(); }).find("BigramHash"), std::string::npos);
}

// Depth recurrence: the records' order (loop 3-5, three passes, 17 virtual layers, 8 skips) and,
// before the loop starts, the plain stack with the first skips.
TEST(ModelConfig, LoopedBlocksRunInTheRecordsOrder) {
  ModelConfig c = tiny_config();
  c.layers = 11, c.loop_first = 3, c.loop_last = 5, c.loops = 3;
  EXPECT_EQ(c.block_order(), (std::vector<int>{0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(c.encoder_layers(), 8);
  EXPECT_EQ(c.skip_count(), 8);
  c.looping = false;
  EXPECT_EQ(c.virtual_layers(), 11);
  EXPECT_EQ(c.skips_now(), 5);
  EXPECT_EQ(c.skip_count(), 8);
  ModelConfig outside = c;
  outside.loop_last = 11;
  EXPECT_NE(test::input_error([&] { outside.validate(); }).find("loop range 3..11 is outside the 11 layers"),
            std::string::npos);
  EXPECT_EQ(parse_loop_range("3..5"), std::make_pair(3, 5));
  for (const char* bad : {"5..3", "3-5", "3..", "..5", "a..b", "-1..2"})
    EXPECT_NE(test::input_error([&] { parse_loop_range(bad); }).find("loop layers"), std::string::npos) << bad;
}

// Gradient checks of both forms: a looped range inside the stack, and PR #212's shared blocks
// (the whole stack looped).
TEST(Model, LoopedBlocksGradientMatchesFiniteDifferences) {
  ModelConfig range = tiny_config();
  range.layers = 3, range.loop_first = 1, range.loop_last = 1, range.loops = 3;
  check_gradient_by_finite_differences(range);
  ModelConfig shared = tiny_config();
  shared.layers = 2, shared.loop_first = 0, shared.loop_last = 1, shared.loops = 2;
  check_gradient_by_finite_differences(shared);
}

// Two shared blocks looped twice are the 4-block stack whose blocks 2 and 3 are copies of 0 and 1:
// the same losses, and each shared block's gradient is the sum of its copies'. Not looping, they
// are the plain 2-block stack with the first skip.
TEST(Model, SharedBlocksAreTheUnrolledStackWithTiedWeights) {
  ModelConfig shared = tiny_config();
  shared.layers = 2, shared.loop_first = 0, shared.loop_last = 1, shared.loops = 2;
  const auto params = random_params<double>(shared, 61);
  ModelConfig unrolled = tiny_config();
  unrolled.layers = 4;
  ModelParams<double> copies = zero_params<double>(unrolled);
  copies.tok_emb = params.tok_emb;
  copies.skip_weights = params.skip_weights;
  for (int b = 0; b < 4; ++b) copies.blocks[b] = params.blocks[b % 2];
  const std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, shared.vocab, 62);
  const auto windows = windows_of(tokens, 2, 16);
  const Model<double> looped(shared, params), flat(unrolled, copies);
  EXPECT_NEAR(mean_loss(looped, windows), mean_loss(flat, windows), 1e-12);
  ModelParams<double> g_looped, g_flat;
  looped.loss_and_gradient(windows, g_looped, 1);
  flat.loss_and_gradient(windows, g_flat, 1);
  for (int b = 0; b < 2; ++b) {
    EXPECT_LT((g_looped.blocks[b].c_q - g_flat.blocks[b].c_q - g_flat.blocks[b + 2].c_q).norm(),
              1e-12 * (1 + g_looped.blocks[b].c_q.norm()));
    EXPECT_LT((g_looped.blocks[b].resid_mix - g_flat.blocks[b].resid_mix - g_flat.blocks[b + 2].resid_mix).norm(),
              1e-12 * (1 + g_looped.blocks[b].resid_mix.norm()));
  }
  EXPECT_LT((g_looped.skip_weights - g_flat.skip_weights).norm(), 1e-12);
  ModelConfig not_looping = shared;
  not_looping.looping = false;
  ModelConfig plain = tiny_config();
  plain.layers = 2;
  ModelParams<double> plain_params = params;
  plain_params.skip_weights = params.skip_weights.topRows(1);
  EXPECT_NEAR(mean_loss(Model<double>(not_looping, params), windows), mean_loss(Model<double>(plain, plain_params), windows),
              1e-12);
  // The loop travels in the metadata; the tensors alone cannot tell it.
  const auto tensors = params_to_tensors(params);
  const auto recorded = recorded_settings(recorded_metadata(shared, 64));
  EXPECT_EQ(with_recorded(ModelConfig::from_tensors(tensors), recorded).describe(), shared.describe());
  auto metadata = recorded_metadata(shared, 64);
  EXPECT_EQ(metadata.at("pgolf.loop_layers"), "0..1");
  metadata.erase("pgolf.loop_layers");
  EXPECT_NE(test::input_error([&] { recorded_settings(metadata); }).find("pgolf.loops without pgolf.loop_layers"),
            std::string::npos);
}

// Multi-token prediction: two heads (t+2, t+3) at weight 0.3 on the seed's model; the objective
// is the main loss plus theirs, the reported loss the main one, and the heads are not exported.
TEST(Model, MultiTokenHeadsGradientMatchesFiniteDifferences) {
  ModelConfig mtp = tiny_seed_config();
  mtp.mtp_heads = 2, mtp.mtp_weight = 0.3;
  check_gradient_by_finite_differences(mtp);
  const auto params = random_params<double>(mtp, 71);
  const Model<double> model(mtp, params);
  const std::vector<uint16_t> tokens = random_tokens(2 * 16 + 1, mtp.vocab, 72);
  const auto windows = windows_of(tokens, 2, 16);
  ModelConfig plain = mtp;
  plain.mtp_heads = 0;
  ModelParams<double> without = params;
  without.mtp.clear();
  const double main_loss = mean_loss(Model<double>(plain, without), windows);
  EXPECT_NEAR(mean_loss(model, windows), main_loss, 1e-12);
  EXPECT_GT(model.objective(windows, 1), main_loss + 0.1);
  const auto tensors = params_to_tensors(params);
  EXPECT_TRUE(tensors.contains("mtp.1.weight"));
  EXPECT_FALSE(exported_tensor("mtp.1.weight"));
  EXPECT_TRUE(exported_tensor("blocks.0.mlp.fc.weight"));
  ModelConfig one_weightless = mtp;
  one_weightless.mtp_weight = 0;
  EXPECT_NE(test::input_error([&] { one_weightless.validate(); }).find("multi-token heads"), std::string::npos);
}

// Parallel residual lanes: from the first decoder block (which takes a skip before the lanes split),
// with a later lane block that takes one into both lanes; over the seed's techniques with XSA; and
// after a looped range.
TEST(Model, ParallelLanesGradientMatchesFiniteDifferences) {
  ModelConfig c = tiny_config();
  c.layers = 4, c.parallel_from = 2;
  check_gradient_by_finite_differences(c);
  ModelConfig seed = tiny_seed_config();
  seed.parallel_from = 1, seed.xsa_layers = 1;
  check_gradient_by_finite_differences(seed);
  ModelConfig looped = tiny_config();
  looped.layers = 4, looped.loop_first = 1, looped.loop_last = 1, looped.loops = 2, looped.parallel_from = 2;
  check_gradient_by_finite_differences(looped);
}

// The lanes change the model and travel as "blocks.N.lanes" (the tensors tell where they start);
// they start in the decoder half, after the loop, inside the stack.
TEST(Model, ParallelLanesChangeTheModelAndTravelWithItsTensors) {
  ModelConfig serial = tiny_config();
  serial.layers = 4;
  ModelConfig lanes = serial;
  lanes.parallel_from = 3;
  const auto params = init_params<double>(lanes, 5);
  EXPECT_EQ(params.blocks[3].lanes, (Matrix<double>(3, 2) << 1.1, 1.1, 1, 1, 1, 1).finished());
  EXPECT_EQ(params.blocks[2].lanes.size(), 0);
  ModelParams<double> serial_params = params;
  serial_params.blocks[3].lanes.resize(0, 0);
  const std::vector<uint16_t> tokens = random_tokens(17, serial.vocab, 6);
  const std::vector<TokenWindow> windows{tokens};
  EXPECT_NE(mean_loss(Model<double>(serial, serial_params), windows), mean_loss(Model<double>(lanes, params), windows));
  const auto tensors = params_to_tensors(params);
  EXPECT_EQ(tensors.at("blocks.3.lanes").shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(ModelConfig::from_tensors(tensors).parallel_from, 3);
  EXPECT_NE(lanes.describe().find("parallel lanes from block 3"), std::string::npos);
  auto missing = tensors;
  missing.erase("blocks.3.lanes");
  EXPECT_EQ(ModelConfig::from_tensors(missing).parallel_from, 0);
  EXPECT_NE(test::input_error([&] { params_from_tensors<double>(lanes, missing); }).find("missing tensor blocks.3.lanes"),
            std::string::npos);
  for (auto [from, loop_last] : {std::pair{1, 0}, {4, 0}, {2, 2}}) {
    ModelConfig bad = serial;
    bad.parallel_from = from;
    if (loop_last > 0) bad.loop_first = 1, bad.loop_last = loop_last, bad.loops = 2;
    EXPECT_NE(test::input_error([&] { bad.validate(); }).find("parallel lanes from block " + std::to_string(from)),
              std::string::npos) << from;
  }
}

TEST(Model, TokensOutsideTheVocabAreRefused) {
  const ModelConfig config = tiny_config();
  const Model<float> model(config, init_params<float>(config, 1));
  std::vector<uint16_t> tokens = {1, 2, 64};
  std::vector<TokenWindow> windows = {tokens};
  EXPECT_NE(test::input_error([&] { model.token_losses(windows, 1); }).find("token id 64"), std::string::npos);
}

}  // namespace
}  // namespace pgolf
