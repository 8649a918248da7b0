#include "gpu/cuda_eval.h"

#include <algorithm>
#include <climits>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/device_buffer.h"
#include "core/rope_table.h"
#include "kernels/forward_kernels.h"
#include "kernels/gemm.h"

namespace pgolf {

using cuda::DeviceBuffer;
using cuda::linear;

namespace {

// Tokens per forward in evaluate_cuda: 64 sequences of 1024, about 2 GB of activations for base9.
constexpr int kTokensPerCall = 64 * 1024;

std::span<const float> values(const Matrix<float>& m) { return {m.data(), static_cast<size_t>(m.size())}; }

struct BlockWeights {
  DeviceBuffer<float> qkv;  // c_q, c_k and c_v stacked [(H + 2 Hkv) D, C]: one GEMM makes q, k and v
  DeviceBuffer<float> attn_proj, q_gain, mlp_fc, mlp_proj, attn_scale, mlp_scale, resid_mix;
};

}  // namespace

struct CudaModel::State {
  ModelConfig config;
  int max_windows = 0, max_seq_len = 0;
  cuda::Gemm gemm;  // plain fp32 FMA: no TF32 or bf16 shortcuts, to hold the CPU reference's numbers
  // The legacy default stream: DeviceBuffer's blocking copies are ordered with the kernels on it.
  cudaStream_t stream = nullptr;

  DeviceBuffer<float> tok_emb, skip_weights, rope_cos, rope_sin;
  DeviceBuffer<float> smear_gate, smear_lambda, bigram_embed, bigram_proj, bigram_scale;  // empty without them
  std::vector<BlockWeights> blocks;

  // Activations of max_windows * max_seq_len rows (tokens).
  DeviceBuffer<uint16_t> inputs, targets, buckets;  // buckets: BigramHash's, per input
  DeviceBuffer<float> x0, x, normed, qkv, heads_out, projected, hidden, logits;
  DeviceBuffer<float> bigram_rows, bigram_out;
  std::vector<DeviceBuffer<float>> encoder_outputs;  // the U-Net skips
  DeviceBuffer<double> losses;
  // x xᵀ summed over one forward's rows, per matrix input (matrix_inputs' order); made on first use.
  std::vector<DeviceBuffer<float>> moment_sums;

  ~State() {
    if (gemm.handle) cublasDestroy(gemm.handle);
  }
  // Checks the windows and uploads them: all of their tokens as inputs, or (with_targets) all but
  // the last as inputs and all but the first as targets. Returns the inputs per window.
  int upload(std::span<const TokenWindow> windows, bool with_targets);
  // capture: sum x xᵀ of every matrix input into moment_sums.
  void forward(int windows, int seq_len, bool capture);
};

int CudaModel::State::upload(std::span<const TokenWindow> windows, bool with_targets) {
  require(!windows.empty(), "CudaModel: no windows");
  const size_t length = windows[0].size(), targets_per_token = with_targets ? 1 : 0;
  require(length > targets_per_token && length - targets_per_token <= static_cast<size_t>(max_seq_len),
          "CudaModel: a window of " + std::to_string(length) + " tokens; it takes " +
              std::to_string(1 + targets_per_token) + " to " + std::to_string(max_seq_len + targets_per_token));
  require(windows.size() <= static_cast<size_t>(max_windows),
          "CudaModel: " + std::to_string(windows.size()) + " windows, more than the " + std::to_string(max_windows) +
              " it was made for");
  const size_t seq_len = length - targets_per_token;
  std::vector<uint16_t> host_inputs, host_targets, host_buckets;
  host_inputs.reserve(windows.size() * seq_len);
  host_targets.reserve(with_targets ? windows.size() * seq_len : 0);
  for (const TokenWindow& w : windows) {
    require(w.size() == length, "CudaModel: windows of different lengths in one call");
    const auto outside = std::find_if(w.begin(), w.end(), [&](uint16_t t) { return t >= config.vocab; });
    require(outside == w.end(), "token id " + std::to_string(outside == w.end() ? 0 : *outside) +
                                    " is outside the model's vocab of " + std::to_string(config.vocab));
    host_inputs.insert(host_inputs.end(), w.begin(), w.begin() + seq_len);
    if (with_targets) host_targets.insert(host_targets.end(), w.begin() + 1, w.end());
  }
  if (config.bigram_buckets > 0) host_buckets = bigram_buckets_of(windows, seq_len, config.bigram_buckets);
  inputs.upload(host_inputs);
  targets.upload(host_targets);
  buckets.upload(host_buckets);
  return static_cast<int>(seq_len);
}

// trainer/model.cpp's forward, kernel by kernel, for `windows` sequences of seq_len tokens, up to
// the logits (raw: the softcap is the loss kernel's, or last_logits').
void CudaModel::State::forward(int windows, int seq_len, bool capture) {
  const ModelConfig& c = config;
  const int rows = windows * seq_len;
  const int d = c.head_dim();
  const std::vector<int> order = c.block_order();  // the block of each virtual layer
  const int encoders = c.encoder_layers(), skips = c.skips_now(), layers = static_cast<int>(order.size());
  std::vector<bool> seen(static_cast<size_t>(c.layers), false);  // a looped block's moments sum its passes
  const size_t stream_bytes = static_cast<size_t>(rows) * c.dim * sizeof(float);  // one [rows, C] activation
  // Where the CPU forward hands its observer a matrix input X [rows, dim]: column-major, its memory
  // is Xᵀ [dim, rows], so Xᵀ (Xᵀ)ᵀ = XᵀX.
  auto observe = [&](int block, MatrixInput input, const float* x) {
    if (!capture) return;
    const int dim = input_dim(c, input);
    const float beta = block >= 0 && seen[static_cast<size_t>(block)] ? 1 : 0;
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, dim, dim, rows, 1, x, dim, x, dim, beta,
         moment_sums[input_index(c, block, input)].data(), dim);
  };
  const bool bigram = c.bigram_buckets > 0;
  if (bigram) {
    cuda::gather_rows(bigram_embed.data(), buckets.data(), rows, c.bigram_dim, bigram_rows.data(), stream);
    linear(gemm, bigram_rows.data(), bigram_proj.data(), rows, c.bigram_dim, c.dim, bigram_out.data());
  }
  // The normed embedding into x0; with SmearGate v1 into x first, then through it; v2 goes between
  // the sum (into normed) and the norm.
  cuda::embedding_rms_norm(tok_emb.data(), inputs.data(), bigram ? bigram_out.data() : nullptr,
                           bigram ? bigram_scale.data() : nullptr, rows, c.dim, c.smear_v2() ? normed.data() : nullptr,
                           c.smear_v2() ? nullptr : c.smear_v1() ? x.data() : x0.data(), stream);
  if (c.smear_v1()) cuda::smear(x.data(), smear_gate.data(), rows, seq_len, c.dim, x0.data(), stream);
  if (c.smear_v2())
    cuda::smear_v2(normed.data(), smear_gate.data(), kSmearWindow, smear_lambda.data(), inputs.data(),
                   c.smear_mask_token(), rows, seq_len, c.dim, nullptr, x0.data(), stream);
  PGOLF_CUDA_CHECK(cudaMemcpyAsync(x.data(), x0.data(), stream_bytes, cudaMemcpyDeviceToDevice, stream));
  for (int i = 0; i < layers; ++i) {  // virtual layer i runs block b
    const int b = order[i];
    const BlockWeights& w = blocks[b];
    const int decoder = i - encoders;  // this layer's index among the decoder layers, if >= 0
    if (decoder >= 0 && decoder < skips)
      cuda::scaled_sum(x.data(), nullptr, encoder_outputs[encoders - 1 - decoder].data(),
                       skip_weights.data() + decoder * c.dim, rows, c.dim, x.data(), stream);
    cuda::scaled_sum(x.data(), w.resid_mix.data(), x0.data(), w.resid_mix.data() + c.dim, rows, c.dim, x.data(),
                     normed.data(), stream);
    observe(b, MatrixInput::kAttention, normed.data());
    linear(gemm, normed.data(), w.qkv.data(), rows, c.dim, (c.heads + 2 * c.kv_heads) * d, qkv.data());
    cuda::qk_norm_rope(qkv.data(), rows, seq_len, c.heads, c.kv_heads, d, c.rotated_dims(), rope_cos.data(),
                       rope_sin.data(), w.q_gain.data(), qkv.data(), stream);
    cuda::attention(qkv.data(), windows, seq_len, c.heads, c.kv_heads, d, heads_out.data(), stream);
    if (c.xsa_on(b)) cuda::xsa(heads_out.data(), qkv.data(), rows, c.heads, c.kv_heads, d, heads_out.data(), stream);
    observe(b, MatrixInput::kAttentionOutput, heads_out.data());
    linear(gemm, heads_out.data(), w.attn_proj.data(), rows, c.heads * d, c.dim, projected.data());
    cuda::scaled_sum(x.data(), nullptr, projected.data(), w.attn_scale.data(), rows, c.dim, x.data(), normed.data(),
                     stream);
    observe(b, MatrixInput::kMlp, normed.data());
    linear(gemm, normed.data(), w.mlp_fc.data(), rows, c.dim, c.mlp_hidden, hidden.data());
    cuda::leaky_relu_square(hidden.data(), static_cast<int64_t>(rows) * c.mlp_hidden,
                            static_cast<float>(c.mlp_negative_slope), hidden.data(), stream);
    observe(b, MatrixInput::kMlpHidden, hidden.data());
    linear(gemm, hidden.data(), w.mlp_proj.data(), rows, c.mlp_hidden, c.dim, projected.data());
    // After the last block, the final norm in the same pass.
    cuda::scaled_sum(x.data(), nullptr, projected.data(), w.mlp_scale.data(), rows, c.dim, x.data(),
                     i + 1 == layers ? normed.data() : nullptr, stream);
    seen[static_cast<size_t>(b)] = true;
    if (i < encoders)
      PGOLF_CUDA_CHECK(
          cudaMemcpyAsync(encoder_outputs[i].data(), x.data(), stream_bytes, cudaMemcpyDeviceToDevice, stream));
  }
  observe(-1, MatrixInput::kHead, normed.data());
  linear(gemm, normed.data(), tok_emb.data(), rows, c.dim, c.vocab, logits.data());
}

CudaModel::CudaModel(const Model<float>& model, int max_windows, int max_seq_len) : state_(std::make_unique<State>()) {
  const ModelConfig& c = model.config();
  require(max_windows > 0 && max_seq_len > 0, "CudaModel needs room for at least one window of one token");
  require(static_cast<int64_t>(max_windows) * max_seq_len <= INT_MAX, "CudaModel: too many tokens per forward");
  require(cuda::attention_supports_head_dim(c.head_dim()),
          "the CUDA attention kernel takes head_dim 8, 16, 32 or 64; this model's is " + std::to_string(c.head_dim()) +
              " (use --device cpu)");
  require(cuda::row_kernels_support_dim(c.dim), "the CUDA kernels take a model dim that is a multiple of 4 up to 2048; "
                                                "this model's is " + std::to_string(c.dim) + " (use --device cpu)");
  require(cuda::rope_kernels_support(c.head_dim(), c.rotated_dims()),
          "the CUDA kernels take partial RoPE on a multiple of 8 dims; this model turns " +
              std::to_string(c.rotated_dims()) + " (use --device cpu)");
  State& s = *state_;
  s.config = c;
  s.max_windows = max_windows;
  s.max_seq_len = max_seq_len;
  PGOLF_CUDA_CHECK(cublasCreate(&s.gemm.handle));
  PGOLF_CUDA_CHECK(cublasSetStream(s.gemm.handle, s.stream));

  const ModelParams<float>& p = model.params();
  s.tok_emb = DeviceBuffer<float>(values(p.tok_emb));
  s.skip_weights = DeviceBuffer<float>(values(p.skip_weights));
  if (c.smear_gate != SmearGate::kNone) s.smear_gate = DeviceBuffer<float>(values(p.smear_gate));
  if (c.smear_v2()) s.smear_lambda = DeviceBuffer<float>(values(p.smear_lambda));
  if (c.bigram_buckets > 0) {
    s.bigram_embed = DeviceBuffer<float>(values(p.bigram_embed));
    s.bigram_proj = DeviceBuffer<float>(values(p.bigram_proj));
    s.bigram_scale = DeviceBuffer<float>(values(p.bigram_scale));
  }
  const RopeTable rope = rope_table(max_seq_len, c.head_dim(), c.rotated_dims(), c.rope_base, c.rope_rounding);
  s.rope_cos = DeviceBuffer<float>(std::span<const float>(rope.cos));
  s.rope_sin = DeviceBuffer<float>(std::span<const float>(rope.sin));
  for (const BlockParams<float>& b : p.blocks) {
    std::vector<float> qkv;
    for (const Matrix<float>* m : {&b.c_q, &b.c_k, &b.c_v}) qkv.insert(qkv.end(), m->data(), m->data() + m->size());
    s.blocks.push_back({DeviceBuffer<float>(std::span<const float>(qkv)), DeviceBuffer<float>(values(b.attn_proj)),
                        DeviceBuffer<float>(values(b.q_gain)), DeviceBuffer<float>(values(b.mlp_fc)),
                        DeviceBuffer<float>(values(b.mlp_proj)), DeviceBuffer<float>(values(b.attn_scale)),
                        DeviceBuffer<float>(values(b.mlp_scale)), DeviceBuffer<float>(values(b.resid_mix))});
  }

  const size_t rows = static_cast<size_t>(max_windows) * max_seq_len;
  const size_t d = static_cast<size_t>(c.head_dim());
  s.inputs = DeviceBuffer<uint16_t>(rows);
  s.targets = DeviceBuffer<uint16_t>(rows);
  s.buckets = DeviceBuffer<uint16_t>(c.bigram_buckets > 0 ? rows : 0);
  s.bigram_rows = DeviceBuffer<float>(c.bigram_buckets > 0 ? rows * c.bigram_dim : 0);
  s.bigram_out = DeviceBuffer<float>(c.bigram_buckets > 0 ? rows * c.dim : 0);
  s.x0 = DeviceBuffer<float>(rows * c.dim);
  s.x = DeviceBuffer<float>(rows * c.dim);
  s.normed = DeviceBuffer<float>(rows * c.dim);
  s.qkv = DeviceBuffer<float>(rows * (c.heads + 2 * c.kv_heads) * d);
  s.heads_out = DeviceBuffer<float>(rows * c.heads * d);
  s.projected = DeviceBuffer<float>(rows * c.dim);
  s.hidden = DeviceBuffer<float>(rows * c.mlp_hidden);
  s.logits = DeviceBuffer<float>(rows * c.vocab);
  for (int i = 0; i < c.encoder_layers(); ++i) s.encoder_outputs.emplace_back(rows * c.dim);
  s.losses = DeviceBuffer<double>(rows);
}

CudaModel::~CudaModel() = default;

std::vector<double> CudaModel::token_losses(std::span<const TokenWindow> windows) {
  State& s = *state_;
  if (windows.empty()) return {};
  const int seq_len = s.upload(windows, true);
  const int rows = static_cast<int>(windows.size()) * seq_len;
  s.forward(static_cast<int>(windows.size()), seq_len, false);
  cuda::softcap_cross_entropy(s.logits.data(), s.targets.data(), rows, s.config.vocab,
                              static_cast<float>(s.config.logit_softcap), s.losses.data(), s.stream);
  return s.losses.download(static_cast<size_t>(rows));
}

void CudaModel::add_input_moments(std::span<const TokenWindow> windows, InputMoments& moments) {
  State& s = *state_;
  require(moments.config().describe() == s.config.describe(), "CudaModel: moments of another model");
  const std::vector<InputSlot> slots = matrix_inputs(s.config);
  if (s.moment_sums.empty())
    for (const InputSlot& slot : slots) s.moment_sums.emplace_back(static_cast<size_t>(input_dim(s.config, slot.input)) *
                                                                   input_dim(s.config, slot.input));
  const int seq_len = s.upload(windows, false);
  s.forward(static_cast<int>(windows.size()), seq_len, true);
  for (size_t i = 0; i < slots.size(); ++i) {
    const int dim = input_dim(s.config, slots[i].input);
    const std::vector<float> sum = s.moment_sums[i].download();
    moments.sum(slots[i].block, slots[i].input) += Eigen::Map<const Matrix<float>>(sum.data(), dim, dim).cast<double>();
  }
  moments.add_positions(static_cast<int64_t>(windows.size()) * seq_len);
}

Matrix<float> CudaModel::last_logits(std::span<const TokenWindow> windows) {
  State& s = *state_;
  const int seq_len = s.upload(windows, false);
  s.forward(static_cast<int>(windows.size()), seq_len, false);
  const size_t vocab = static_cast<size_t>(s.config.vocab), row_bytes = vocab * sizeof(float);
  Matrix<float> logits(static_cast<Eigen::Index>(windows.size()), s.config.vocab);
  // Row seq_len - 1 of every window: one strided copy.
  PGOLF_CUDA_CHECK(cudaMemcpy2D(logits.data(), row_bytes, s.logits.data() + (seq_len - 1) * vocab, seq_len * row_bytes,
                                row_bytes, windows.size(), cudaMemcpyDeviceToHost));
  const float cap = static_cast<float>(s.config.logit_softcap);
  return (cap * (logits.array() / cap).tanh()).matrix();  // the softcap, as Model<float> applies it
}

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the error, it is an answer here
    return false;
  }
  return count > 0;
}

std::string cuda_device_name() {
  int device = 0;
  PGOLF_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp properties{};
  PGOLF_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return properties.name;
}

EvalResult evaluate_cuda(const Model<float>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                         const EvalOptions& options) {
  require(options.seq_len > 0, "sequence length must be positive");
  const int windows_per_call = std::max(1, kTokensPerCall / options.seq_len);
  CudaModel gpu(model, windows_per_call, options.seq_len);
  return evaluate_windows(tokens, bytes, model.config().vocab, options, static_cast<size_t>(windows_per_call),
                          [&](std::span<const TokenWindow> windows, size_t scored) {
                            return last_targets(gpu.token_losses(windows), windows.size(), scored);
                          });
}

InputMoments input_moments_cuda(const Model<float>& model, std::span<const TokenWindow> windows,
                                const ProgressReport& progress) {
  require(!windows.empty() && !windows[0].empty(), "no windows to run");
  ProgressCounter windows_run(progress, "calibrating", windows.size());
  const int seq_len = static_cast<int>(windows[0].size());
  const size_t per_call = std::min(static_cast<size_t>(std::max(1, kTokensPerCall / seq_len)), windows.size());
  CudaModel gpu(model, static_cast<int>(per_call), seq_len);
  InputMoments moments(model.config());
  for (size_t first = 0; first < windows.size(); first += per_call) {
    const size_t count = std::min(per_call, windows.size() - first);
    gpu.add_input_moments(windows.subspan(first, count), moments);
    windows_run.advance(count);
  }
  return moments;
}

std::vector<uint16_t> self_generate_cuda(const Model<float>& model, const SamplingOptions& options,
                                         const ProgressReport& progress) {
  options.validate(model.config().vocab);  // before sizing the GPU model by them
  const int64_t per_call = std::min<int64_t>(std::max(1, kTokensPerCall / options.seq_len), options.sequences);
  CudaModel gpu(model, static_cast<int>(per_call), options.seq_len);
  return self_generate(options, model.config().vocab, static_cast<size_t>(per_call),
                       [&](std::span<const TokenWindow> prefixes) { return gpu.last_logits(prefixes); }, progress);
}

}  // namespace pgolf
