#include "plan/plan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pgolf {
namespace {

TEST(Plan, ParameterGolfDefaults) {
  Plan plan("int6", {});
  EXPECT_EQ(plan.codec_for("blocks.0.attn.c_q.weight", DType::BF16, {512, 512}), "int6");
  EXPECT_EQ(plan.codec_for("tok_emb.weight", DType::BF16, {1024, 512}), "int6");
  EXPECT_EQ(plan.codec_for("blocks.0.attn.q_gain", DType::BF16, {8}), "fp32");
  EXPECT_EQ(plan.codec_for("blocks.3.resid_mix", DType::BF16, {2, 512}), "fp32");
  EXPECT_EQ(plan.codec_for("skip_weights", DType::BF16, {4, 512}), "fp32");
  EXPECT_EQ(plan.codec_for("blocks.0.attn_scale", DType::F32, {512}), "fp32");
  EXPECT_EQ(plan.codec_for("small.weight", DType::F32, {256, 256}), "fp16") << "65,536 elements stays float";
  EXPECT_EQ(plan.codec_for("big.weight", DType::F32, {256, 257}), "int6");
  EXPECT_EQ(plan.codec_for("conv.weight", DType::F32, {64, 64, 3, 3}), "fp16") << "not 2-D";
  EXPECT_EQ(plan.codec_for("bigram.embed.weight", DType::BF16, {4096, 128}), "int8") << "a lookup table, as the records";
  EXPECT_EQ(plan.codec_for("bigram.embed.weight", DType::BF16, {64, 16}), "fp16");
  EXPECT_EQ(Plan("gptq+int6", {}).codec_for("bigram.embed.weight", DType::BF16, {4096, 128}), "int8");
  EXPECT_EQ(plan.codec_for("bigram.proj.weight", DType::BF16, {512, 128}), "fp16");
  EXPECT_EQ(plan.codec_for("bigram.scale", DType::BF16, {}), "fp16");
  EXPECT_EQ(plan.codec_for("smear.gate", DType::BF16, {512}), "fp16");
  EXPECT_EQ(plan.codec_for("steps", DType::I64, {}), kRawSpec);
  EXPECT_EQ(plan.codec_for("mask", DType::BOOL, {1000, 1000}), kRawSpec);
}

TEST(Plan, RulesFirstMatchWinsAndSpecsMayContainEquals) {
  Plan plan("int6", {"mlp\\.=int5:clip=quantile:0.9999", "tok_emb=int8:clip=mse", "\\.=fp16", "blocks=int4"});
  EXPECT_EQ(plan.codec_for("blocks.0.mlp.fc.weight", DType::BF16, {1024, 512}), "int5:clip=quantile:0.9999");
  EXPECT_EQ(plan.codec_for("tok_emb.weight", DType::BF16, {1024, 512}), "int8:clip=mse");
  EXPECT_EQ(plan.codec_for("blocks.0.attn.c_q.weight", DType::BF16, {512, 512}), "fp16");
  EXPECT_EQ(plan.codec_for("blocks.0.attn.q_gain", DType::BF16, {8}), "fp16") << "user rules override the defaults";
  EXPECT_EQ(plan.codec_for("steps", DType::I64, {}), kRawSpec) << "non-float tensors are never quantized";
  Plan raw("int6", {".=raw"});
  EXPECT_EQ(raw.codec_for("x", DType::BF16, {1024, 1024}), kRawSpec);
}

TEST(Plan, BadRulesAreErrors) {
  EXPECT_THROW(Plan("int6", {"noequals"}), InputError);
  EXPECT_THROW(Plan("int6", {"=int6"}), InputError);
  EXPECT_THROW(Plan("int6", {"mlp="}), InputError);
  EXPECT_THROW(Plan("int6", {"mlp=int42"}), InputError);
  EXPECT_THROW(Plan("int6", {"(=int6"}), InputError);
  // Numbers libstdc++'s regex compiler would overflow on (fuzz finding: undefined behaviour there).
  EXPECT_THROW(Plan("int6", {"i`|\\66666666666666666666665=int4"}), InputError);
  EXPECT_THROW(Plan("int6", {"a{99999999999999999999}=int4"}), InputError);
  EXPECT_EQ(Plan("int6", {"blocks\\.123456\\.=int4"}).codec_for("blocks.123456.w", DType::F32, {4, 4}), "int4");
  EXPECT_THROW(Plan("nosuchcodec", {}), InputError);
}

}  // namespace
}  // namespace pgolf
