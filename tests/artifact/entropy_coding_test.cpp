// Issue 5 in the artifact: lossless mode stores every tensor bit for bit (base9's bf16 and
// synthetic floats with NaN, Inf, denormals and negative zero); "auto" records a concrete codec
// per group; ECSQ's shared step meets the total target across the checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "core/error.h"
#include "core/half.h"
#include "plan/plan.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

CompressResult compress(const Checkpoint& ckpt, const std::string& codec, const std::string& compressor) {
  return compress_checkpoint(ckpt, Plan(codec, {}).specs_for(ckpt), *make_byte_codec(compressor));
}

void expect_exact(const Checkpoint& ckpt, const DecodedArtifact& decoded) {
  ASSERT_EQ(decoded.tensors.size(), ckpt.tensors().size());
  for (size_t i = 0; i < decoded.tensors.size(); ++i) {
    const auto& ref = ckpt.tensors()[i];
    EXPECT_EQ(decoded.tensors[i].codec, kRawSpec) << ref.name;
    EXPECT_EQ(decoded.tensors[i].dtype, ref.dtype) << ref.name;
    EXPECT_TRUE(std::equal(ref.bytes.begin(), ref.bytes.end(), decoded.tensors[i].raw.begin(), decoded.tensors[i].raw.end()))
        << ref.name;
  }
}

TEST(Lossless, Base9RoundTripsBitForBit) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  auto result = compress(ckpt, kLosslessSpec, "rans");
  auto decoded = decode_artifact(result.bytes, "base9-lossless.pgz");
  expect_exact(ckpt, decoded);
  ASSERT_EQ(decoded.manifest.groups.size(), 1u);
  EXPECT_EQ(decoded.manifest.groups[0].codec, "rotate:2+shuffle:2+rans:block=262144") << "bf16: exponents in one plane";
  EXPECT_LT(result.bytes.size(), decoded.manifest.groups[0].raw_size) << "it compresses";
}

TEST(Lossless, PlanStoresEveryTensorRawUnlessARuleSaysOtherwise) {
  Plan plan(kLosslessSpec, {"mlp=int6"});
  EXPECT_EQ(plan.codec_for("blocks.0.mlp.fc.weight", DType::BF16, {512, 512}), "int6");
  EXPECT_EQ(plan.codec_for("blocks.0.attn_scale", DType::BF16, {512}), kRawSpec);
  EXPECT_EQ(plan.codec_for("tok_emb.weight", DType::F32, {1024, 512}), kRawSpec);
  EXPECT_THROW(Plan("lossles", {}), InputError);
}

TEST(Lossless, SpecialFloatsRoundTripInEveryType) {
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(), 1e-40f, -3.5f};
  test::TempDir dir;
  std::vector<TensorData> tensors;
  auto w = test::synthetic(test::Distribution::HeavyTailed, 64, 33, 3);
  for (size_t i = 0; i < std::size(specials); ++i) w[i * 97] = specials[i];
  for (DType type : {DType::BF16, DType::F16, DType::F32}) {
    auto bytes = from_float(type, w);
    bytes[1] ^= 0x01;  // a NaN payload or odd bit pattern the conversion would not make
    tensors.push_back({"w." + std::string(dtype_name(type)), type, {64, 33}, bytes});
  }
  tensors.push_back({"odd", DType::BF16, {3}, {0x01, 0xFF, 0x80, 0x7F, 0x00, 0x80}});  // NaN, -0 ...
  write_safetensors(dir.file("s.safetensors"), tensors, {}, false);
  auto ckpt = Checkpoint::open({dir.file("s.safetensors")});
  for (const char* compressor : {"rans", "zstd:3", "auto"}) expect_exact(ckpt, decode_artifact(compress(ckpt, kLosslessSpec, compressor).bytes, "s.pgz"));
}

TEST(Auto, RecordsTheChosenCodecPerGroup) {
  test::TempDir dir;
  std::vector<TensorData> tensors;
  tensors.push_back({"a", DType::F32, {300, 300}, from_float(DType::F32, test::synthetic(test::Distribution::Laplacian, 300, 300, 4))});
  tensors.push_back({"b", DType::BF16, {256, 300}, from_float(DType::BF16, test::synthetic(test::Distribution::ZeroRows, 256, 300, 5))});
  tensors.push_back({"c_scale", DType::F32, {300}, from_float(DType::F32, test::synthetic(test::Distribution::Gaussian, 1, 300, 6))});
  write_safetensors(dir.file("a.safetensors"), tensors, {}, false);
  auto ckpt = Checkpoint::open({dir.file("a.safetensors")});
  auto result = compress(ckpt, "int6", "auto");
  auto decoded = decode_artifact(result.bytes, "auto.pgz");
  ASSERT_EQ(decoded.manifest.groups.size(), 3u);
  for (const auto& g : decoded.manifest.groups) {
    EXPECT_EQ(g.codec.find("auto"), std::string::npos) << g.name << ": " << g.codec;
    for (const char* other : {"zstd:22", "zlib:9", "rans"})
      for (const auto& h : compress(ckpt, "int6", other).manifest.groups)
        if (h.name == g.name) EXPECT_LE(g.stored_size, h.stored_size) << g.name << " vs " << other;
  }
}

TEST(EcsqArtifact, SharedStepMeetsTheTotalTargetAndDecodes) {
  auto ckpt = Checkpoint::open({test::sample_path("base9")});
  auto result = compress(ckpt, "ecsq:totalrelmse=0.00095", "rans");
  Distortion quantized;
  std::string step;
  for (const auto& t : result.tensors) {
    if (!t.quantized) continue;
    quantized.add(t.distortion);
    EXPECT_TRUE(t.codec.starts_with("ecsq:step=")) << t.codec;
    if (step.empty()) step = t.codec;
    EXPECT_EQ(t.codec, step) << "one step for every quantized tensor";
  }
  EXPECT_LE(quantized.relative_mse(), 0.00095);
  EXPECT_GT(quantized.relative_mse(), 0.00094);
  auto decoded = decode_artifact(result.bytes, "ecsq.pgz");
  EXPECT_EQ(decoded.tensors.size(), ckpt.tensors().size());
  bool wide = false;
  for (const auto& g : decoded.manifest.groups) wide |= g.codec == "rans:block=262144,width=2";
  EXPECT_TRUE(wide) << "base9's embedding needs 16-bit symbols at this step";
}

}  // namespace
}  // namespace pgolf
