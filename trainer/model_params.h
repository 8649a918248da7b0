// The Parameter Golf baseline model's shape (ModelConfig) and weights (ModelParams), with the
// reference trainer's tensor names, so checkpoints move both ways; loading, init and export.
#pragma once
#include <Eigen/Dense>
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/float_tensor.h"
#include "core/rope_table.h"

namespace pgolf {

// The shards begin every document with BOS (id 1, the sp1024 tokenizers' bos_id).
inline constexpr uint16_t kBosToken = 1;

// SmearGate, position by position within each sequence:
// v1 ("smear.gate" [dim], g): after the embedding's norm, x_t = (1 − σ(g)) x_t + σ(g) x_{t−1}
//   (x_{−1} = 0), as the 03-20 records and PR #212.
// v2 ("smear_gate.weight" [1, kSmearWindow], w; "smear_lambda", λ): before the norm, x_t +=
//   λ σ(w · x_t[0 : kSmearWindow]) x_{t−1} for t ≥ 1, except where token t is BOS: the records'
//   document-boundary fix (R1, R2). v2-unmasked leaves the mask out, as PR #1797 did (it lets one
//   document's last token leak into the next one's first).
enum class SmearGate { kNone, kV1, kV2, kV2Unmasked };
inline constexpr int kSmearWindow = 12;
// "none", "v1", "v2", "v2-unmasked" and back; InputError naming the text otherwise.
SmearGate parse_smear_gate(const std::string& text);
std::string smear_gate_name(SmearGate gate);

struct ModelConfig {
  int vocab = 0;
  int dim = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int mlp_hidden = 0;
  double logit_softcap = 30.0;
  double rope_base = 10000.0;
  // The MLP's activation: leaky_relu(x)² = (max(x, 0) + slope · min(x, 0))², relu² at 0 (the
  // baseline), LeakyReLU(0.5)² in the records ("--activation leaky-relu2:0.5").
  double mlp_negative_slope = 0.0;
  // Partial RoPE: rotate the first rope_dims dims of each head, pairs (j, rope_dims/2 + j), and
  // leave the rest; 0 rotates the whole head (the baseline). The records use 16 of 64.
  int rope_dims = 0;
  // RoPE's table in float32, or rounded as the baseline script's bf16 cast rounds it (core/rope_table.h).
  RopeRounding rope_rounding = RopeRounding::kFloat32;
  SmearGate smear_gate = SmearGate::kNone;
  // BigramHash: a table [bigram_buckets, bigram_dim] ("bigram.embed.weight") read at the bucket of
  // each (previous, current) token pair, projected to dim ("bigram.proj.weight") and scaled
  // ("bigram.scale") into the embedding before its norm; 0 buckets: none.
  int bigram_buckets = 0, bigram_dim = 0;
  // XSA on the last xsa_layers blocks (all of them at `layers`): each head's attention output minus
  // its projection on its own position's unit value vector, before attn.proj. No parameters.
  int xsa_layers = 0;
  // Depth recurrence: blocks loop_first..loop_last run `loops` times in a row, the same weights each
  // pass (the records' "loop 3-5", 3 passes: blocks 0,1,2,3,4,5,3,4,5,3,4,5,6,...,10, 17 virtual
  // layers); PR #212's shared blocks loop the whole stack. loops 1: none. `looping` is whether the
  // loop runs now (training turns it on at --loop-from); the U-Net halves and skips follow the
  // virtual layers, and skip_weights has the looped stack's count of them.
  int loop_first = 0, loop_last = 0, loops = 1;
  bool looping = true;
  // Multi-token prediction (training only, never exported): heads "mtp.i.weight" [dim, dim], i <
  // mtp_heads, predict token t + 2 + i from the final norm's output through the tied embedding,
  // PR #212's aux head; the objective adds mtp_weight times their cross-entropies, summed over the
  // positions that have such a target, divided by the main loss's target count.
  int mtp_heads = 0;
  double mtp_weight = 0.5;
  // Parallel residual lanes (the records M7 and R1, "layers >= 7 / 8"): from block parallel_from on
  // (0: none) the stream is two lanes, both the stream as it enters that block. Each such block's
  // attention reads resid_mix of lane 0 and x0 and its MLP reads rms_norm(lane 1); with A =
  // attn_scale * attn and M = mlp_scale * mlp, lane k <- r_k lane_k + p_attn,k A + p_mlp,k M
  // ("blocks.N.lanes" [3, 2]: rows r, p_attn, p_mlp; r starts at 1.1, p at 1). A U-Net skip adds to
  // both lanes; the final norm reads their mean. The lanes run in the decoder half, after any loop.
  int parallel_from = 0;

  int head_dim() const { return dim / heads; }
  int rotated_dims() const { return rope_dims > 0 ? rope_dims : head_dim(); }
  bool xsa_on(int layer) const { return layer >= layers - xsa_layers; }
  bool parallel_on(int block) const { return parallel_from > 0 && block >= parallel_from; }
  bool smear_v1() const { return smear_gate == SmearGate::kV1; }
  bool smear_v2() const { return smear_gate == SmearGate::kV2 || smear_gate == SmearGate::kV2Unmasked; }
  // The token SmearGate v2 does not smear into (BOS), or -1 where it smears into every token.
  int smear_mask_token() const { return smear_gate == SmearGate::kV2 ? kBosToken : -1; }
  bool recurrent() const { return loops > 1; }
  // The block each virtual layer runs, in order (0..layers-1 without recurrence or while not looping).
  std::vector<int> block_order() const;
  // U-Net halves over the virtual layers: the first half push skips, the rest pop them (last pushed
  // first); skips_now of them run now, skip_count is skip_weights' rows (the looped stack's).
  int virtual_layers() const { return static_cast<int>(block_order().size()); }
  int encoder_layers() const { return virtual_layers() / 2; }
  int skips_now() const { return std::min(encoder_layers(), virtual_layers() - encoder_layers()); }
  int skip_count() const;

  void validate() const;  // InputError when the numbers cannot make a model
  std::string describe() const;  // "9 layers, dim 512, 8 heads / 4 KV heads, MLP 1024, vocab 1024"

  // Reads the shape off a checkpoint's tensors (tok_emb.weight, blocks.N.*; smear.gate and
  // bigram.* turn those on); InputError names the tensor that is missing or inconsistent.
  static ModelConfig from_tensors(const std::map<std::string, FloatTensor>& tensors);
};

// What a checkpoint records of its model beyond the shapes, in its __metadata__ (pgolf train
// writes it, artifacts carry the checkpoint's metadata): the sequence length it was trained at,
// its RoPE base and logit softcap. Absent in checkpoints of other trainers.
struct RecordedSettings {
  std::optional<int> seq_len;
  std::optional<double> rope_base, logit_softcap;
  std::optional<double> mlp_negative_slope;  // "pgolf.activation"
  std::optional<int> rope_dims;               // "pgolf.rope_dims"
  std::optional<RopeRounding> rope_rounding;  // "pgolf.rope_table"
  std::optional<SmearGate> smear_gate;        // "pgolf.smear_gate"
  std::optional<int> xsa_layers;              // "pgolf.xsa_layers"
  std::optional<int> loop_first, loop_last, loops;  // "pgolf.loop_layers" ("A..B"), "pgolf.loops"
};

// "relu2" (slope 0) or "leaky-relu2:S" (0 < S < 1) to the MLP's negative slope and back; InputError
// naming the text otherwise.
double parse_activation(const std::string& text);
std::string activation_name(double negative_slope);

// BigramHash's bucket of every position of one sequence, as the records compute it in int32:
// position 0 gets buckets − 1; position t, ((36313 · ids[t]) XOR (27191 · ids[t − 1])) mod
// (buckets − 1), the products wrapping as int32 and the remainder taken non-negative.
// "A..B" (blocks A to B, 0 <= A <= B) to (A, B) and back; InputError naming the text otherwise.
std::pair<int, int> parse_loop_range(const std::string& text);
std::string loop_range_text(int first, int last);

std::vector<uint16_t> bigram_buckets_of(std::span<const uint16_t> ids, int buckets);
// The buckets of the first `inputs` tokens of every window, window after window (a GPU batch's).
std::vector<uint16_t> bigram_buckets_of(std::span<const std::span<const uint16_t>> windows, size_t inputs, int buckets);
std::map<std::string, std::string> recorded_metadata(const ModelConfig& config, int seq_len);
// InputError naming the key for a value that is not a positive number.
RecordedSettings recorded_settings(const std::map<std::string, std::string>& metadata);
// config with the recorded rope base, softcap, activation and RoPE dims, where recorded.
ModelConfig with_recorded(ModelConfig config, const RecordedSettings& recorded);

// Every tensor is a row-major matrix, [out, in] for linear weights as in PyTorch (y = x W^T);
// a 1-D tensor of n values is one row of n.
template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
struct BlockParams {
  Matrix<T> c_q, c_k, c_v, attn_proj;  // [H*D, C], [Hkv*D, C], [Hkv*D, C], [C, H*D]
  Matrix<T> q_gain;                    // [H]
  Matrix<T> mlp_fc, mlp_proj;          // [F, C], [C, F]
  Matrix<T> attn_scale, mlp_scale;     // [C]
  Matrix<T> resid_mix;                 // [2, C]: weights of the block input and of x0
  Matrix<T> lanes;                     // [3, 2] in parallel blocks (ModelConfig::parallel_from), else empty
};

template <typename T>
struct ModelParams {
  Matrix<T> tok_emb;  // [V, C], tied to the output layer
  std::vector<BlockParams<T>> blocks;
  Matrix<T> skip_weights;  // [skip_count, C]
  // Empty when the config has no SmearGate or BigramHash.
  Matrix<T> smear_gate;    // v1: [C]; v2: [1, kSmearWindow]
  Matrix<T> smear_lambda;  // v2: a scalar (0-D)
  Matrix<T> bigram_embed;  // [buckets, bigram_dim]
  Matrix<T> bigram_proj;   // [C, bigram_dim]
  Matrix<T> bigram_scale;  // a scalar (0-D in the checkpoint)
  std::vector<Matrix<T>> mtp;  // [C, C] per multi-token head (training states only)
};

// Multi-token heads are trained, never exported: the checkpoint leaves them out.
inline bool exported_tensor(const std::string& name) { return !name.starts_with("mtp."); }

// Calls f(name, matrix, shape) for every tensor in a fixed order, with its checkpoint name and
// checkpoint shape. Params may be const or not.
template <typename Params, typename F>
void for_each_parameter(Params& p, F&& f) {
  auto vector_shape = [](const auto& m) { return std::vector<int64_t>{m.cols()}; };
  auto matrix_shape = [](const auto& m) { return std::vector<int64_t>{m.rows(), m.cols()}; };
  f(std::string("tok_emb.weight"), p.tok_emb, matrix_shape(p.tok_emb));
  for (size_t i = 0; i < p.blocks.size(); ++i) {
    auto& b = p.blocks[i];
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    f(prefix + "attn.c_q.weight", b.c_q, matrix_shape(b.c_q));
    f(prefix + "attn.c_k.weight", b.c_k, matrix_shape(b.c_k));
    f(prefix + "attn.c_v.weight", b.c_v, matrix_shape(b.c_v));
    f(prefix + "attn.proj.weight", b.attn_proj, matrix_shape(b.attn_proj));
    f(prefix + "attn.q_gain", b.q_gain, vector_shape(b.q_gain));
    f(prefix + "mlp.fc.weight", b.mlp_fc, matrix_shape(b.mlp_fc));
    f(prefix + "mlp.proj.weight", b.mlp_proj, matrix_shape(b.mlp_proj));
    f(prefix + "attn_scale", b.attn_scale, vector_shape(b.attn_scale));
    f(prefix + "mlp_scale", b.mlp_scale, vector_shape(b.mlp_scale));
    f(prefix + "resid_mix", b.resid_mix, matrix_shape(b.resid_mix));
    if (b.lanes.size() > 0) f(prefix + "lanes", b.lanes, matrix_shape(b.lanes));
  }
  f(std::string("skip_weights"), p.skip_weights, matrix_shape(p.skip_weights));
  if (p.smear_lambda.size() > 0) {
    f(std::string("smear_gate.weight"), p.smear_gate, matrix_shape(p.smear_gate));
    f(std::string("smear_lambda"), p.smear_lambda, std::vector<int64_t>{});
  } else if (p.smear_gate.size() > 0) {
    f(std::string("smear.gate"), p.smear_gate, vector_shape(p.smear_gate));
  }
  if (p.bigram_embed.size() > 0) {
    f(std::string("bigram.embed.weight"), p.bigram_embed, matrix_shape(p.bigram_embed));
    f(std::string("bigram.proj.weight"), p.bigram_proj, matrix_shape(p.bigram_proj));
    f(std::string("bigram.scale"), p.bigram_scale, std::vector<int64_t>{});
  }
  for (size_t i = 0; i < p.mtp.size(); ++i)
    f("mtp." + std::to_string(i) + ".weight", p.mtp[i], matrix_shape(p.mtp[i]));
}

template <typename T>
ModelParams<T> zero_params(const ModelConfig& config);

// As the reference initialises them: tok_emb N(0, 0.005); c_q, c_k, c_v and mlp.fc uniform
// in +-1/sqrt(fan_in) (nn.Linear's default); attn.proj and mlp.proj zero; q_gain 1.5; the
// scales 1; resid_mix [ones; zeros]; skip_weights ones. As the records: smear.gate 0 (σ = 0.5),
// smear_gate.weight and smear_lambda 0 (v2 starts as the identity), lanes' r 1.1 and p 1,
// bigram.embed 0, bigram.scale 0.05; bigram.proj as nn.Linear (a zero table behind a zero proj
// would get no gradient, ever). Deterministic in seed on every platform.
template <typename T>
ModelParams<T> init_params(const ModelConfig& config, uint64_t seed);

// Checks every tensor against the config: InputError names a missing tensor, a wrong shape
// (expected and actual) or a tensor the model does not have.
template <typename T>
ModelParams<T> params_from_tensors(const ModelConfig& config, const std::map<std::string, FloatTensor>& tensors);

template <typename T>
std::map<std::string, FloatTensor> params_to_tensors(const ModelParams<T>& params);

// sum += term, tensor by tensor (same config).
template <typename T>
void add_params(ModelParams<T>& sum, const ModelParams<T>& term);

}  // namespace pgolf
