// Each training kernel (kernels/train_kernels.h) against its CPU twin (cpu_twins.h, or the update
// rule written out here for the elementwise optimizer kernels) on fresh random inputs:
// ||gpu - twin|| / ||twin|| < 1e-4. Skipped without a GPU.
#include <gtest/gtest.h>

#ifdef PGOLF_HAVE_CUDA
#include "cpu_twins.h"
#include "kernel_checks.h"
#include "core/rope_table.h"
#include "kernels/forward_kernels.h"
#include "kernels/train_kernels.h"

namespace pgolf {
namespace {

using cuda::DeviceBuffer;
using namespace pgolf::test;
using CudaTrainKernels = test::CudaKernelTest;

// From the gathered rows, and (ids null) from rows kept as they are.
TEST_F(CudaTrainKernels, EmbeddingRmsNormBackward) {
  const int vocab = 100, dim = 96, rows = 257;
  const auto tok_emb = normal(vocab * dim, 0.5f), dy = normal(rows * dim, 1.f);
  const auto id = ids(rows, vocab);
  const std::vector<float> gathered = twin_gather_rows(tok_emb, id, dim);
  DeviceBuffer<float> d_tok_emb(tok_emb), d_dy(dy), d_gathered(gathered);
  DeviceBuffer<uint16_t> d_ids(id);
  auto d_rows = poisoned(rows * dim);
  const auto want = twin_rms_norm_backward(gathered, dy, rows, dim);
  cuda::embedding_rms_norm_backward(d_tok_emb.data(), d_ids.data(), d_dy.data(), rows, dim, d_rows.data(), nullptr);
  expect_close("embedding_rms_norm_backward", d_rows.download(), want);
  d_rows = poisoned(rows * dim);
  cuda::embedding_rms_norm_backward(d_gathered.data(), nullptr, d_dy.data(), rows, dim, d_rows.data(), nullptr);
  expect_close("embedding_rms_norm_backward of kept rows", d_rows.download(), want);
}

TEST_F(CudaTrainKernels, SmearBackward) {
  const int seq_len = 37, rows = 3 * seq_len, dim = 96;
  const auto x = normal(rows * dim, 1.f), gate = normal(dim, 2.f), dy = normal(rows * dim, 1.f);
  DeviceBuffer<float> d_x(x), d_gate(gate), d_dy(dy);
  auto dx = poisoned(x.size());
  auto shares = poisoned(x.size());
  cuda::smear_backward(d_x.data(), d_gate.data(), d_dy.data(), rows, seq_len, dim, dx.data(), shares.data(), nullptr);
  const SmearGradient want = twin_smear_backward(x, gate, dy, seq_len, dim);
  expect_close("smear_backward", dx.download(), want.dx);
  expect_close("smear_backward: the gate's shares", shares.download(), want.d_gate_rows);
}

TEST_F(CudaTrainKernels, XsaBackward) {
  const int rows = 77;
  for (const HeadShape& shape : qk_shapes()) {
    const auto [heads, kv_heads, head_dim] = shape;
    const auto qkv = normal(size_t(rows) * (heads + 2 * kv_heads) * head_dim, 1.f);
    const auto y = normal(size_t(rows) * heads * head_dim, 1.f), dy = normal(y.size(), 1.f);
    const XsaGradient want = twin_xsa_backward(y, qkv, dy, rows, heads, kv_heads, head_dim);
    const std::string what = "xsa_backward, " + shape_name(shape);
    DeviceBuffer<float> d_qkv(qkv), d_y(y), d_dy(dy);
    auto d_in = poisoned(y.size());
    auto d_v = poisoned(size_t(rows) * kv_heads * head_dim);
    cuda::xsa_backward(d_y.data(), d_qkv.data(), d_dy.data(), rows, heads, kv_heads, head_dim, d_in.data(), d_v.data(),
                       nullptr);
    expect_close(what, d_in.download(), want.d_in);
    expect_close(what + ": the values' gradient", d_v.download(), want.d_v);
    cuda::xsa_backward(d_y.data(), d_qkv.data(), d_dy.data(), rows, heads, kv_heads, head_dim, d_dy.data(), d_v.data(),
                       nullptr);
    expect_close(what + " in place", d_dy.download(), want.d_in);
    // bf16: against the twin of the rounded inputs, within the output's rounding.
    const std::vector<float> y16 = floats(bf16_values(y)), qkv16 = floats(bf16_values(qkv));
    const std::vector<float> dy16 = floats(bf16_values(dy));
    const XsaGradient want16 = twin_xsa_backward(y16, qkv16, dy16, rows, heads, kv_heads, head_dim);
    DeviceBuffer<__nv_bfloat16> b_y(bf16_values(y)), b_qkv(bf16_values(qkv)), b_dy(bf16_values(dy));
    cuda::xsa_backward(b_y.data(), b_qkv.data(), b_dy.data(), rows, heads, kv_heads, head_dim, b_dy.data(), d_v.data(),
                       nullptr);
    expect_close(what + " in bf16", floats(b_dy.download()), want16.d_in, kBf16RoundingTolerance);
    expect_close(what + " in bf16: the values' gradient", d_v.download(), want16.d_v);
  }
}

TEST_F(CudaTrainKernels, SmearV2Backward) {
  const int seq_len = 37, rows = 3 * seq_len, dim = 96, window = 12;
  const auto x = normal(rows * dim, 1.f), w = normal(window, 1.f), lambda = normal(1, 1.f);
  const auto dy = normal(rows * dim, 1.f);
  std::vector<uint16_t> id = ids(rows, 8);
  DeviceBuffer<float> d_x(x), d_w(w), d_lambda(lambda), d_dy(dy), scratch(size_t(2 * rows));
  DeviceBuffer<uint16_t> d_ids(id);
  for (int bos : {1, -1}) {
    const SmearV2Gradient want = twin_smear_v2_backward(x, w, lambda[0], id, bos, dy, seq_len, dim);
    const std::string what = "smear_v2_backward, bos " + std::to_string(bos);
    auto dx = poisoned(x.size());
    auto lambda_rows = poisoned(size_t(rows));
    auto w_rows = poisoned(size_t(rows) * window);
    cuda::smear_v2_backward(d_x.data(), d_w.data(), window, d_lambda.data(), d_ids.data(), bos, d_dy.data(), rows,
                            seq_len, dim, dx.data(), lambda_rows.data(), w_rows.data(), scratch.data(), nullptr);
    expect_close(what, dx.download(), want.dx);
    expect_close(what + ": lambda's shares", lambda_rows.download(), want.d_lambda_rows);
    expect_close(what + ": w's shares", w_rows.download(), want.d_w_rows);
  }
}

// add_sum adds (twice: it accumulates); scale multiplies by a factor on the device.
TEST_F(CudaTrainKernels, AddSumAndScale) {
  const auto x = normal(100003, 1.f), factor = normal(1, 1.f);
  DeviceBuffer<float> d_x(x), d_factor(factor);
  double sum = 0;
  for (float v : x) sum += v;
  DeviceBuffer<float> out(std::vector<float>{0.5f});
  cuda::add_sum(d_x.data(), static_cast<int64_t>(x.size()), out.data(), nullptr);
  cuda::add_sum(d_x.data(), static_cast<int64_t>(x.size()), out.data(), nullptr);
  EXPECT_NEAR(out.download()[0], 0.5 + 2 * sum, 1e-4 * (1 + std::abs(sum)));
  auto scaled = poisoned(x.size());
  cuda::scale(d_x.data(), d_factor.data(), static_cast<int64_t>(x.size()), scaled.data(), nullptr);
  std::vector<double> want(x.begin(), x.end());
  for (double& v : want) v *= factor[0];
  expect_close("scale", scaled.download(), want);
}

TEST_F(CudaTrainKernels, QkNormRopeBackward) {
  const int sequences = 3, seq_len = 37, rows = sequences * seq_len;
  for (const HeadShape& shape : qk_shapes()) {
    const auto [heads, kv_heads, head_dim] = shape;
    const size_t count = size_t(rows) * (heads + 2 * kv_heads) * head_dim;
    const auto qkv = normal(count, 2.f), d = normal(count, 1.f), q_gain = normal(heads, 1.f);
    for (int rotated : rotated_dims_of(head_dim)) {
      const RopeTable rope = rope_table(seq_len, head_dim, rotated, 10000.0);
      DeviceBuffer<float> d_raw(qkv), d_d(d), d_cos(rope.cos), d_sin(rope.sin), d_gain(q_gain);
      auto out = poisoned(count);
      auto out16 = poisoned<__nv_bfloat16>(count);
      auto partial = poisoned(size_t(rows) * heads);
      const auto want = twin_qk_norm_rope_backward(qkv, d, rows, seq_len, heads, kv_heads, head_dim, rotated, rope.cos,
                                                   rope.sin, q_gain);
      const std::string what = "qk_norm_rope_backward, " + shape_name(shape) + ", RoPE on " + std::to_string(rotated);
      auto run = [&](auto* into) {
        cuda::qk_norm_rope_backward(d_raw.data(), d_d.data(), rows, seq_len, heads, kv_heads, head_dim, rotated,
                                    d_cos.data(), d_sin.data(), d_gain.data(), into, partial.data(), nullptr);
      };
      run(out.data());
      expect_close(what, out.download(), want.d_qkv);
      expect_close(what + ": q_gain's shares", partial.download(), want.d_gain_partial);
      run(out16.data());
      expect_close(what + " to bf16", floats(out16.download()), want.d_qkv, kBf16RoundingTolerance);
      run(d_d.data());  // in place: the v columns stay as they are, which is their gradient
      expect_close(what + " in place", d_d.download(), want.d_qkv);
    }
  }
}

TEST_F(CudaTrainKernels, LeakyReluSquareBackward) {
  const auto pre = normal(10007, 1.f), d = normal(10007, 1.f);
  const auto count = static_cast<int64_t>(pre.size());
  for (float slope : {0.0f, 0.5f}) {
    const std::string what = "leaky_relu_square_backward, slope " + std::to_string(slope);
    DeviceBuffer<float> d_pre(pre), d_d(d);
    auto out16 = poisoned<__nv_bfloat16>(pre.size());
    cuda::leaky_relu_square_backward(d_pre.data(), d_d.data(), count, slope, out16.data(), nullptr);
    expect_close(what + " to bf16", floats(out16.download()), twin_leaky_relu_square_backward(pre, d, slope),
                 kBf16RoundingTolerance);
    cuda::leaky_relu_square_backward(d_pre.data(), d_d.data(), count, slope, d_d.data(), nullptr);
    expect_close(what + " in place", d_d.download(), twin_leaky_relu_square_backward(pre, d, slope));
  }
}

TEST_F(CudaTrainKernels, ColumnSumOfProductsAndOfOneInput) {
  const int rows = 4099, dim = 520;  // rows past one block's share, dim not a multiple of 32
  const auto a = normal(rows * dim, 1.f), b = normal(rows * dim, 1.f), base = normal(dim, 1.f);
  DeviceBuffer<float> d_a(a), d_b(b), scratch(static_cast<size_t>(cuda::column_sum_scratch(dim)));
  auto out = poisoned(dim);
  cuda::column_sum(d_a.data(), d_b.data(), rows, dim, out.data(), false, scratch.data(), nullptr);
  expect_close("column_sum of a * b", out.download(), twin_column_sum(a, b, rows, dim));
  DeviceBuffer<float> sum(base);
  cuda::column_sum(d_a.data(), nullptr, rows, dim, sum.data(), true, scratch.data(), nullptr);
  std::vector<double> want = twin_column_sum(a, {}, rows, dim);
  for (int j = 0; j < dim; ++j) want[j] += base[j];
  expect_close("column_sum of a, accumulating", sum.download(), want);
}

// The backward of scaled_sum against the chain rule in double, at row widths of one, four and
// eight float4 per lane and 2 or 3 rows per warp: g = d_out + d_out_extra + rms_norm's backward,
// then d_x = x_scale g, d_y (+)= y_scale g and the column sums of g x and g y (added to what is
// there), as the blocks' resid_mix, residual adds, skips and final norm use it.
TEST_F(CudaTrainKernels, ScaledSumBackward) {
  const int rows = 4099;
  for (int dim : {72, 512, 520}) {
    const size_t n = size_t(rows) * dim;
    const auto d_out = normal(n, 1.f), extra = normal(n, 1.f), out = normal(n, 2.f), d_normed = normal(n, 1.f);
    const auto x = normal(n, 1.f), y = normal(n, 1.f), x_scale = normal(dim, 1.f), y_scale = normal(dim, 1.f);
    const auto base = normal(n, 1.f), scale_base = normal(dim, 1.f);
    const std::vector<double> norm = twin_rms_norm_backward(out, d_normed, rows, dim);
    DeviceBuffer<float> dev_d_out(d_out), dev_extra(extra), dev_out(out), dev_d_normed(d_normed), dev_x(x), dev_y(y);
    DeviceBuffer<float> dev_x_scale(x_scale), dev_y_scale(y_scale);
    DeviceBuffer<float> scratch(static_cast<size_t>(cuda::column_sum_scratch(dim)));
    const std::string what = "scaled_sum_backward, dim " + std::to_string(dim);

    // Every term and both branches (resid_mix's backward): d_x over d_out, d_y added to what is there.
    std::vector<double> g(n), want_d_x(n), want_d_y(n), want_x_scale(scale_base.begin(), scale_base.end());
    std::vector<double> want_y_scale(want_x_scale);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = i % dim;
      g[i] = norm[i] + d_out[i] + extra[i];
      want_d_x[i] = g[i] * x_scale[c], want_d_y[i] = base[i] + g[i] * y_scale[c];
      want_x_scale[c] += g[i] * x[i], want_y_scale[c] += g[i] * y[i];
    }
    DeviceBuffer<float> d_x(d_out), d_y(base), d_x_scale(scale_base), d_y_scale(scale_base);
    cuda::ScaledSumGradient<float> all;
    all.d_out = d_x.data(), all.d_out_extra = dev_extra.data(), all.out = dev_out.data();
    all.d_normed = dev_d_normed.data();
    all.x = dev_x.data(), all.x_scale = dev_x_scale.data(), all.d_x = d_x.data(), all.d_x_scale = d_x_scale.data();
    all.y = dev_y.data(), all.y_scale = dev_y_scale.data(), all.d_y = d_y.data(), all.accumulate_d_y = true;
    all.d_y_scale = d_y_scale.data();
    cuda::scaled_sum_backward(all, rows, dim, scratch.data(), nullptr);
    expect_close(what + ": d_x over d_out", d_x.download(), want_d_x);
    expect_close(what + ": d_y, accumulating", d_y.download(), want_d_y);
    expect_close(what + ": d x_scale", d_x_scale.download(), want_x_scale);
    expect_close(what + ": d y_scale", d_y_scale.download(), want_y_scale);

    // A residual add with its norm (x_scale 1, no d x_scale): d_x = g, d_y in bf16.
    std::vector<double> want_g(n), want_scaled(n), want_scale(scale_base.begin(), scale_base.end());
    for (size_t i = 0; i < n; ++i) {
      want_g[i] = norm[i] + d_out[i], want_scaled[i] = want_g[i] * y_scale[i % dim];
      want_scale[i % dim] += want_g[i] * y[i];
    }
    auto g_out = poisoned(n);
    auto d_y16 = poisoned<__nv_bfloat16>(n);
    DeviceBuffer<float> d_scale(scale_base);
    cuda::ScaledSumGradient<__nv_bfloat16> add;
    add.d_out = dev_d_out.data(), add.out = dev_out.data(), add.d_normed = dev_d_normed.data(), add.d_x = g_out.data();
    add.y = dev_y.data(), add.y_scale = dev_y_scale.data(), add.d_y = d_y16.data(), add.d_y_scale = d_scale.data();
    cuda::scaled_sum_backward(add, rows, dim, scratch.data(), nullptr);
    expect_close(what + ": d_x = g", g_out.download(), want_g);
    expect_close(what + ": d_y to bf16", floats(d_y16.download()), want_scaled, kBf16RoundingTolerance);
    expect_close(what + ": d y_scale of a residual add", d_scale.download(), want_scale);

    // The norm alone (the final norm): d_x = its backward.
    auto norm_out = poisoned(n);
    cuda::ScaledSumGradient<float> final_norm;
    final_norm.out = dev_out.data(), final_norm.d_normed = dev_d_normed.data(), final_norm.d_x = norm_out.data();
    cuda::scaled_sum_backward(final_norm, rows, dim, scratch.data(), nullptr);
    expect_close(what + ": rms_norm's backward alone", norm_out.download(), norm);

    // A parallel block's resid_mix: no d_out, d_x added to what is there (lane 0's own share).
    std::vector<double> want_added(n);
    for (size_t i = 0; i < n; ++i) want_added[i] = base[i] + norm[i] * x_scale[i % dim];
    DeviceBuffer<float> added(base);
    cuda::ScaledSumGradient<float> mix;
    mix.out = dev_out.data(), mix.d_normed = dev_d_normed.data();
    mix.x = dev_x.data(), mix.x_scale = dev_x_scale.data(), mix.d_x = added.data(), mix.accumulate_d_x = true;
    cuda::scaled_sum_backward(mix, rows, dim, scratch.data(), nullptr);
    expect_close(what + ": d_x accumulating", added.download(), want_added);
  }
}

// The lanes' backward against the formula in double: from both lanes' gradients, and from the mean's
// (the last block); then the six row products through column_sum, as the trainer sums them.
TEST_F(CudaTrainKernels, ParallelLanesBackward) {
  const int rows = 1031;
  for (int dim : {72, 512}) {
    const size_t n = size_t(rows) * dim;
    const auto d0 = normal(n, 1.f), d1 = normal(n, 1.f), in0 = normal(n, 1.f), in1 = normal(n, 1.f);
    const auto attn = normal(n, 1.f), mlp = normal(n, 1.f), attn_scale = normal(dim, 1.f), mlp_scale = normal(dim, 1.f);
    const auto lanes = normal(cuda::kLaneParams, 1.f);
    DeviceBuffer<float> d_in0(in0), d_in1(in1), d_attn(attn), d_mlp(mlp), d_as(attn_scale), d_ms(mlp_scale), d_l(lanes);
    DeviceBuffer<float> scratch(static_cast<size_t>(cuda::column_sum_scratch(dim)));
    for (bool from_mean : {false, true}) {
      const std::string what = "parallel_lanes_backward, dim " + std::to_string(dim) + (from_mean ? ", from the mean" : "");
      std::vector<double> want0(n), want1(n), want_a(n), want_m(n), want_lanes(cuda::kLaneParams, 0.0);
      for (size_t i = 0; i < n; ++i) {
        const double g0 = from_mean ? 0.5 * d0[i] : d0[i], g1 = from_mean ? 0.5 * d0[i] : d1[i];
        const double a = double(attn[i]) * attn_scale[i % dim], m = double(mlp[i]) * mlp_scale[i % dim];
        want0[i] = lanes[0] * g0, want1[i] = lanes[1] * g1;
        want_a[i] = lanes[2] * g0 + lanes[3] * g1, want_m[i] = lanes[4] * g0 + lanes[5] * g1;
        const double products[] = {g0 * in0[i], g1 * in1[i], g0 * a, g1 * a, g0 * m, g1 * m};
        for (int j = 0; j < cuda::kLaneParams; ++j) want_lanes[j] += products[j];
      }
      DeviceBuffer<float> dev_d0(d0), dev_d1(d1);
      auto d_a = poisoned(n), d_m = poisoned(n), row_products = poisoned(size_t(rows) * cuda::kLaneParams);
      cuda::parallel_lanes_backward(dev_d0.data(), dev_d1.data(), from_mean, d_in0.data(), d_in1.data(), d_attn.data(),
                                    d_as.data(), d_mlp.data(), d_ms.data(), d_l.data(), rows, dim, d_a.data(),
                                    d_m.data(), row_products.data(), nullptr);
      DeviceBuffer<float> lane_gradient(std::vector<float>(cuda::kLaneParams, 0.f));
      cuda::column_sum(row_products.data(), nullptr, rows, cuda::kLaneParams, lane_gradient.data(), true,
                       scratch.data(), nullptr);
      expect_close(what + ": lane 0's residual share", dev_d0.download(), want0);
      expect_close(what + ": lane 1's residual share", dev_d1.download(), want1);
      expect_close(what + ": d A", d_a.download(), want_a);
      expect_close(what + ": d M", d_m.download(), want_m);
      expect_close(what + ": the lanes' gradient", lane_gradient.download(), want_lanes);
    }
  }
}

TEST_F(CudaTrainKernels, SoftcapCrossEntropyBackward) {
  const int rows = 129, vocab = 1024;
  const double cap = 30, weight = 0.25;
  const auto logits = normal(rows * vocab, 20.f);  // some past the cap's knee
  const auto targets = ids(rows, vocab);
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<uint16_t> d_targets(targets);
  DeviceBuffer<double> losses(rows);
  auto gradient16 = poisoned<__nv_bfloat16>(logits.size());
  const auto want = twin_softcap_cross_entropy_backward(logits, targets, vocab, cap, weight);
  cuda::softcap_cross_entropy_backward(d_logits.data(), d_targets.data(), rows, vocab, static_cast<float>(cap),
                                       static_cast<float>(weight), gradient16.data(), losses.data(), nullptr);
  expect_close("softcap_cross_entropy_backward: gradient to bf16", floats(gradient16.download()), want,
               kBf16RoundingTolerance);
  cuda::softcap_cross_entropy_backward(d_logits.data(), d_targets.data(), rows, vocab, static_cast<float>(cap),
                                       static_cast<float>(weight), d_logits.data(), losses.data(), nullptr);
  expect_close("softcap_cross_entropy_backward: gradient in place", d_logits.download(), want);
  expect_close("softcap_cross_entropy_backward: losses", losses.download(),
               twin_softcap_cross_entropy(logits, targets, vocab, cap));
}

TEST_F(CudaTrainKernels, EmbeddingBackwardSumsTheRowsOfEachId) {
  const int vocab = 50, dim = 64, rows = 1000;
  auto id = ids(rows, vocab - 1);  // the last id is never read: its row must stay as it was
  for (int r = 0; r < rows; r += 2) id[r] = 7;  // one id on 500+ rows: many segments of one token
  const auto d_rows = normal(rows * dim, 1.f), initial = normal(vocab * dim, 1.f);
  const cuda::RowsByToken lists = cuda::rows_by_token(id, vocab);  // the host's lists, as the trainer's
  ASSERT_LE(lists.segment_count(), cuda::max_embedding_segments(rows, vocab));
  ASSERT_GT(lists.token_segments[8] - lists.token_segments[7], 15);
  DeviceBuffer<float> dev_rows(d_rows), d_tok_emb(initial), scratch(lists.segment_count() * dim);
  DeviceBuffer<int32_t> d_order(lists.order), d_segments(lists.segments), d_token_segments(lists.token_segments);
  cuda::embedding_backward(dev_rows.data(), d_order.data(), d_segments.data(), d_token_segments.data(),
                           lists.segment_count(), vocab, dim, scratch.data(), d_tok_emb.data(), nullptr);
  expect_close("embedding_backward", d_tok_emb.download(), twin_embedding_backward(d_rows, id, initial, dim));
}

// Muon's elementwise parts and the norms: momentum, normalisation, update, clipping.
// MuonEq-R's row norm at every row width the kernels take (one to sixteen float4 a lane).
TEST_F(CudaTrainKernels, RmsNormRowsMatchesTheCpu) {
  for (int dim : {12, 512, 1536, 2048}) {
    const int64_t rows = 37;
    const auto x = normal(static_cast<size_t>(rows * dim), 3.f);
    DeviceBuffer<float> d_x(x);
    cuda::rms_norm_rows(d_x.data(), rows, dim, nullptr);
    expect_close("rms_norm_rows", d_x.download(), twin_rms_norm(x, rows, dim));
  }
}

TEST_F(CudaTrainKernels, MuonMomentumNormsUpdateAndClip) {
  const size_t count = 70001;
  const float momentum = 0.9f, lr = 0.03f;
  const auto buf = normal(count, 1.f), g = normal(count, 1.f), w = normal(count, 1.f);
  DeviceBuffer<float> d_buf(buf), d_g(g), d_w(w), norm(cuda::kSquaredNormFloats);
  const auto n = static_cast<int64_t>(count);
  cuda::muon_momentum(d_buf.data(), d_g.data(), n, momentum, nullptr);
  std::vector<double> want_buf(count), want_g(count);
  for (size_t i = 0; i < count; ++i) {
    want_buf[i] = momentum * double(buf[i]) + g[i];
    want_g[i] = g[i] + momentum * want_buf[i];
  }
  expect_close("muon_momentum: buffer", d_buf.download(), want_buf);
  expect_close("muon_momentum: Nesterov direction", d_g.download(), want_g);

  const std::vector<float> direction = d_g.download();
  double squares = 0;
  for (float x : direction) squares += double(x) * x;
  cuda::squared_norm(d_g.data(), n, norm.data(), nullptr);
  expect_close("squared_norm", norm.download(1), {squares});
  cuda::divide_by_norm(d_g.data(), norm.data(), n, nullptr);
  std::vector<double> unit(count);
  for (size_t i = 0; i < count; ++i) unit[i] = direction[i] / (std::sqrt(squares) + 1e-7);
  expect_close("divide_by_norm", d_g.download(), unit);

  cuda::apply_update(d_w.data(), d_g.data(), n, lr, 1.0f, nullptr);
  std::vector<double> want_w(count);
  const std::vector<float> u = d_g.download();
  for (size_t i = 0; i < count; ++i) want_w[i] = w[i] - double(lr) * u[i];
  expect_close("apply_update", d_w.download(), want_w);
  // With weight decay: w = keep w - lr u.
  const float keep = 0.998f;
  cuda::apply_update(d_w.data(), d_g.data(), n, lr, keep, nullptr);
  for (size_t i = 0; i < count; ++i) want_w[i] = keep * want_w[i] - double(lr) * u[i];
  expect_close("apply_update with decay", d_w.download(), want_w);

  // Clipping scales a vector of norm 1 (up to rounding) down to 0.5, and leaves it under a limit of 2.
  cuda::squared_norm(d_g.data(), n, norm.data(), nullptr);
  const float unit_norm = std::sqrt(norm.download()[0]);
  cuda::clip_by_norm(d_g.data(), norm.data(), n, 2.0f, nullptr);
  expect_close("clip_by_norm above the norm: unchanged", d_g.download(), std::vector<double>(u.begin(), u.end()));
  cuda::clip_by_norm(d_g.data(), norm.data(), n, 0.5f, nullptr);
  std::vector<double> clipped(count);
  for (size_t i = 0; i < count; ++i) clipped[i] = u[i] * (0.5 / (double(unit_norm) + 1e-6));
  expect_close("clip_by_norm below the norm", d_g.download(), clipped);
}

// torch.optim.Adam without weight decay, three steps from zero moments; then AdamW's fourth (keep < 1).
TEST_F(CudaTrainKernels, AdamFollowsTorchsUpdateRule) {
  const size_t count = 5003;
  const double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, lr = 0.05;
  const auto w0 = normal(count, 0.05f);
  DeviceBuffer<float> d_w(w0), d_m(std::vector<float>(count, 0.f)), d_v(std::vector<float>(count, 0.f));
  std::vector<double> w(w0.begin(), w0.end()), m(count, 0.0), v(count, 0.0);
  for (int step = 1; step <= 4; ++step) {
    const auto g = normal(count, step == 2 ? 1e-3f : 1.f);  // a small gradient: eps matters less than sqrt(v)
    DeviceBuffer<float> d_g(g);
    const double c1 = 1 - std::pow(beta1, step), c2 = 1 - std::pow(beta2, step);
    const double keep = step == 4 ? 0.99 : 1.0;
    cuda::adam(d_w.data(), d_g.data(), d_m.data(), d_v.data(), static_cast<int64_t>(count), float(beta1),
               float(beta2), float(eps), float(lr / c1), float(std::sqrt(c2)), float(keep), nullptr);
    for (size_t i = 0; i < count; ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * double(g[i]) * g[i];
      w[i] = keep * w[i] - lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
    }
    expect_close("adam step " + std::to_string(step) + ": weights", d_w.download(), w);
  }
  expect_close("adam: first moments", d_m.download(), m);
  expect_close("adam: second moments", d_v.download(), v);
}

}  // namespace
}  // namespace pgolf

#else

TEST(CudaTrainKernels, NeedCudaBuild) { GTEST_SKIP() << "built without CUDA (PGOLF_CUDA=OFF, or no nvcc found)"; }

#endif
