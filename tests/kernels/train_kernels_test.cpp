// Each training kernel (kernels/train_kernels.h) against its CPU twin (cpu_twins.h, or the update
// rule written out here for the elementwise optimizer kernels) on fresh random inputs:
// ||gpu - twin|| / ||twin|| < 1e-4. Skipped without a GPU.
#include <gtest/gtest.h>

#ifdef PGOLF_HAVE_CUDA
#include "cpu_twins.h"
#include "kernel_checks.h"
#include "kernels/train_kernels.h"

namespace pgolf {
namespace {

using cuda::DeviceBuffer;
using namespace pgolf::test;
using CudaTrainKernels = test::CudaKernelTest;

TEST_F(CudaTrainKernels, RmsNormBackwardPerRowAndPerHead) {
  for (int width : {512, 64}) {  // a whole row; one head
    const int rows = 301;
    const auto x = normal(rows * width, 2.f), dy = normal(rows * width, 1.f), base = normal(rows * width, 1.f);
    DeviceBuffer<float> d_x(x), d_dy(dy);
    auto dx = poisoned(rows * width);
    cuda::rms_norm_backward(d_x.data(), d_dy.data(), rows, width, dx.data(), false, nullptr);
    const std::vector<double> want = twin_rms_norm_backward(x, dy, rows, width);
    expect_close("rms_norm_backward, width " + std::to_string(width), dx.download(), want);
    DeviceBuffer<float> sum(base);  // accumulate: dx += ...
    cuda::rms_norm_backward(d_x.data(), d_dy.data(), rows, width, sum.data(), true, nullptr);
    std::vector<double> want_sum(want);
    for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] += base[i];
    expect_close("rms_norm_backward, accumulating", sum.download(), want_sum);
  }
}

TEST_F(CudaTrainKernels, ReluSquareBackward) {
  const auto pre = normal(10007, 1.f), d = normal(10007, 1.f);
  const auto count = static_cast<int64_t>(pre.size());
  DeviceBuffer<float> d_pre(pre), d_d(d);
  auto out16 = poisoned<__nv_bfloat16>(pre.size());
  cuda::relu_square_backward(d_pre.data(), d_d.data(), count, out16.data(), nullptr);
  expect_close("relu_square_backward to bf16", floats(out16.download()), twin_relu_square_backward(pre, d),
               kBf16RoundingTolerance);
  cuda::relu_square_backward(d_pre.data(), d_d.data(), count, d_d.data(), nullptr);
  expect_close("relu_square_backward in place", d_d.download(), twin_relu_square_backward(pre, d));
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

// The backward of out = x + scale * y: the scale's gradient (column sums of d * y, added to what
// is there) and d * scale into a float (added, or in place over d) or a bf16 output.
TEST_F(CudaTrainKernels, ScaledAddBackward) {
  const int rows = 4099, dim = 520;
  const auto d = normal(rows * dim, 1.f), y = normal(rows * dim, 1.f), scale = normal(dim, 1.f);
  const auto base = normal(rows * dim, 1.f), d_scale_base = normal(dim, 1.f);
  DeviceBuffer<float> d_d(d), d_y(y), d_scale(scale), out(base), d_scale_sum(d_scale_base);
  DeviceBuffer<float> scratch(static_cast<size_t>(cuda::column_sum_scratch(dim)));
  auto out16 = poisoned<__nv_bfloat16>(d.size());
  std::vector<double> scaled(d.size()), accumulated(d.size());
  for (size_t i = 0; i < d.size(); ++i) scaled[i] = double(d[i]) * scale[i % dim], accumulated[i] = base[i] + scaled[i];
  std::vector<double> want_d_scale = twin_column_sum(d, y, rows, dim);
  for (int j = 0; j < dim; ++j) want_d_scale[j] += d_scale_base[j];

  cuda::scaled_add_backward(d_d.data(), d_y.data(), d_scale.data(), rows, dim, d_scale_sum.data(), out.data(), true,
                            scratch.data(), nullptr);
  expect_close("scaled_add_backward: d scale", d_scale_sum.download(), want_d_scale);
  expect_close("scaled_add_backward: d y, accumulating", out.download(), accumulated);
  cuda::scaled_add_backward(d_d.data(), d_y.data(), d_scale.data(), rows, dim, d_scale_sum.data(), out16.data(), false,
                            scratch.data(), nullptr);
  expect_close("scaled_add_backward: d y to bf16", floats(out16.download()), scaled, kBf16RoundingTolerance);
  cuda::scaled_add_backward(d_d.data(), d_y.data(), d_scale.data(), rows, dim, d_scale_sum.data(), d_d.data(), false,
                            scratch.data(), nullptr);
  expect_close("scaled_add_backward: d y in place", d_d.download(), scaled);
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

  cuda::apply_update(d_w.data(), d_g.data(), n, lr, nullptr);
  std::vector<double> want_w(count);
  const std::vector<float> u = d_g.download();
  for (size_t i = 0; i < count; ++i) want_w[i] = w[i] - double(lr) * u[i];
  expect_close("apply_update", d_w.download(), want_w);

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

// torch.optim.Adam without weight decay, three steps from zero moments.
TEST_F(CudaTrainKernels, AdamFollowsTorchsUpdateRule) {
  const size_t count = 5003;
  const double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, lr = 0.05;
  const auto w0 = normal(count, 0.05f);
  DeviceBuffer<float> d_w(w0), d_m(std::vector<float>(count, 0.f)), d_v(std::vector<float>(count, 0.f));
  std::vector<double> w(w0.begin(), w0.end()), m(count, 0.0), v(count, 0.0);
  for (int step = 1; step <= 3; ++step) {
    const auto g = normal(count, step == 2 ? 1e-3f : 1.f);  // a small gradient: eps matters less than sqrt(v)
    DeviceBuffer<float> d_g(g);
    const double c1 = 1 - std::pow(beta1, step), c2 = 1 - std::pow(beta2, step);
    cuda::adam(d_w.data(), d_g.data(), d_m.data(), d_v.data(), static_cast<int64_t>(count), float(beta1),
               float(beta2), float(eps), float(lr / c1), float(std::sqrt(c2)), nullptr);
    for (size_t i = 0; i < count; ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * double(g[i]) * g[i];
      w[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
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
