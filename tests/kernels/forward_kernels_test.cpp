// Each forward kernel against its CPU twin (cpu_twins.h) on fresh random inputs, with outputs
// poisoned (NaN) beforehand: ||gpu - twin|| / ||twin|| < 1e-4 (bf16 outputs: within their
// rounding), and in place where the trainer or the evaluator calls it so. Skipped without a GPU.
#include <gtest/gtest.h>

#include <array>

#ifdef PGOLF_HAVE_CUDA
#include "cpu_twins.h"
#include "kernel_checks.h"
#include "core/rope_table.h"
#include "kernels/forward_kernels.h"

namespace pgolf {
namespace {

using cuda::DeviceBuffer;
using namespace pgolf::test;
using CudaKernels = test::CudaKernelTest;

// Alone, and with BigramHash's rows added at a scale (the sum before the norm kept).
TEST_F(CudaKernels, EmbeddingRmsNorm) {
  const int vocab = 100, dim = 96, rows = 257;  // dim: 24 of a warp's 32 float4
  const auto tok_emb = normal(vocab * dim, 0.5f), extra = normal(rows * dim, 1.f), scale = normal(1, 1.f);
  const auto id = ids(rows, vocab);
  DeviceBuffer<float> d_tok_emb(tok_emb), d_extra(extra), d_scale(scale);
  DeviceBuffer<uint16_t> d_ids(id);
  auto out = poisoned(rows * dim);
  auto sum = poisoned(rows * dim);
  cuda::embedding_rms_norm(d_tok_emb.data(), d_ids.data(), nullptr, nullptr, rows, dim, nullptr, out.data(), nullptr);
  expect_close("embedding_rms_norm", out.download(), twin_embedding_rms_norm(tok_emb, id, dim));
  cuda::embedding_rms_norm(d_tok_emb.data(), d_ids.data(), d_extra.data(), d_scale.data(), rows, dim, sum.data(),
                           out.data(), nullptr);
  expect_close("embedding_rms_norm with extra rows", out.download(),
               twin_embedding_rms_norm(tok_emb, id, dim, extra, scale[0]));
  const std::vector<float> want_sum = twin_embedding_sum(tok_emb, id, dim, extra, scale[0]);
  expect_close("embedding_rms_norm's sum", sum.download(), std::vector<double>(want_sum.begin(), want_sum.end()));
}

TEST_F(CudaKernels, GatherRows) {
  const int buckets = 300, rows = 257;
  for (int width : {112, 5}) {
    const auto table = normal(buckets * width, 1.f);
    const auto id = ids(rows, buckets);
    DeviceBuffer<float> d_table(table);
    DeviceBuffer<uint16_t> d_ids(id);
    auto out = poisoned(rows * width);
    cuda::gather_rows(d_table.data(), d_ids.data(), rows, width, out.data(), nullptr);
    const std::vector<float> want = twin_gather_rows(table, id, width);
    EXPECT_EQ(out.download(), want) << "width " << width;
  }
}

// Masked at BOS (bos 1) and not, with some rows BOS; the smeared rows kept and normed.
TEST_F(CudaKernels, SmearV2) {
  const int seq_len = 37, rows = 3 * seq_len, dim = 96, window = 12;
  const auto x = normal(rows * dim, 1.f), w = normal(window, 1.f), lambda = normal(1, 1.f);
  std::vector<uint16_t> id = ids(rows, 8);
  DeviceBuffer<float> d_x(x), d_w(w), d_lambda(lambda);
  DeviceBuffer<uint16_t> d_ids(id);
  for (int bos : {1, -1}) {
    const std::vector<double> want = twin_smear_v2(x, w, lambda[0], id, bos, seq_len, dim);
    const std::string what = "smear_v2, bos " + std::to_string(bos);
    auto smeared = poisoned(x.size());
    auto normed = poisoned(x.size());
    cuda::smear_v2(d_x.data(), d_w.data(), window, d_lambda.data(), d_ids.data(), bos, rows, seq_len, dim,
                   smeared.data(), normed.data(), nullptr);
    expect_close(what, smeared.download(), want);
    const std::vector<float> sum(want.begin(), want.end());
    expect_close(what + ": normed", normed.download(), twin_rms_norm(sum, rows, dim));
  }
}

// Every head shape the attention takes, GQA included; fp32 and bf16 in and out; in place.
TEST_F(CudaKernels, Xsa) {
  const int rows = 77;
  for (const HeadShape& shape : qk_shapes()) {
    const auto [heads, kv_heads, head_dim] = shape;
    const auto qkv = normal(size_t(rows) * (heads + 2 * kv_heads) * head_dim, 1.f);
    const auto y = normal(size_t(rows) * heads * head_dim, 1.f);
    const std::vector<double> want = twin_xsa(y, qkv, rows, heads, kv_heads, head_dim);
    const std::string what = "xsa, " + shape_name(shape);
    DeviceBuffer<float> d_qkv(qkv), d_y(y);
    auto out = poisoned(y.size());
    cuda::xsa(d_y.data(), d_qkv.data(), rows, heads, kv_heads, head_dim, out.data(), nullptr);
    expect_close(what, out.download(), want);
    auto out16 = poisoned<__nv_bfloat16>(y.size());
    cuda::xsa(d_y.data(), d_qkv.data(), rows, heads, kv_heads, head_dim, out16.data(), nullptr);
    expect_close(what + " to bf16", floats(out16.download()), want, kBf16RoundingTolerance);
    // bf16 in: against the twin of the rounded inputs.
    const std::vector<float> y16 = floats(bf16_values(y)), qkv16 = floats(bf16_values(qkv));
    DeviceBuffer<__nv_bfloat16> d_y16(bf16_values(y)), d_qkv16(bf16_values(qkv));
    cuda::xsa(d_y16.data(), d_qkv16.data(), rows, heads, kv_heads, head_dim, out.data(), nullptr);
    expect_close(what + " from bf16", out.download(), twin_xsa(y16, qkv16, rows, heads, kv_heads, head_dim));
    cuda::xsa(d_y.data(), d_qkv.data(), rows, heads, kv_heads, head_dim, d_y.data(), nullptr);
    expect_close(what + " in place", d_y.download(), want);
  }
}

TEST_F(CudaKernels, Smear) {
  const int seq_len = 37, rows = 3 * seq_len, dim = 96;
  const auto x = normal(rows * dim, 1.f), gate = normal(dim, 2.f);
  DeviceBuffer<float> d_x(x), d_gate(gate);
  auto out = poisoned(x.size());
  cuda::smear(d_x.data(), d_gate.data(), rows, seq_len, dim, out.data(), nullptr);
  expect_close("smear", out.download(), twin_smear(x, gate, seq_len, dim));
}

// out = x_scale x + y_scale y, and its rms_norm in the same pass, at row widths that fill one,
// two, four and eight float4 per lane, partly (72, 520) or wholly (256, 512).
TEST_F(CudaKernels, ScaledSumAndItsNorm) {
  const int rows = 301;
  for (int dim : {72, 256, 512, 520}) {
    const auto x = normal(rows * dim, 1.f), y = normal(rows * dim, 1.f), x_scale = normal(dim, 1.f);
    const auto y_scale = normal(dim, 1.f);
    DeviceBuffer<float> d_x(x), d_y(y), d_x_scale(x_scale), d_y_scale(y_scale);
    for (bool identity : {false, true}) {  // x_scale given, or 1
      const std::string what = "scaled_sum, dim " + std::to_string(dim) + (identity ? ", x_scale 1" : "");
      const std::vector<double> want = twin_scaled_sum(x, identity ? std::vector<float>{} : x_scale, y, y_scale, dim);
      std::vector<float> sum(want.begin(), want.end());
      const std::vector<double> want_normed = twin_rms_norm(sum, rows, dim);
      const float* xs = identity ? nullptr : d_x_scale.data();
      auto out = poisoned(x.size());
      auto normed = poisoned(x.size());
      auto normed16 = poisoned<__nv_bfloat16>(x.size());
      cuda::scaled_sum(d_x.data(), xs, d_y.data(), d_y_scale.data(), rows, dim, out.data(), normed.data(), nullptr);
      expect_close(what, out.download(), want);
      expect_close(what + ": rms_norm", normed.download(), want_normed);
      cuda::scaled_sum(d_x.data(), xs, d_y.data(), d_y_scale.data(), rows, dim, out.data(), normed16.data(), nullptr);
      expect_close(what + ": rms_norm to bf16", floats(normed16.download()), want_normed, kBf16RoundingTolerance);
      DeviceBuffer<float> over_x(x), over_y(y);  // in place over either input
      cuda::scaled_sum(over_x.data(), xs, d_y.data(), d_y_scale.data(), rows, dim, over_x.data(), nullptr);
      expect_close(what + ": in place of x", over_x.download(), want);
      cuda::scaled_sum(d_x.data(), xs, over_y.data(), d_y_scale.data(), rows, dim, over_y.data(), nullptr);
      expect_close(what + ": in place of y", over_y.download(), want);
      // y in bf16 (a scoring pass's branch output): the twin on y rounded.
      const std::vector<__nv_bfloat16> y16 = bf16_values(y);
      const DeviceBuffer<__nv_bfloat16> d_y16(y16);
      const std::vector<double> want16 =
          twin_scaled_sum(x, identity ? std::vector<float>{} : x_scale, floats(y16), y_scale, dim);
      cuda::scaled_sum(d_x.data(), xs, d_y16.data(), d_y_scale.data(), rows, dim, out.data(), normed16.data(), nullptr);
      expect_close(what + ": y in bf16", out.download(), want16);
      cuda::scaled_sum(d_x.data(), xs, d_y16.data(), d_y_scale.data(), rows, dim, out.data(), normed.data(), nullptr);
      std::vector<float> sum16(want16.begin(), want16.end());
      expect_close(what + ": y in bf16, rms_norm", normed.download(), twin_rms_norm(sum16, rows, dim));
    }
  }
  DeviceBuffer<float> small(static_cast<size_t>(4 * 70));
  EXPECT_THROW(cuda::scaled_sum(small.data(), nullptr, small.data(), small.data(), 4, 70, small.data(), nullptr),
               std::invalid_argument);  // 70 is not a multiple of 4
}

// A parallel block's MLP input: scaled_sum with neither y nor out is rms_norm(x) alone.
TEST_F(CudaKernels, ScaledSumWithoutYIsTheNormAlone) {
  const int rows = 301, dim = 512;
  const auto x = normal(rows * dim, 1.f);
  DeviceBuffer<float> d_x(x);
  auto normed = poisoned(x.size());
  cuda::scaled_sum(d_x.data(), nullptr, static_cast<const float*>(nullptr), nullptr, rows, dim, nullptr, normed.data(),
                   nullptr);
  expect_close("scaled_sum without y: rms_norm(x)", normed.download(), twin_rms_norm(x, rows, dim));
  EXPECT_EQ(d_x.download(), x);
}

// Both lanes of a parallel block, and the last block's mean and final norm, against the formula in
// double; M in bf16 as a scoring pass gives it.
TEST_F(CudaKernels, ParallelLanes) {
  const int rows = 301;
  for (int dim : {72, 512}) {
    const size_t n = size_t(rows) * dim;
    const auto in0 = normal(n, 1.f), in1 = normal(n, 1.f), attn = normal(n, 1.f), mlp = normal(n, 1.f);
    const auto attn_scale = normal(dim, 1.f), mlp_scale = normal(dim, 1.f), lanes = normal(6, 1.f);
    auto twin = [&](const std::vector<float>& m) {
      std::vector<double> out0(n), out1(n), mean(n);
      for (size_t i = 0; i < n; ++i) {
        const double a = double(attn[i]) * attn_scale[i % dim], b = double(m[i]) * mlp_scale[i % dim];
        out0[i] = lanes[0] * double(in0[i]) + lanes[2] * a + lanes[4] * b;
        out1[i] = lanes[1] * double(in1[i]) + lanes[3] * a + lanes[5] * b;
        mean[i] = (out0[i] + out1[i]) / 2;
      }
      return std::array{out0, out1, mean};
    };
    DeviceBuffer<float> d_in0(in0), d_in1(in1), d_attn(attn), d_mlp(mlp), d_as(attn_scale), d_ms(mlp_scale), d_l(lanes);
    auto out0 = poisoned(n), out1 = poisoned(n), mean = poisoned(n), normed = poisoned(n);
    const std::string what = "parallel_lanes, dim " + std::to_string(dim);
    const auto want = twin(mlp);
    cuda::parallel_lanes(d_in0.data(), d_in1.data(), d_attn.data(), d_as.data(), d_mlp.data(), d_ms.data(), d_l.data(),
                         rows, dim, out0.data(), out1.data(), mean.data(), normed.data(), nullptr);
    expect_close(what + ": lane 0", out0.download(), want[0]);
    expect_close(what + ": lane 1", out1.download(), want[1]);
    expect_close(what + ": mean", mean.download(), want[2]);
    const std::vector<float> mean_values(want[2].begin(), want[2].end());
    expect_close(what + ": final norm", normed.download(), twin_rms_norm(mean_values, rows, dim));
    const std::vector<__nv_bfloat16> mlp16 = bf16_values(mlp);
    const DeviceBuffer<__nv_bfloat16> d_mlp16(mlp16);
    auto normed16 = poisoned<__nv_bfloat16>(n);
    const auto want16 = twin(floats(mlp16));
    cuda::parallel_lanes(d_in0.data(), d_in1.data(), d_attn.data(), d_as.data(), d_mlp16.data(), d_ms.data(),
                         d_l.data(), rows, dim, out0.data(), out1.data(), mean.data(), normed16.data(), nullptr);
    expect_close(what + ": M in bf16, lane 1", out1.download(), want16[1]);
    const std::vector<float> mean16(want16[2].begin(), want16[2].end());
    expect_close(what + ": M in bf16, final norm to bf16", floats(normed16.download()), twin_rms_norm(mean16, rows, dim),
                 kBf16RoundingTolerance);
  }
}

TEST_F(CudaKernels, LeakyReluSquare) {
  const auto x = normal(10001, 1.f);
  const auto count = static_cast<int64_t>(x.size());
  for (float slope : {0.0f, 0.5f}) {
    const std::string what = "leaky_relu_square, slope " + std::to_string(slope);
    DeviceBuffer<float> d_x(x);
    auto out = poisoned(x.size());
    auto out16 = poisoned<__nv_bfloat16>(x.size());
    cuda::leaky_relu_square(d_x.data(), count, slope, out.data(), nullptr);
    cuda::leaky_relu_square(d_x.data(), count, slope, out16.data(), nullptr);
    expect_close(what, out.download(), twin_leaky_relu_square(x, slope));
    expect_close(what + " to bf16", floats(out16.download()), twin_leaky_relu_square(x, slope), kBf16RoundingTolerance);
    cuda::leaky_relu_square(d_x.data(), count, slope, d_x.data(), nullptr);
    expect_close(what + " in place", d_x.download(), twin_leaky_relu_square(x, slope));
    const std::vector<__nv_bfloat16> x16 = bf16_values(x);  // a bf16 input: the twin on x rounded
    const DeviceBuffer<__nv_bfloat16> d_x16(x16);
    cuda::leaky_relu_square(d_x16.data(), count, slope, out.data(), nullptr);
    cuda::leaky_relu_square(d_x16.data(), count, slope, out16.data(), nullptr);
    expect_close(what + " from bf16", out.download(), twin_leaky_relu_square(floats(x16), slope));
    expect_close(what + " bf16 to bf16", floats(out16.download()), twin_leaky_relu_square(floats(x16), slope),
                 kBf16RoundingTolerance);
  }
}

TEST_F(CudaKernels, QkNormRope) {
  const int sequences = 3, seq_len = 37, rows = sequences * seq_len;
  for (const HeadShape& shape : qk_shapes()) {
    const auto [heads, kv_heads, head_dim] = shape;
    const auto qkv = normal(rows * (heads + 2 * kv_heads) * head_dim, 2.f), q_gain = normal(heads, 1.f);
    for (int rotated : rotated_dims_of(head_dim)) {
      const RopeTable rope = rope_table(seq_len, head_dim, rotated, 10000.0);
      DeviceBuffer<float> d_qkv(qkv), d_cos(rope.cos), d_sin(rope.sin), d_gain(q_gain);
      auto out = poisoned(qkv.size());
      auto out16 = poisoned<__nv_bfloat16>(qkv.size());
      const auto want =
          twin_qk_norm_rope(qkv, rows, seq_len, heads, kv_heads, head_dim, rotated, rope.cos, rope.sin, q_gain);
      const std::string what = "qk_norm_rope, " + shape_name(shape) + ", RoPE on " + std::to_string(rotated);
      auto run = [&](auto* into) {
        cuda::qk_norm_rope(d_qkv.data(), rows, seq_len, heads, kv_heads, head_dim, rotated, d_cos.data(), d_sin.data(),
                           d_gain.data(), into, nullptr);
      };
      run(out.data());
      run(out16.data());
      expect_close(what, out.download(), want);
      expect_close(what + " to bf16", floats(out16.download()), want, kBf16RoundingTolerance);
      run(d_qkv.data());
      expect_close(what + " in place", d_qkv.download(), want);
      const std::vector<__nv_bfloat16> qkv16 = bf16_values(qkv);  // a bf16 input: the twin on it rounded
      const DeviceBuffer<__nv_bfloat16> d_qkv16(qkv16);
      const auto want16 = twin_qk_norm_rope(floats(qkv16), rows, seq_len, heads, kv_heads, head_dim, rotated, rope.cos,
                                            rope.sin, q_gain);
      cuda::qk_norm_rope(d_qkv16.data(), rows, seq_len, heads, kv_heads, head_dim, rotated, d_cos.data(), d_sin.data(),
                         d_gain.data(), out.data(), nullptr);
      expect_close(what + " from bf16", out.download(), want16);
      cuda::qk_norm_rope(d_qkv16.data(), rows, seq_len, heads, kv_heads, head_dim, rotated, d_cos.data(), d_sin.data(),
                         d_gain.data(), out16.data(), nullptr);
      expect_close(what + " bf16 to bf16", floats(out16.download()), want16, kBf16RoundingTolerance);
    }
  }
}

TEST_F(CudaKernels, SoftcapCrossEntropy) {
  const int rows = 50, vocab = 1000;
  const float cap = 30.f;
  const auto logits = normal(rows * vocab, 20.f);  // well into the cap's curve
  const auto targets = ids(rows, vocab);
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<uint16_t> d_targets(targets);
  DeviceBuffer<double> losses(rows);
  PGOLF_CUDA_CHECK(cudaMemset(losses.data(), 0xFF, rows * sizeof(double)));
  cuda::softcap_cross_entropy(d_logits.data(), d_targets.data(), rows, vocab, cap, losses.data(), nullptr);
  expect_close("softcap_cross_entropy", losses.download(), twin_softcap_cross_entropy(logits, targets, vocab, cap));
}

}  // namespace
}  // namespace pgolf

#else

TEST(CudaKernels, NeedCudaBuild) { GTEST_SKIP() << "built without CUDA (PGOLF_CUDA=OFF, or no nvcc found)"; }

#endif
