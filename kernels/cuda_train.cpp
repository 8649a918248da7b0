#include "kernels/cuda_train.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_eval.h"
#include "kernels/device_buffer.h"
#include "kernels/forward_kernels.h"
#include "kernels/gemm.h"
#include "kernels/train_kernels.h"

namespace pgolf {

cuda::RowsByToken cuda::rows_by_token(const std::vector<uint16_t>& ids, int vocab) {
  RowsByToken rows{std::vector<int32_t>(ids.size()), std::vector<int32_t>(static_cast<size_t>(vocab) + 1, 0)};
  for (uint16_t t : ids) ++rows.offsets[t + 1];
  std::partial_sum(rows.offsets.begin(), rows.offsets.end(), rows.offsets.begin());
  std::vector<int32_t> next(rows.offsets.begin(), rows.offsets.end() - 1);
  for (size_t r = 0; r < ids.size(); ++r) rows.order[next[ids[r]]++] = static_cast<int32_t>(r);
  return rows;
}

using cuda::DeviceBuffer;

namespace {

// A block's tensors in for_each_parameter's order after tok_emb: 10 per block.
enum BlockTensor { kCq, kCk, kCv, kAttnProj, kQGain, kMlpFc, kMlpProj, kAttnScale, kMlpScale, kResidMix, kPerBlock };

// One tensor of the flat parameter vector: where it starts, its rows and columns.
struct Slot {
  size_t offset, rows, cols;
  ParamGroup group;
};

// What one block keeps from its forward (rows x width each).
struct BlockActivations {
  DeviceBuffer<float> x_in, mixed, attn_in, qkv_raw, qkv, heads_out, lse, attn_out, after_attn, mlp_in, fc_out,
      hidden, mlp_out, x_out;
};

}  // namespace

struct CudaTrainer::State {
  ModelConfig config;
  TrainSettings settings;
  int rows = 0;  // micro_batch * seq_len: the rows every buffer is made for
  cublasHandle_t cublas = nullptr;
  cudaStream_t stream = nullptr;  // the legacy default stream, ordered with DeviceBuffer's copies
  bool tf32 = false;

  std::vector<Slot> slots;  // per tensor, for_each_parameter's order
  DeviceBuffer<float> params, grads, momentum, adam_m, adam_v;
  int64_t optimizer_steps = 0;
  DeviceBuffer<float> rope_cos, rope_sin;

  DeviceBuffer<uint16_t> inputs, targets;
  DeviceBuffer<int32_t> order, offsets;  // the embedding backward's token lists
  DeviceBuffer<float> x0, final_normed, logits;
  DeviceBuffer<double> losses;
  std::vector<BlockActivations> blocks;
  // Backward scratch.
  DeviceBuffer<float> d_x, d_x0, t1, t2, d_hidden, d_heads, d_qkv, gain_partial, delta, column_scratch;
  std::vector<DeviceBuffer<float>> d_encoder;  // what reaches each U-Net skip from its decoder
  // Newton-Schulz scratch, sized for the largest matrix.
  DeviceBuffer<float> ns_x, ns_y, ns_a, ns_b, norm;
  int64_t peak_bytes = 0;

  // Data parallel: the collectives run on comm_stream (non-blocking: the legacy default stream
  // would serialise with it), ordered after the compute stream's work by `ready`.
  std::unique_ptr<cuda::RankGroup> group;
  cudaStream_t comm_stream = nullptr;
  cudaEvent_t ready = nullptr, comm_done = nullptr;
  int64_t local_micro_batches = 1, micro_batches_seen = 0;
  bool gradient_summed = false;  // this step's gradient was summed during the backward
  DeviceBuffer<double> shared_values;

  ~State() {
    if (cublas) cublasDestroy(cublas);
    if (ready) cudaEventDestroy(ready);
    if (comm_done) cudaEventDestroy(comm_done);
    if (comm_stream) cudaStreamDestroy(comm_stream);
  }
  float* param(size_t i) { return params.data() + slots[i].offset; }
  float* grad(size_t i) { return grads.data() + slots[i].offset; }
  size_t block_slot(int layer, BlockTensor t) const { return 1 + static_cast<size_t>(layer) * kPerBlock + t; }
  float* bp(int layer, BlockTensor t) { return param(block_slot(layer, t)); }
  float* bg(int layer, BlockTensor t) { return grad(block_slot(layer, t)); }

  void upload_windows(std::span<const TokenWindow> windows);
  void forward(int sequences);
  void backward(int sequences, float weight, bool sum_over_ranks);
  // Sums grads[slots first .. last] over the ranks on comm_stream, after the work queued so far.
  void sum_gradient(size_t first, size_t last);
  // What is queued on comm_stream from now on waits for the work queued so far on the compute
  // stream; wait_for_collectives is the other way round.
  void collectives_after_compute();
  void wait_for_collectives();
  void block_backward(int layer, int sequences);
  void newton_schulz(float* g, int64_t rows, int64_t cols, float* out);
  void copy(float* to, const float* from, int64_t count) {
    PGOLF_CUDA_CHECK(cudaMemcpyAsync(to, from, count * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
  void add(float* to, const float* from, int64_t count) {  // to += from
    const float one = 1;
    PGOLF_CUDA_CHECK(cublasSaxpy(cublas, static_cast<int>(count), &one, from, 1, to, 1));
  }
};

// The same windows as Model::loss_and_gradient: inputs and targets, and per token id the rows
// that read it for the embedding backward.
void CudaTrainer::State::upload_windows(std::span<const TokenWindow> windows) {
  const int seq_len = settings.seq_len;
  require(!windows.empty() && windows.size() <= static_cast<size_t>(settings.micro_batch),
          "CudaTrainer: " + std::to_string(windows.size()) + " windows; it takes 1 to " +
              std::to_string(settings.micro_batch));
  std::vector<uint16_t> in, out;
  for (const TokenWindow& w : windows) {
    require(w.size() == static_cast<size_t>(seq_len) + 1,
            "CudaTrainer: windows must have seq_len + 1 = " + std::to_string(seq_len + 1) + " tokens");
    in.insert(in.end(), w.begin(), w.end() - 1);
    out.insert(out.end(), w.begin() + 1, w.end());
  }
  const auto outside = std::find_if(in.begin(), in.end(), [&](uint16_t t) { return t >= config.vocab; });
  const auto outside_target = std::find_if(out.begin(), out.end(), [&](uint16_t t) { return t >= config.vocab; });
  require(outside == in.end() && outside_target == out.end(),
          "a token id is outside the model's vocab of " + std::to_string(config.vocab));
  const cuda::RowsByToken rows = cuda::rows_by_token(in, config.vocab);
  inputs.upload(in);
  targets.upload(out);
  order.upload(rows.order);
  offsets.upload(rows.offsets);
}

// cuda_eval's forward with every activation kept; logits are left for the loss kernels.
void CudaTrainer::State::forward(int sequences) {
  const ModelConfig& c = config;
  const int seq_len = settings.seq_len, n = sequences * seq_len, d = c.head_dim();
  const int qkv_width = (c.heads + 2 * c.kv_heads) * d, encoders = c.encoder_layers();
  const int64_t stream_count = int64_t{n} * c.dim;
  cuda::embedding_rms_norm(param(0), inputs.data(), n, c.dim, x0.data(), stream);
  for (int i = 0; i < c.layers; ++i) {
    BlockActivations& a = blocks[i];
    copy(a.x_in.data(), i == 0 ? x0.data() : blocks[i - 1].x_out.data(), stream_count);
    const int decoder = i - encoders;
    if (decoder >= 0 && decoder < c.skip_count())
      cuda::add_scaled(a.x_in.data(), blocks[encoders - 1 - decoder].x_out.data(),
                       param(slots.size() - 1) + decoder * c.dim, n, c.dim, stream);
    copy(a.mixed.data(), a.x_in.data(), stream_count);
    cuda::resid_mix(a.mixed.data(), x0.data(), bp(i, kResidMix), n, c.dim, stream);
    cuda::rms_norm(a.mixed.data(), n, c.dim, a.attn_in.data(), stream);
    cuda::linear(cublas, a.attn_in.data(), bp(i, kCq), n, c.dim, qkv_width, a.qkv_raw.data());
    copy(a.qkv.data(), a.qkv_raw.data(), int64_t{n} * qkv_width);
    cuda::qk_norm_rope(a.qkv.data(), n, seq_len, c.heads, c.kv_heads, d, rope_cos.data(), rope_sin.data(),
                       bp(i, kQGain), stream);
    cuda::attention_with_lse(a.qkv.data(), sequences, seq_len, c.heads, c.kv_heads, d, a.heads_out.data(),
                             a.lse.data(), stream);
    cuda::linear(cublas, a.heads_out.data(), bp(i, kAttnProj), n, c.heads * d, c.dim, a.attn_out.data());
    copy(a.after_attn.data(), a.mixed.data(), stream_count);
    cuda::add_scaled(a.after_attn.data(), a.attn_out.data(), bp(i, kAttnScale), n, c.dim, stream);
    cuda::rms_norm(a.after_attn.data(), n, c.dim, a.mlp_in.data(), stream);
    cuda::linear(cublas, a.mlp_in.data(), bp(i, kMlpFc), n, c.dim, c.mlp_hidden, a.fc_out.data());
    copy(a.hidden.data(), a.fc_out.data(), int64_t{n} * c.mlp_hidden);
    cuda::relu_square(a.hidden.data(), int64_t{n} * c.mlp_hidden, stream);
    cuda::linear(cublas, a.hidden.data(), bp(i, kMlpProj), n, c.mlp_hidden, c.dim, a.mlp_out.data());
    copy(a.x_out.data(), a.after_attn.data(), stream_count);
    cuda::add_scaled(a.x_out.data(), a.mlp_out.data(), bp(i, kMlpScale), n, c.dim, stream);
  }
  cuda::rms_norm(blocks.back().x_out.data(), n, c.dim, final_normed.data(), stream);
  cuda::linear(cublas, final_normed.data(), param(0), n, c.dim, c.vocab, logits.data());
}

// trainer/model.cpp's block_backward: d_x holds the gradient of the block's output and leaves
// with that of its input; d_x0 gathers the gradient of x0.
void CudaTrainer::State::block_backward(int i, int sequences) {
  const ModelConfig& c = config;
  const int seq_len = settings.seq_len, n = sequences * seq_len, d = c.head_dim();
  const int qkv_width = (c.heads + 2 * c.kv_heads) * d;
  BlockActivations& a = blocks[i];
  float* scratch = column_scratch.data();
  // x_out = after_attn + mlp_scale * mlp_out
  cuda::column_sum(d_x.data(), a.mlp_out.data(), n, c.dim, bg(i, kMlpScale), true, scratch, stream);
  cuda::scale_channels(d_x.data(), bp(i, kMlpScale), n, c.dim, t1.data(), false, stream);
  cuda::linear_backward_weight(cublas, t1.data(), a.hidden.data(), n, c.mlp_hidden, c.dim, bg(i, kMlpProj));
  cuda::linear_backward_input(cublas, t1.data(), bp(i, kMlpProj), n, c.mlp_hidden, c.dim, d_hidden.data(), false);
  cuda::relu_square_backward(a.fc_out.data(), d_hidden.data(), int64_t{n} * c.mlp_hidden, stream);
  cuda::linear_backward_weight(cublas, d_hidden.data(), a.mlp_in.data(), n, c.dim, c.mlp_hidden, bg(i, kMlpFc));
  cuda::linear_backward_input(cublas, d_hidden.data(), bp(i, kMlpFc), n, c.dim, c.mlp_hidden, t2.data(), false);
  cuda::rms_norm_backward(a.after_attn.data(), t2.data(), n, c.dim, d_x.data(), true, stream);
  // after_attn = mixed + attn_scale * attn_out
  cuda::column_sum(d_x.data(), a.attn_out.data(), n, c.dim, bg(i, kAttnScale), true, scratch, stream);
  cuda::scale_channels(d_x.data(), bp(i, kAttnScale), n, c.dim, t1.data(), false, stream);
  cuda::linear_backward_weight(cublas, t1.data(), a.heads_out.data(), n, c.heads * d, c.dim, bg(i, kAttnProj));
  cuda::linear_backward_input(cublas, t1.data(), bp(i, kAttnProj), n, c.heads * d, c.dim, d_heads.data(), false);
  cuda::attention_backward(a.qkv.data(), a.heads_out.data(), a.lse.data(), d_heads.data(), sequences, seq_len,
                           c.heads, c.kv_heads, d, d_qkv.data(), delta.data(), stream);
  cuda::qk_norm_rope_backward(a.qkv_raw.data(), d_qkv.data(), n, seq_len, c.heads, c.kv_heads, d, rope_cos.data(),
                              rope_sin.data(), bp(i, kQGain), gain_partial.data(), stream);
  cuda::column_sum(gain_partial.data(), nullptr, n, c.heads, bg(i, kQGain), true, scratch, stream);
  cuda::linear_backward_weight(cublas, d_qkv.data(), a.attn_in.data(), n, c.dim, qkv_width, bg(i, kCq));
  cuda::linear_backward_input(cublas, d_qkv.data(), bp(i, kCq), n, c.dim, qkv_width, t2.data(), false);
  cuda::rms_norm_backward(a.mixed.data(), t2.data(), n, c.dim, d_x.data(), true, stream);
  // mixed = mix[0] * x_in + mix[1] * x0
  cuda::column_sum(d_x.data(), a.x_in.data(), n, c.dim, bg(i, kResidMix), true, scratch, stream);
  cuda::column_sum(d_x.data(), x0.data(), n, c.dim, bg(i, kResidMix) + c.dim, true, scratch, stream);
  cuda::scale_channels(d_x.data(), bp(i, kResidMix) + c.dim, n, c.dim, d_x0.data(), true, stream);
  cuda::scale_channels(d_x.data(), bp(i, kResidMix), n, c.dim, d_x.data(), false, stream);
}

void CudaTrainer::State::sum_gradient(size_t first, size_t last) {
  collectives_after_compute();
  const size_t begin = slots[first].offset, end = slots[last].offset + slots[last].rows * slots[last].cols;
  group->sum(grads.data() + begin, end - begin, comm_stream);
}

void CudaTrainer::State::collectives_after_compute() {
  PGOLF_CUDA_CHECK(cudaEventRecord(ready, stream));
  PGOLF_CUDA_CHECK(cudaStreamWaitEvent(comm_stream, ready));
}

void CudaTrainer::State::wait_for_collectives() {
  PGOLF_CUDA_CHECK(cudaEventRecord(comm_done, comm_stream));
  PGOLF_CUDA_CHECK(cudaStreamWaitEvent(stream, comm_done));
}

// Model::loss_and_gradient's backward; with sum_over_ranks each block's gradient (a contiguous run
// of slots) is summed over the ranks as soon as the block is done, the embedding's and the skip
// weights' (written by several blocks) at the end.
void CudaTrainer::State::backward(int sequences, float weight, bool sum_over_ranks) {
  const ModelConfig& c = config;
  const int n = sequences * settings.seq_len, encoders = c.encoder_layers();
  const int64_t stream_count = int64_t{n} * c.dim;
  float* scratch = column_scratch.data();
  cuda::softcap_cross_entropy_backward(logits.data(), targets.data(), n, c.vocab, static_cast<float>(c.logit_softcap),
                                       weight / static_cast<float>(n), losses.data(), stream);
  cuda::linear_backward_weight(cublas, logits.data(), final_normed.data(), n, c.dim, c.vocab, grad(0));
  cuda::linear_backward_input(cublas, logits.data(), param(0), n, c.dim, c.vocab, t2.data(), false);
  cuda::rms_norm_backward(blocks.back().x_out.data(), t2.data(), n, c.dim, d_x.data(), false, stream);
  PGOLF_CUDA_CHECK(cudaMemsetAsync(d_x0.data(), 0, stream_count * sizeof(float), stream));
  const size_t skips = slots.size() - 1;
  for (int i = c.layers - 1; i >= 0; --i) {
    if (i < encoders) add(d_x.data(), d_encoder[i].data(), stream_count);  // every encoder has a skip
    block_backward(i, sequences);
    const int decoder = i - encoders;
    if (decoder >= 0 && decoder < c.skip_count()) {
      const int encoder = encoders - 1 - decoder;
      cuda::column_sum(d_x.data(), blocks[encoder].x_out.data(), n, c.dim, grad(skips) + decoder * c.dim, true,
                       scratch, stream);
      cuda::scale_channels(d_x.data(), param(skips) + decoder * c.dim, n, c.dim, d_encoder[encoder].data(), false,
                           stream);
    }
    if (sum_over_ranks) sum_gradient(block_slot(i, kCq), block_slot(i, kResidMix));  // the block's first and last
  }
  add(d_x.data(), d_x0.data(), stream_count);
  cuda::embedding_rms_norm_backward(param(0), inputs.data(), d_x.data(), n, c.dim, t1.data(), stream);
  cuda::embedding_backward(t1.data(), order.data(), offsets.data(), c.vocab, c.dim, grad(0), stream);
  if (sum_over_ranks) {
    group->begin_group();
    sum_gradient(0, 0);
    sum_gradient(skips, skips);
    group->end_group();
  }
}

// optimizer.cpp's newton_schulz on the device: g [rows, cols] -> out, same shape.
void CudaTrainer::State::newton_schulz(float* g, int64_t rows, int64_t cols, float* out) {
  const bool transposed = rows > cols;
  const int r = static_cast<int>(std::min(rows, cols)), k = static_cast<int>(std::max(rows, cols));
  const float one = 1, zero = 0, a = kNewtonSchulzA, b = kNewtonSchulzB, c = kNewtonSchulzC;
  // X [r, k] row-major = [k, r] column-major.
  float* x = ns_x.data();
  float* y = ns_y.data();
  if (transposed)  // g [k, r] row-major = [r, k] column-major; x = its transpose
    PGOLF_CUDA_CHECK(cublasSgeam(cublas, CUBLAS_OP_T, CUBLAS_OP_N, k, r, &one, g, r, &zero, x, k, x, k));
  else
    copy(x, g, rows * cols);
  cuda::squared_norm(x, rows * cols, norm.data(), stream);
  cuda::divide_by_norm(x, norm.data(), rows * cols, stream);
  for (int step = 0; step < settings.optimizer.newton_schulz_steps; ++step) {
    // A = X X^T [r, r] (symmetric); B = b A + c A A; X = a X + B X
    PGOLF_CUDA_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, r, r, k, &one, x, k, x, k, &zero, ns_a.data(), r));
    copy(ns_b.data(), ns_a.data(), int64_t{r} * r);
    PGOLF_CUDA_CHECK(
        cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, r, r, r, &c, ns_a.data(), r, ns_a.data(), r, &b, ns_b.data(), r));
    copy(y, x, int64_t{r} * k);
    PGOLF_CUDA_CHECK(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, k, r, r, &one, x, k, ns_b.data(), r, &a, y, k));
    std::swap(x, y);
  }
  if (transposed)  // back to [k, r] row-major = [r, k] column-major
    PGOLF_CUDA_CHECK(cublasSgeam(cublas, CUBLAS_OP_T, CUBLAS_OP_N, r, k, &one, x, k, &zero, out, r, out, r));
  else
    copy(out, x, rows * cols);
}

CudaTrainer::CudaTrainer(const TrainState& state, const TrainSettings& settings, bool tf32,
                         std::unique_ptr<cuda::RankGroup> group)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  const ModelConfig& c = state.config;
  settings.validate();
  c.validate();
  require(cuda::attention_supports_head_dim(c.head_dim()),
          "the CUDA trainer's attention takes head_dim 8, 16, 32 or 64; this model's is " +
              std::to_string(c.head_dim()));
  s.config = c;
  s.settings = settings;
  s.tf32 = tf32;
  s.optimizer_steps = state.optimizer.steps;
  const int64_t rows = int64_t{settings.micro_batch} * settings.seq_len;
  require(rows <= (int64_t{1} << 24), "--micro-batch x --seq-len is too large for the CUDA trainer");
  s.rows = static_cast<int>(rows);
  const int d = c.head_dim();
  const int64_t qkv_width = int64_t{c.heads + 2 * c.kv_heads} * d;

  size_t total = 0, largest = 0;
  for_each_parameter(state.params, [&](const std::string& name, const Matrix<float>& m, const std::vector<int64_t>&) {
    s.slots.push_back({total, static_cast<size_t>(m.rows()), static_cast<size_t>(m.cols()), param_group(name)});
    total += static_cast<size_t>(m.size());
    if (param_group(name) == ParamGroup::Matrix) largest = std::max(largest, static_cast<size_t>(m.size()));
  });
  const int64_t ns_side = std::max<int64_t>(c.dim, std::max<int64_t>(c.mlp_hidden, qkv_width));

  // Every allocation below, in floats, checked against the free memory first.
  const int64_t per_block = rows * (9 * int64_t{c.dim} + 2 * qkv_width + int64_t{c.heads} * d + c.heads +
                                    2 * int64_t{c.mlp_hidden});
  const int64_t scratch = rows * (4 * int64_t{c.dim} + c.mlp_hidden + int64_t{c.heads} * d + qkv_width + 2 * c.heads) +
                          cuda::column_sum_scratch(static_cast<int>(std::max<int64_t>(c.dim, c.heads))) +
                          rows * int64_t{c.dim} * c.skip_count();
  const int64_t floats = 5 * static_cast<int64_t>(total) + c.layers * per_block + scratch +
                         rows * (2 * int64_t{c.dim} + c.vocab + 2) + 2 * static_cast<int64_t>(largest) +
                         2 * ns_side * ns_side;
  const double needed = static_cast<double>(floats) * 4 + 512.0 * (1 << 20);  // + cuBLAS and the CUDA context
  size_t free_bytes = 0, total_bytes = 0;
  PGOLF_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  require(needed <= static_cast<double>(free_bytes),
          "this model with micro-batches of " + std::to_string(settings.micro_batch) + " x " +
              std::to_string(settings.seq_len) + " tokens needs " + std::to_string(std::llround(needed / (1 << 20))) +
              " MiB of GPU memory; " + std::to_string(free_bytes >> 20) + " MiB are free (lower --micro-batch)");

  PGOLF_CUDA_CHECK(cublasCreate(&s.cublas));
  PGOLF_CUDA_CHECK(cublasSetMathMode(s.cublas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
  PGOLF_CUDA_CHECK(cublasSetStream(s.cublas, s.stream));
  auto flat = [&](const ModelParams<float>& p) {
    std::vector<float> values(total);
    size_t i = 0;
    for_each_parameter(p, [&](const std::string&, const Matrix<float>& m, const std::vector<int64_t>&) {
      std::copy(m.data(), m.data() + m.size(), values.begin() + static_cast<int64_t>(s.slots[i++].offset));
    });
    return DeviceBuffer<float>(std::span<const float>(values));
  };
  s.params = flat(state.params);
  s.momentum = flat(state.optimizer.momentum);
  s.adam_m = flat(state.optimizer.adam_m);
  s.adam_v = flat(state.optimizer.adam_v);
  s.grads = DeviceBuffer<float>(total);
  PGOLF_CUDA_CHECK(cudaMemset(s.grads.data(), 0, total * sizeof(float)));
  const cuda::RopeTable rope = cuda::rope_table(settings.seq_len, d, c.rope_base);
  s.rope_cos = DeviceBuffer<float>(std::span<const float>(rope.cos));
  s.rope_sin = DeviceBuffer<float>(std::span<const float>(rope.sin));

  auto buffer = [&](int64_t width) { return DeviceBuffer<float>(static_cast<size_t>(rows * width)); };
  s.inputs = DeviceBuffer<uint16_t>(static_cast<size_t>(rows));
  s.targets = DeviceBuffer<uint16_t>(static_cast<size_t>(rows));
  s.order = DeviceBuffer<int32_t>(static_cast<size_t>(rows));
  s.offsets = DeviceBuffer<int32_t>(static_cast<size_t>(c.vocab) + 1);
  s.x0 = buffer(c.dim);
  s.final_normed = buffer(c.dim);
  s.logits = buffer(c.vocab);
  s.losses = DeviceBuffer<double>(static_cast<size_t>(rows));
  for (int i = 0; i < c.layers; ++i)
    s.blocks.push_back({buffer(c.dim), buffer(c.dim), buffer(c.dim), buffer(qkv_width), buffer(qkv_width),
                        buffer(int64_t{c.heads} * d), buffer(c.heads), buffer(c.dim), buffer(c.dim), buffer(c.dim),
                        buffer(c.mlp_hidden), buffer(c.mlp_hidden), buffer(c.dim), buffer(c.dim)});
  s.d_x = buffer(c.dim);
  s.d_x0 = buffer(c.dim);
  s.t1 = buffer(c.dim);
  s.t2 = buffer(c.dim);
  s.d_hidden = buffer(c.mlp_hidden);
  s.d_heads = buffer(int64_t{c.heads} * d);
  s.d_qkv = buffer(qkv_width);
  s.gain_partial = buffer(c.heads);
  s.delta = buffer(c.heads);
  s.column_scratch =
      DeviceBuffer<float>(static_cast<size_t>(cuda::column_sum_scratch(static_cast<int>(std::max(c.dim, c.heads)))));
  for (int i = 0; i < c.encoder_layers(); ++i) s.d_encoder.push_back(buffer(c.dim));
  s.ns_x = DeviceBuffer<float>(largest);
  s.ns_y = DeviceBuffer<float>(largest);
  s.ns_a = DeviceBuffer<float>(static_cast<size_t>(ns_side * ns_side));
  s.ns_b = DeviceBuffer<float>(static_cast<size_t>(ns_side * ns_side));
  s.norm = DeviceBuffer<float>(1);
  if (group) {
    settings.validate_ranks(group->ranks());
    s.local_micro_batches = settings.micro_batches() / group->ranks();
    s.group = std::move(group);
    PGOLF_CUDA_CHECK(cudaStreamCreateWithFlags(&s.comm_stream, cudaStreamNonBlocking));
    PGOLF_CUDA_CHECK(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming));
    PGOLF_CUDA_CHECK(cudaEventCreateWithFlags(&s.comm_done, cudaEventDisableTiming));
    s.shared_values = DeviceBuffer<double>(16);
  }
}

CudaTrainer::~CudaTrainer() = default;

double CudaTrainer::accumulate(std::span<const TokenWindow> windows, double weight) {
  State& s = *state_;
  s.upload_windows(windows);
  const int sequences = static_cast<int>(windows.size());
  s.forward(sequences);
  // The step's last micro-batch (the loop in training.cpp runs local_micro_batches per step).
  const bool last = s.group && ++s.micro_batches_seen == s.local_micro_batches;
  s.backward(sequences, static_cast<float>(weight), last);
  s.gradient_summed = s.gradient_summed || last;
  const std::vector<double> losses = s.losses.download(static_cast<size_t>(sequences) * s.settings.seq_len);
  size_t free_bytes = 0, total_bytes = 0;
  PGOLF_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  s.peak_bytes = std::max(s.peak_bytes, static_cast<int64_t>(total_bytes - free_bytes));
  return std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
}

void CudaTrainer::step(double lr_scale, int64_t step) {
  State& s = *state_;
  const OptimizerSettings& o = s.settings.optimizer;
  const cudaStream_t stream = s.stream;
  if (s.group) {
    // A caller that ran fewer micro-batches than a step's share (the tests) sums it all here.
    if (!s.gradient_summed) s.sum_gradient(0, s.slots.size() - 1);
    s.wait_for_collectives();
    s.gradient_summed = false;
    s.micro_batches_seen = 0;
  }
  if (o.grad_clip > 0) {
    cuda::squared_norm(s.grads.data(), static_cast<int64_t>(s.grads.size()), s.norm.data(), stream);
    cuda::clip_by_norm(s.grads.data(), s.norm.data(), static_cast<int64_t>(s.grads.size()),
                       static_cast<float>(o.grad_clip), stream);
  }
  ++s.optimizer_steps;
  const float momentum = static_cast<float>(muon_momentum(o, step));
  const double correction1 = 1 - std::pow(o.beta1, static_cast<double>(s.optimizer_steps));
  const double correction2 = 1 - std::pow(o.beta2, static_cast<double>(s.optimizer_steps));
  // Muon's direction: momentum on every rank (each keeps the whole state), Newton-Schulz on the
  // matrix's owner, which then hands the result to the others.
  const int rank = this->rank(), ranks = this->ranks();
  int matrix = 0;
  for (size_t i = 0; i < s.slots.size(); ++i) {
    const Slot& slot = s.slots[i];
    if (slot.group != ParamGroup::Matrix) continue;
    cuda::muon_momentum(s.momentum.data() + slot.offset, s.grad(i), static_cast<int64_t>(slot.rows * slot.cols),
                        momentum, stream);
    if (matrix++ % ranks == rank)
      s.newton_schulz(s.grad(i), static_cast<int64_t>(slot.rows), static_cast<int64_t>(slot.cols), s.grad(i));
  }
  if (s.group) {
    s.collectives_after_compute();
    s.group->begin_group();
    matrix = 0;
    for (size_t i = 0; i < s.slots.size(); ++i)
      if (s.slots[i].group == ParamGroup::Matrix)
        s.group->broadcast(s.grad(i), s.slots[i].rows * s.slots[i].cols, matrix++ % ranks, s.comm_stream);
    s.group->end_group();
    s.wait_for_collectives();
  }
  for (size_t i = 0; i < s.slots.size(); ++i) {
    const Slot& slot = s.slots[i];
    const auto count = static_cast<int64_t>(slot.rows * slot.cols);
    float* w = s.param(i);
    float* g = s.grad(i);
    if (slot.group == ParamGroup::Matrix) {
      const double shape_scale =
          std::sqrt(std::max(1.0, static_cast<double>(slot.rows) / static_cast<double>(slot.cols)));
      cuda::apply_update(w, g, count, static_cast<float>(o.matrix_lr * lr_scale * shape_scale), stream);
      continue;
    }
    const double lr = (slot.group == ParamGroup::Embedding ? o.embed_lr : o.scalar_lr) * lr_scale;
    cuda::adam(w, g, s.adam_m.data() + slot.offset, s.adam_v.data() + slot.offset, count, static_cast<float>(o.beta1),
               static_cast<float>(o.beta2), static_cast<float>(o.eps), static_cast<float>(lr / correction1),
               static_cast<float>(std::sqrt(correction2)), stream);
  }
  PGOLF_CUDA_CHECK(cudaMemsetAsync(s.grads.data(), 0, s.grads.size() * sizeof(float), stream));
  PGOLF_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::vector<double> CudaTrainer::token_losses(std::span<const TokenWindow> windows) {
  State& s = *state_;
  s.upload_windows(windows);
  const int n = static_cast<int>(windows.size()) * s.settings.seq_len;
  s.forward(static_cast<int>(windows.size()));
  cuda::softcap_cross_entropy(s.logits.data(), s.targets.data(), n, s.config.vocab,
                              static_cast<float>(s.config.logit_softcap), s.losses.data(), s.stream);
  return s.losses.download(static_cast<size_t>(n));
}

size_t CudaTrainer::windows_per_call() const { return static_cast<size_t>(state_->settings.micro_batch); }

namespace {

void download_into(const DeviceBuffer<float>& flat, const std::vector<Slot>& slots, ModelParams<float>& p) {
  const std::vector<float> values = flat.download();
  size_t i = 0;
  for_each_parameter(p, [&](const std::string&, Matrix<float>& m, const std::vector<int64_t>&) {
    std::copy_n(values.begin() + static_cast<int64_t>(slots[i++].offset), m.size(), m.data());
  });
}

}  // namespace

void CudaTrainer::export_state(TrainState& state) {
  const State& s = *state_;
  state.params = zero_params<float>(s.config);
  state.optimizer = zero_optimizer_state(s.config);
  download_into(s.params, s.slots, state.params);
  download_into(s.momentum, s.slots, state.optimizer.momentum);
  download_into(s.adam_m, s.slots, state.optimizer.adam_m);
  download_into(s.adam_v, s.slots, state.optimizer.adam_v);
  state.optimizer.steps = s.optimizer_steps;
}

ModelParams<float> CudaTrainer::gradient() const {
  ModelParams<float> g = zero_params<float>(state_->config);
  download_into(state_->grads, state_->slots, g);
  return g;
}

std::string CudaTrainer::device() const {
  const State& s = *state_;
  return "cuda (" + cuda_device_name() + "), fp32" + (s.tf32 ? " with TF32 GEMMs" : "") +
         (s.group ? ", rank " + std::to_string(s.group->rank()) + " of " + std::to_string(s.group->ranks()) : "");
}

int CudaTrainer::rank() const { return state_->group ? state_->group->rank() : 0; }
int CudaTrainer::ranks() const { return state_->group ? state_->group->ranks() : 1; }

void CudaTrainer::sum_over_ranks(std::span<double> values) {
  State& s = *state_;
  if (!s.group) return;
  require(values.size() <= s.shared_values.size(), "CudaTrainer::sum_over_ranks: at most 16 values");
  s.shared_values.upload(values);  // blocking: done before the collective starts
  s.group->sum(s.shared_values.data(), values.size(), s.comm_stream);
  PGOLF_CUDA_CHECK(cudaStreamSynchronize(s.comm_stream));
  const std::vector<double> sums = s.shared_values.download(values.size());
  std::copy(sums.begin(), sums.end(), values.begin());
}

int64_t CudaTrainer::peak_memory_bytes() const { return state_->peak_bytes; }

}  // namespace pgolf
