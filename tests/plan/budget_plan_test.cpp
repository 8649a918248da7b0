// compress --auto's planner on a slice of the real base9 checkpoint: it fits, beats every
// uniform candidate that fits, follows sensitivities and the user's rules, and says when a
// budget cannot be reached.
#include "plan/budget_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "core/error.h"
#include "plan/plan.h"
#include "support/base9_subset.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

const std::vector<std::string> kCandidates = {"int4", "int5", "int6", "int8", "int5:clip=mse"};

// Four matrices and two control tensors of base9 (bf16), written to a TempDir.
Checkpoint base9_slice(const test::TempDir& dir) {
  return Checkpoint::open({test::base9_subset(dir,
                                              {"blocks.0.attn.c_q.weight", "blocks.0.attn.c_k.weight",
                                               "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight",
                                               "blocks.0.attn.q_gain", "skip_weights"},
                                              "slice.safetensors")});
}

double quantized_sq_error(const CompressResult& r) {
  double e = 0;
  for (const auto& t : r.tensors)
    if (t.quantized) e += t.distortion.sum_sq_error;
  return e;
}

BudgetPlanOptions with_candidates() {
  BudgetPlanOptions options;
  options.candidates = kCandidates;
  return options;
}

TEST(BudgetPlan, FitsAndBeatsEveryUniformCandidateThatFits) {
  test::TempDir dir;
  auto ckpt = base9_slice(dir);
  auto zstd = make_byte_codec("zstd:3");
  std::vector<std::pair<uint64_t, double>> uniform;  // bytes, squared error
  for (const auto& spec : kCandidates) {
    auto r = compress_checkpoint(ckpt, Plan(spec, {}).specs_for(ckpt), *zstd);
    uniform.push_back({r.bytes.size(), quantized_sq_error(r)});
  }
  // Budgets a little above each uniform int-N size, so that an estimate a little off cannot
  // shut a uniform choice out.
  for (size_t u : {0, 1, 2}) {
    uint64_t budget = static_cast<uint64_t>(static_cast<double>(uniform[u].first) * 1.02);
    SCOPED_TRACE("budget " + std::to_string(budget));
    auto plan = plan_for_budget(ckpt, budget, *zstd, with_candidates());
    EXPECT_LE(plan.artifact.bytes.size(), budget);
    double best_uniform = INFINITY;
    for (const auto& [bytes, error] : uniform)
      if (bytes <= budget) best_uniform = std::min(best_uniform, error);
    EXPECT_LE(quantized_sq_error(plan.artifact), best_uniform);

    // Every quantized tensor was chosen for, and the artifact holds the chosen specs.
    ASSERT_EQ(plan.tensors.size(), 4u);
    auto decoded = decode_artifact(plan.artifact.bytes, "mem");
    for (const auto& choice : plan.tensors) {
      EXPECT_NE(std::find(kCandidates.begin(), kCandidates.end(), choice.spec), kCandidates.end());
      for (const auto& t : decoded.tensors) {
        if (t.name == choice.name) {
          EXPECT_EQ(t.codec, choice.spec);
        }
      }
    }
    for (const auto& t : decoded.tensors) {
      if (t.name == "skip_weights" || t.name == "blocks.0.attn.q_gain") {
        EXPECT_EQ(t.codec, "fp32");
      }
    }
  }
}

// Under zstd's top level the order-0 entropy estimate is close enough to fit at the first try.
TEST(BudgetPlan, EntropyEstimateMatchesZstd22) {
  test::TempDir dir;
  auto ckpt = base9_slice(dir);
  auto zstd = make_byte_codec("zstd:22");
  uint64_t budget = compress_checkpoint(ckpt, Plan("int5", {}).specs_for(ckpt), *zstd).bytes.size();
  auto plan = plan_for_budget(ckpt, budget, *zstd, with_candidates());
  EXPECT_LE(plan.attempts_to_fit, 2);
  double actual = static_cast<double>(plan.artifact.bytes.size());
  EXPECT_LE(actual, static_cast<double>(budget));
  EXPECT_NEAR(plan.estimated_bytes, actual, 0.01 * actual);
}

// A build that fits with bytes to spare is refined: at budgets between the uniform sizes, under a
// byte codec whose bytes the order-0 estimate misses (xz codes contexts), no tensor of the plan
// could take the next wider int-N and still fit (at 0.55 the first fitting build left 3.3% unused,
// room for c_k at int8).
TEST(BudgetPlan, NoTensorCouldTakeMoreBitsAndStillFit) {
  test::TempDir dir;
  auto ckpt = base9_slice(dir);
  auto xz = make_byte_codec("xz");
  const auto size_of = [&](const std::vector<std::string>& specs) { return compress_checkpoint(ckpt, specs, *xz).bytes.size(); };
  const double int4 = static_cast<double>(size_of(Plan("int4", {}).specs_for(ckpt)));
  const double int8 = static_cast<double>(size_of(Plan("int8", {}).specs_for(ckpt)));
  const std::vector<std::string> wider = {"int4", "int5", "int6", "int8"};
  for (double share : {0.25, 0.55}) {
    const auto budget = static_cast<uint64_t>(int4 + share * (int8 - int4));
    SCOPED_TRACE("budget " + std::to_string(budget));
    const BudgetPlan plan = plan_for_budget(ckpt, budget, *xz, with_candidates());
    ASSERT_LE(plan.artifact.bytes.size(), budget);
    EXPECT_GE(plan.attempts, plan.attempts_to_fit);
    for (const auto& choice : plan.tensors) {
      const std::string bits = choice.spec.substr(0, 4);  // int5:clip=mse counts as int5
      const auto next = std::find(wider.begin(), wider.end(), bits) + 1;
      if (next >= wider.end()) continue;
      std::vector<std::string> specs = plan.specs;
      for (size_t i = 0; i < specs.size(); ++i)
        if (ckpt.tensors()[i].name == choice.name) specs[i] = *next;
      EXPECT_GT(size_of(specs), budget) << choice.name << " could take " << *next << " and fit";
    }
  }
}

TEST(BudgetPlan, SensitivityBuysBitsAndUserRulesStayFixed) {
  test::TempDir dir;
  auto ckpt = base9_slice(dir);
  auto zstd = make_byte_codec("zstd:3");
  uint64_t budget = compress_checkpoint(ckpt, Plan("int5", {}).specs_for(ckpt), *zstd).bytes.size();
  auto spec_of = [](const BudgetPlan& plan, const std::string& name) {
    for (const auto& t : plan.tensors)
      if (t.name == name) return t.spec;
    return std::string("(not chosen)");
  };
  auto options = with_candidates();
  auto plain = plan_for_budget(ckpt, budget, *zstd, options);
  EXPECT_NE(spec_of(plain, "blocks.0.attn.c_q.weight"), "int8");
  options.sensitivity.weights = {{"blocks.0.attn.c_q.weight", 1e6}};
  auto weighted = plan_for_budget(ckpt, budget, *zstd, options);
  EXPECT_EQ(spec_of(weighted, "blocks.0.attn.c_q.weight"), "int8");
  EXPECT_LE(weighted.artifact.bytes.size(), budget);

  // Weights at the top of a double's range: the same plan as their ratios (the solver sees them
  // over their largest), not a spin.
  options.sensitivity.weights = {{"blocks.0.attn.c_q.weight", 1e308}};
  for (const auto& t : ckpt.tensors())
    if (t.name != "blocks.0.attn.c_q.weight") options.sensitivity.weights[t.name] = 1e302;
  const auto huge = plan_for_budget(ckpt, budget, *zstd, options);
  EXPECT_EQ(huge.specs, weighted.specs);

  options.sensitivity = {};
  options.rules = {"mlp\\.proj=int8"};  // fixed at int8: the others share what is left of a larger budget
  budget = compress_checkpoint(ckpt, Plan("int6", {}).specs_for(ckpt), *zstd).bytes.size();
  auto ruled = plan_for_budget(ckpt, budget, *zstd, options);
  EXPECT_EQ(spec_of(ruled, "blocks.0.mlp.proj.weight"), "(not chosen)");
  EXPECT_EQ(ruled.tensors.size(), 3u);
  for (const auto& t : ruled.artifact.tensors) {
    if (t.name == "blocks.0.mlp.proj.weight") {
      EXPECT_EQ(t.codec, "int8");
    }
  }
  EXPECT_LE(ruled.artifact.bytes.size(), budget);
}

TEST(BudgetPlan, BadInputSaysWhatIsWrong) {
  test::TempDir dir;
  auto ckpt = base9_slice(dir);
  auto zstd = make_byte_codec("zstd:3");
  try {
    plan_for_budget(ckpt, 100000, *zstd, with_candidates());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("below the smallest size reachable"), std::string::npos) << e.what();
  }
  auto options = with_candidates();
  options.sensitivity.weights = {{"no.such.tensor", 2}};
  EXPECT_THROW(plan_for_budget(ckpt, 10000000, *zstd, options), InputError);
  options = with_candidates();
  options.candidates.push_back("int9");
  EXPECT_THROW(plan_for_budget(ckpt, 10000000, *zstd, options), InputError);
}

TEST(BudgetPlan, ReadsSensitivityFiles) {
  test::TempDir dir;
  auto write = [&](const std::string& text) {
    std::string path = dir.file("s.json");
    test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
    return path;
  };
  auto old = read_sensitivity_file(write(R"({"a.weight": 2.5, "b": 0})"));  // as written before spaces
  EXPECT_FALSE(old.output_space);
  EXPECT_EQ(old.weights.size(), 2u);
  EXPECT_EQ(old.weights["a.weight"], 2.5);
  auto output = read_sensitivity_file(write(R"({"space": "output", "weights": {"a.weight": 3}})"));
  EXPECT_TRUE(output.output_space);
  EXPECT_EQ(output.weights["a.weight"], 3.0);
  EXPECT_THROW(read_sensitivity_file(write(R"({"space": "logit", "weights": {"a": 1}})")), InputError);
  EXPECT_THROW(read_sensitivity_file(write(R"({"weights": {"a": 1}})")), InputError);
  EXPECT_THROW(read_sensitivity_file(write(R"({"a": -1})")), InputError);
  EXPECT_THROW(read_sensitivity_file(write(R"({"a": "x"})")), InputError);
  EXPECT_THROW(read_sensitivity_file(write("[1, 2]")), InputError);
  EXPECT_THROW(read_sensitivity_file(write("{")), InputError);
  EXPECT_THROW(read_sensitivity_file(dir.file("missing.json")), InputError);
}

}  // namespace
}  // namespace pgolf
