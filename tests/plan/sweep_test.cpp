// The rate-distortion sweep: encode once + pack per compressor gives exactly what
// compress_checkpoint gives; every measurement adds up; the default sweep and its labels.
#include "plan/sweep.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "plan/plan.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

// Two quantizable matrices and two small control tensors, fp32, in a TempDir.
Checkpoint synthetic_checkpoint(const test::TempDir& dir) {
  auto tensor = [](const std::string& name, std::vector<int64_t> shape, test::Distribution d, uint64_t seed) {
    std::vector<float> values = test::synthetic(d, shape[0], shape.size() > 1 ? shape[1] : 1, seed);
    TensorData t{name, DType::F32, shape, std::vector<uint8_t>(values.size() * 4)};
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
    return t;
  };
  std::vector<TensorData> tensors = {
      tensor("blocks.0.attn.c_q.weight", {512, 256}, test::Distribution::Gaussian, 1),
      tensor("blocks.0.mlp.fc.weight", {512, 256}, test::Distribution::HeavyTailed, 2),
      tensor("blocks.0.attn_scale", {256}, test::Distribution::Gaussian, 3),
      tensor("blocks.0.attn.q_gain", {4}, test::Distribution::Gaussian, 4),
  };
  std::string path = dir.file("synthetic.safetensors");
  write_safetensors(path, tensors, {}, false);
  return Checkpoint::open({path});
}

TEST(Sweep, PackOfEncodeIsCompressCheckpoint) {
  test::TempDir dir;
  auto ckpt = synthetic_checkpoint(dir);
  for (const char* spec : {"int4", "int6:clip=mse", "kmeans:k=16"})
    for (const char* compressor : {"zstd:3", "zlib:6"}) {
      auto plan = Plan(spec, {}).specs_for(ckpt);
      auto codec = make_byte_codec(compressor);
      auto whole = compress_checkpoint(ckpt, plan, *codec);
      auto halves = pack_artifact(encode_checkpoint(ckpt, plan), *codec);
      EXPECT_EQ(whole.bytes, halves.bytes) << spec << " " << compressor;
    }
}

TEST(Sweep, MeasuresEveryPointUnderEveryCompressor) {
  test::TempDir dir;
  auto ckpt = synthetic_checkpoint(dir);
  std::vector<SweepPoint> points = {sweep_point("int4"), sweep_point("int8")};
  SweepOptions options;
  options.compressors = {"zstd:3", "zlib:6"};
  int evaluations = 0;
  options.evaluate = [&](DecodedArtifact&& decoded) {
    ++evaluations;
    return static_cast<double>(decoded.tensors.size()) + evaluations;  // tells points apart
  };
  std::vector<size_t> reported;  // per point one encode, one pack per compressor, one evaluation
  options.progress = [&](const std::string& stage, size_t done, size_t total) {
    EXPECT_EQ(stage, "bench");
    EXPECT_EQ(total, 2u * (1 + 2 + 1));
    reported.push_back(done);
  };
  auto results = run_sweep(ckpt, points, options);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(evaluations, 2);
  EXPECT_EQ(reported, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));

  for (size_t p = 0; p < points.size(); ++p)
    for (size_t c = 0; c < 2; ++c) {
      const SweepResult& r = results[p * 2 + c];
      SCOPED_TRACE(r.point.label + " " + r.compressor);
      EXPECT_EQ(r.point.codec, points[p].codec);
      EXPECT_EQ(r.compressor, options.compressors[c]);
      auto expected = compress_checkpoint(ckpt, Plan(points[p].codec, {}).specs_for(ckpt), *make_byte_codec(r.compressor));
      EXPECT_EQ(r.artifact_bytes, expected.bytes.size());
      EXPECT_EQ(r.parameters, 2 * 512 * 256 + 256 + 4);
      EXPECT_DOUBLE_EQ(r.bits_per_parameter(), 8.0 * r.artifact_bytes / r.parameters);
      EXPECT_EQ(r.quantized_tensors, 2);
      EXPECT_EQ(r.quantized.count, 2 * 512 * 256);
      ASSERT_EQ(r.tensors.size(), expected.tensors.size());
      SymbolHistogram symbols;
      Distortion quantized;
      for (size_t i = 0; i < r.tensors.size(); ++i) {
        EXPECT_EQ(r.tensors[i].report.name, expected.tensors[i].name);
        EXPECT_DOUBLE_EQ(r.tensors[i].report.stored_bytes, expected.tensors[i].stored_bytes);
        if (expected.tensors[i].quantized) quantized.add(expected.tensors[i].distortion);
        EXPECT_EQ(r.tensors[i].symbol_entropy_bytes > 0, expected.tensors[i].quantized);
      }
      EXPECT_DOUBLE_EQ(r.quantized.sum_sq_error, quantized.sum_sq_error);
      // The symbol group's entropy, from the artifact's own group bytes.
      auto encoded = encode_checkpoint(ckpt, Plan(points[p].codec, {}).specs_for(ckpt));
      for (const auto& t : encoded.tensors)
        for (const auto& s : t.streams)
          if (s.group == r.point.codec) symbols.add(s.bytes);
      EXPECT_NEAR(r.symbol_entropy_bytes, symbols.entropy_bytes(), 1e-6 * symbols.entropy_bytes());
      EXPECT_GT(r.encode_seconds, 0);
      EXPECT_GT(r.decode_seconds, 0);
      ASSERT_TRUE(r.val_bpb.has_value());
      EXPECT_EQ(*r.val_bpb, 4.0 + static_cast<double>(p + 1));  // once per point, shared by its compressors
    }
  EXPECT_LT(results[0].artifact_bytes, results[2].artifact_bytes);  // int4 < int8 under zstd
  EXPECT_GT(results[0].quantized.relative_mse(), 10 * results[2].quantized.relative_mse());
}

TEST(Sweep, DefaultSweepValidatesAndLabelsUniquely) {
  std::vector<std::string> skipped;
  auto points = default_sweep(skipped);
  std::set<std::string> labels;
  size_t int_n = 0;
  for (const auto& p : points) {
    EXPECT_NO_THROW(Plan(p.codec, p.rules)) << p.label;
    EXPECT_TRUE(labels.insert(p.label).second) << "duplicate " << p.label;
    EXPECT_FALSE(p.family.empty());
    int_n += p.family.starts_with("int-N ");
    for (const auto& rule : p.rules) EXPECT_TRUE(rule.starts_with("^tok_emb\\.weight$=")) << rule;
  }
  EXPECT_EQ(int_n, 20u);
  // int-N, kmeans, prune, tok_emb lowrank, the ECSQ ladder
  EXPECT_EQ(points.size() + skipped.size(), 20u + 7 + 3 + 5 + ecsq_sweep_specs().size());
  EXPECT_EQ(int_n_sweep_specs().size(), 20u);
  EXPECT_EQ(int_n_sweep_specs().front(), "int4");
  // Calibrated, GPTQ over every ECSQ step and over int5..int8 joins.
  std::vector<std::string> calibrated_skipped;
  auto calibrated = default_sweep(calibrated_skipped, true);
  EXPECT_EQ(calibrated.size(), points.size() + ecsq_sweep_specs().size() + 4);
  for (const auto& spec : gptq_sweep_specs()) EXPECT_TRUE(spec.starts_with("gptq+")) << spec;
}

TEST(Sweep, FamiliesAndTensorClasses) {
  EXPECT_EQ(sweep_point("int6:clip=quantile:0.9999").family, "intN:clip=quantile:N");
  EXPECT_EQ(sweep_point("kmeans:k=64,method=ecsq,lambda=1e-05").family, "kmeans:k=N,method=ecsq,lambda=N");
  EXPECT_EQ(sweep_point("prune:0.03+int6").codec, "prune:0.03+int6");
  EXPECT_EQ(tensor_class("blocks.3.attn.c_q.weight"), "attn.c_q");
  EXPECT_EQ(tensor_class("blocks.12.mlp.proj.weight"), "mlp.proj");
  EXPECT_EQ(tensor_class("tok_emb.weight"), "tok_emb");
  EXPECT_EQ(tensor_class("skip_weights"), "skip_weights");
  EXPECT_TRUE(is_symbol_group("int6"));
  EXPECT_TRUE(is_symbol_group("kmeans64"));
  EXPECT_TRUE(is_symbol_group("ecsq16"));
  EXPECT_FALSE(is_symbol_group("scale.fp16"));
}

}  // namespace
}  // namespace pgolf
