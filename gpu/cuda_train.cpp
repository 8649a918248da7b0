#include "gpu/cuda_train.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>
#include <type_traits>

#include "core/error.h"
#include "gpu/cuda_eval.h"
#include "kernels/cuda_check.h"
#include "kernels/device_buffer.h"
#include "core/rope_table.h"
#include "kernels/forward_kernels.h"
#include "kernels/gemm.h"
#include "kernels/train_kernels.h"

namespace pgolf {

cuda::RowsByToken cuda::rows_by_token(const std::vector<uint16_t>& ids, int vocab) {
  std::vector<int32_t> offsets(static_cast<size_t>(vocab) + 1, 0);  // token v's rows: order[offsets[v] ..)
  for (uint16_t t : ids) ++offsets[t + 1];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  RowsByToken rows{std::vector<int32_t>(ids.size()), {}, {}};
  std::vector<int32_t> next(offsets.begin(), offsets.end() - 1);
  for (size_t r = 0; r < ids.size(); ++r) rows.order[next[ids[r]]++] = static_cast<int32_t>(r);
  for (int v = 0; v < vocab; ++v) {
    rows.token_segments.push_back(static_cast<int32_t>(rows.segments.size()));
    for (int32_t first = offsets[v]; first < offsets[v + 1]; first += kEmbeddingSegmentRows)
      rows.segments.push_back(first);
  }
  rows.token_segments.push_back(static_cast<int32_t>(rows.segments.size()));
  rows.segments.push_back(static_cast<int32_t>(ids.size()));
  return rows;
}

int64_t cuda::max_embedding_segments(int64_t rows, int vocab) { return rows / kEmbeddingSegmentRows + vocab; }

using cuda::DeviceBuffer;

namespace {

// A block's tensors in for_each_parameter's order: 10, and the lanes after them in a parallel block.
enum BlockTensor { kCq, kCk, kCv, kAttnProj, kQGain, kMlpFc, kMlpProj, kAttnScale, kMlpScale, kResidMix, kLanes };

// One tensor of the flat parameter vector: where it starts, its rows and columns. Tensors start at
// multiples of 8 floats (the gaps stay zero): every tensor is 16-byte aligned for the row kernels'
// float4 loads of scales, and so is its bf16 copy for cuBLAS.
constexpr size_t kSlotAlignment = 8;
struct Slot {
  size_t offset, rows, cols;
  ParamGroup group;
};

// What one block keeps from its forward (rows x width each).
struct BlockActivations {
  DeviceBuffer<float> skipped, mixed, attn_in, qkv_raw, qkv, heads_out, lse, attn_out, after_attn, mlp_in, fc_out,
      hidden, mlp_out, x_out;
  DeviceBuffer<float> xsa_out;  // heads_out through XSA (attn.proj's input), in the blocks that have it
  // Lane 1 (ModelConfig::parallel_from), in a model that has lanes: its output, and its input plus a
  // U-Net skip where a parallel layer after the first takes one.
  DeviceBuffer<float> skipped1, x_out1;
  // The block's input: `skipped` (the previous output plus a U-Net skip) in the decoder blocks
  // that take one, else the previous block's output (or x0), left where it is; x_in1 likewise lane
  // 1's in a parallel block (the first one's is x_in: the lanes split there).
  const float* x_in = nullptr;
  const float* x_in1 = nullptr;
};

// In bf16 mode, the bf16 copies of a block's GEMM and attention inputs (heads_out only exists here).
struct BlockBf16 {
  DeviceBuffer<__nv_bfloat16> attn_in, qkv, heads_out, mlp_in, hidden, xsa_out;
};

// Every buffer comes from State::allocate_buffers, run twice: counting (no device memory: the bytes
// the memory check needs), then allocating. One list, so the check cannot drift from the buffers.
struct Allocation {
  bool counting = true;
  double bytes = 0;
  template <typename T>
  DeviceBuffer<T> make(size_t count) {
    bytes += static_cast<double>(count) * sizeof(T);
    return counting ? DeviceBuffer<T>() : DeviceBuffer<T>(count);
  }
};

// The embedding backward's lists for one table on the device: per id, the rows that read it
// (rows_by_token), and the scratch embedding_backward sums them in. The token embedding has one,
// BigramHash's bucket table another.
struct TokenLists {
  DeviceBuffer<int32_t> order, segments, token_segments;
  DeviceBuffer<float> scratch;
  int64_t segment_count = 0;

  // For micro-batches of `rows` ids below `vocab`, table rows of `width` (rows 0: none).
  void allocate(Allocation& a, int64_t rows, int vocab, int width) {
    const int64_t most = rows > 0 ? cuda::max_embedding_segments(rows, vocab) : 0;
    order = a.make<int32_t>(static_cast<size_t>(rows));
    segments = a.make<int32_t>(rows > 0 ? static_cast<size_t>(most) + 1 : 0);
    token_segments = a.make<int32_t>(rows > 0 ? static_cast<size_t>(vocab) + 1 : 0);
    scratch = a.make<float>(static_cast<size_t>(most * width));
  }
  void upload(const std::vector<uint16_t>& ids, int vocab) {
    const cuda::RowsByToken rows = cuda::rows_by_token(ids, vocab);
    order.upload(rows.order);
    segments.upload(rows.segments);
    token_segments.upload(rows.token_segments);
    segment_count = rows.segment_count();
  }
  // d_table[v] += the sum of d_rows over the rows that read id v.
  void backward(const float* d_rows, int vocab, int width, float* d_table, cudaStream_t stream) {
    cuda::embedding_backward(d_rows, order.data(), segments.data(), token_segments.data(), segment_count, vocab, width,
                             scratch.data(), d_table, stream);
  }
};

// What sizes the optimizer's buffers: the flat parameters (alignment gaps included), the matrices'
// values and the squares of their short sides (Newton-Schulz), and how many matrices.
struct BufferSizes {
  size_t parameters, matrix_values, squares, matrices;
};

}  // namespace

struct CudaTrainer::State {
  ModelConfig config;
  TrainSettings settings;
  int rows = 0;  // micro_batch * seq_len: the rows every buffer is made for
  cuda::Gemm gemm;               // every GEMM, Newton-Schulz's included, at the precision's compute type
  cudaStream_t stream = nullptr;  // the legacy default stream, ordered with DeviceBuffer's copies
  Precision precision = Precision::kFp32;

  std::vector<Slot> slots;  // per tensor, for_each_parameter's order
  std::vector<std::string> slot_names;  // their checkpoint names
  // Per block its first slot, and one past the last block: skip_weights's.
  std::vector<size_t> block_first;
  // After the blocks' slots: skip_weights, then smear.gate and bigram.{embed, proj, scale} where the
  // model has them.
  size_t skip_slot = 0, smear_slot = 0, bigram_slot = 0;
  DeviceBuffer<float> params, grads, momentum, adam_m, adam_v;
  DeviceBuffer<float> ema;  // the weights' moving average (OptimizerSettings::ema_decay), as params
  bool ema_started = false;
  int64_t optimizer_steps = 0;
  DeviceBuffer<float> rope_cos, rope_sin;

  DeviceBuffer<uint16_t> inputs, targets;
  // The uploaded windows' inputs each (at most seq_len, the same for all of them): a sequence's rows
  // in this pass. Shorter passes (a LoRA chunk's window) cost only their own rows.
  int length = 0;
  TokenLists token_lists;  // the embedding backward's, over the inputs
  // BigramHash: each input's bucket and the embedding backward's lists of them; the table's rows,
  // their projection, the embedding before its norm (BigramHash or SmearGate v2), the rows' gradient.
  // SmearGate v1: the normed embedding before it; v2: the embedding it made (before the norm), and
  // its backward's row terms. column: one row's worth of column sums.
  DeviceBuffer<uint16_t> buckets;
  TokenLists bucket_lists;
  DeviceBuffer<float> bigram_rows, bigram_out, embedding_sum, d_bigram_rows, embedded, smeared,
      smear_rows, column;
  DeviceBuffer<float> x0, final_normed, logits;
  // Multi-token heads (the backward only): per head its targets (row (s, t): the target of t + 1 + i,
  // 0 where that lies past the window), z = final_normed W_i^T and its gradient; mtp_slot: head 0's.
  DeviceBuffer<uint16_t> mtp_targets;
  DeviceBuffer<float> mtp_z, mtp_d_z;
  DeviceBuffer<__nv_bfloat16> mtp_z16, mtp_d_z16;
  size_t mtp_slot = 0;
  DeviceBuffer<float> xsa_d_v;  // XSA's gradient of the value vectors [rows, kv_heads * head_dim]
  DeviceBuffer<double> losses;
  // Calibration: x xᵀ summed over one forward's rows, per matrix input (matrix_inputs' order); made
  // on first use.
  std::vector<DeviceBuffer<float>> moment_sums;
  // Per virtual layer (ModelConfig::block_order, the looped stack's count): the block it runs now and
  // what it keeps.
  std::vector<int> layer_blocks;
  std::vector<BlockActivations> blocks;
  // Backward scratch; a scoring pass (no backward) borrows t1, d_heads and d_heads16 for the scored
  // rows it packs (and d_x, t2 for a parallel block's two lanes), and d_rounded for its bf16 GEMM
  // outputs.
  DeviceBuffer<float> d_x, d_x0, t1, t2, d_hidden, d_heads, d_qkv, gain_partial, delta, column_scratch;
  // Parallel lanes: the last block's lane mean (the final norm's input), lane 1's gradient, those of
  // the two branches' outputs (A and M) and the lanes' row products.
  DeviceBuffer<float> lanes_mean, d_x1, d_lane_attn, d_lane_mlp, lane_products;
  // bf16 mode: the parameters' bf16 copy (refreshed after every step), the blocks' inputs, and
  // the backward's GEMM inputs (one buffer, rows x the widest).
  DeviceBuffer<__nv_bfloat16> params16, final16, d_rounded, d_heads16;
  std::vector<BlockBf16> blocks16;
  std::vector<DeviceBuffer<float>> d_encoder;  // what reaches each U-Net skip from its decoder
  // Newton-Schulz scratch, sized for all matrices in one batch; per matrix a squared norm's floats.
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
    if (gemm.handle) cublasDestroy(gemm.handle);
    if (ready) cudaEventDestroy(ready);
    if (comm_done) cudaEventDestroy(comm_done);
    if (comm_stream) cudaStreamDestroy(comm_stream);
  }
  float* param(size_t i) { return params.data() + slots[i].offset; }
  float* grad(size_t i) { return grads.data() + slots[i].offset; }
  size_t block_slot(int block, BlockTensor t) const { return block_first[static_cast<size_t>(block)] + t; }
  float* bp(int block, BlockTensor t) { return param(block_slot(block, t)); }
  float* bg(int block, BlockTensor t) { return grad(block_slot(block, t)); }
  // Whether virtual layer i runs a parallel block, and whether the lanes split at it.
  bool parallel(int i) const { return config.parallel_on(layer_blocks[static_cast<size_t>(i)]); }
  bool splits(int i) const { return parallel(i) && (i == 0 || !parallel(i - 1)); }

  void allocate_buffers(Allocation& a, const BufferSizes& sizes);
  // A pass's windows on the device. kBackward: each window's tokens but the last as inputs, all of
  // its targets, and the embedding backward's lists; kScoring: those inputs and each window's last
  // `scored` targets, one window's after another; kInputs (calibration, sampling): every token an
  // input, no targets.
  enum class Pass { kBackward, kScoring, kInputs };
  void upload_windows(std::span<const TokenWindow> windows, Pass pass, size_t scored = 0);
  // The logits of each sequence's last `scored` rows (all for a backward), one sequence's after
  // another: the last layer runs past its K and V on those rows alone. A pass for no backward in
  // bf16 mode also has its GEMMs write bf16 (into the backward's scratch, as torch's autocast
  // does), read by the kernels after them: fewer bytes where the pass's time goes.
  void forward(int sequences, int scored, bool for_backward);
  // first_scored > 0 (one sequence: LoRA TTT's chunk): the rows before it get no gradient.
  void backward(int sequences, float loss_weight, bool sum_over_ranks, int first_scored = 0);
  // Sums grads[slots first .. last] over the ranks on comm_stream, after the work queued so far.
  void sum_gradient(size_t first, size_t last);
  // What is queued on comm_stream from now on waits for the work queued so far on the compute
  // stream; wait_for_collectives is the other way round.
  void collectives_after_compute();
  void wait_for_collectives();
  void block_backward(int layer, int sequences);
  void mtp_backward(int head, int sequences, float loss_weight);
  void newton_schulz(const std::vector<size_t>& batch);
  bool bf16() const { return precision == Precision::kBf16; }
  // Whether decoder layer `layer` adds a U-Net skip (encoder output) to its input.
  bool takes_skip(int layer) const {
    const int decoder = layer - config.encoder_layers();
    return decoder >= 0 && decoder < config.skips_now();
  }
  int virtual_layers() const { return static_cast<int>(layer_blocks.size()); }
  // bf16 mode: params16 = params rounded, after every change of the parameters.
  void round_params() {
    if (bf16()) cuda::to_bf16(params.data(), static_cast<int64_t>(params.size()), params16.data(), stream);
  }
  void round_slot(size_t i) {  // one parameter's, after it alone changed
    const Slot& slot = slots[i];
    if (bf16())
      cuda::to_bf16(params.data() + slot.offset, static_cast<int64_t>(slot.rows * slot.cols), params16.data() + slot.offset,
                    stream);
  }
  // Parameter slot i as a GEMM input.
  cuda::Operand weight(size_t i) const {
    return {params.data() + slots[i].offset, bf16() ? params16.data() + slots[i].offset : nullptr};
  }
  cuda::Operand weight(int block, BlockTensor t) const { return weight(block_slot(block, t)); }
  // attn.proj's input in virtual layer i: the heads' output, through XSA where its block has it.
  cuda::Operand proj_input(int i) const {
    const BlockActivations& a = blocks[i];
    const BlockBf16& h = blocks16[i];
    return config.xsa_on(layer_blocks[i]) ? kept(a.xsa_out, h.xsa_out) : kept(a.heads_out, h.heads_out);
  }
  // A GEMM input made by write(out): into its bf16 buffer in bf16 mode, else into the fp32 one.
  template <typename Write>
  cuda::Operand produce(DeviceBuffer<float>& f32, DeviceBuffer<__nv_bfloat16>& b16, Write&& write) {
    if (bf16()) {
      write(b16.data());
      return {f32.data(), b16.data()};
    }
    write(f32.data());
    return {f32.data()};
  }
  // One produced earlier.
  cuda::Operand kept(const DeviceBuffer<float>& f32, const DeviceBuffer<__nv_bfloat16>& b16) const {
    return {f32.data(), bf16() ? b16.data() : nullptr};
  }
  // Rows [first, length) of each of `sequences` runs of `length` rows of `width` values, packed one
  // run after another into `to`; returns it.
  template <typename T>
  T* pack_rows(T* to, const T* from, int sequences, int first, int width) {
    const size_t row = static_cast<size_t>(width) * sizeof(T);
    PGOLF_CUDA_CHECK(cudaMemcpy2DAsync(to, row * static_cast<size_t>(length - first), from + int64_t{first} * width,
                                       row * static_cast<size_t>(length), row * static_cast<size_t>(length - first),
                                       static_cast<size_t>(sequences), cudaMemcpyDeviceToDevice, stream));
    return to;
  }
  void copy(float* to, const float* from, int64_t count) {
    PGOLF_CUDA_CHECK(cudaMemcpyAsync(to, from, count * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
  void add(float* to, const float* from, int64_t count) {  // to += from
    const float one = 1;
    PGOLF_CUDA_CHECK(cublasSaxpy(gemm.handle, static_cast<int>(count), &one, from, 1, to, 1));
  }
};

// The windows as Model reads them (inputs, targets), for the pass's kind (the declaration's).
void CudaTrainer::State::upload_windows(std::span<const TokenWindow> windows, Pass pass, size_t scored) {
  require(!windows.empty() && windows.size() <= static_cast<size_t>(settings.micro_batch),
          "CudaTrainer: " + std::to_string(windows.size()) + " windows; it takes 1 to " +
              std::to_string(settings.micro_batch));
  const size_t size = windows.front().size(), extra = pass == Pass::kInputs ? 0 : 1;  // the last target
  require(size >= 1 + extra && size <= static_cast<size_t>(settings.seq_len) + extra,
          "CudaTrainer: windows of " + std::to_string(1 + extra) + " to " +
              std::to_string(settings.seq_len + static_cast<int>(extra)) + " tokens");
  const int seq_len = static_cast<int>(size - extra);
  const bool for_backward = pass == Pass::kBackward;
  if (pass != Pass::kScoring) scored = pass == Pass::kBackward ? size - 1 : 0;
  require(pass != Pass::kScoring || (scored >= 1 && scored <= size - 1),
          "CudaTrainer: 1 to all of a window's targets scored");
  std::vector<uint16_t> in, out;
  for (const TokenWindow& w : windows) {
    require(w.size() == size, "CudaTrainer: the windows of one pass must have one length");
    in.insert(in.end(), w.begin(), w.begin() + seq_len);
    out.insert(out.end(), w.end() - static_cast<std::ptrdiff_t>(scored), w.end());
  }
  const auto outside = std::find_if(in.begin(), in.end(), [&](uint16_t t) { return t >= config.vocab; });
  const auto outside_target = std::find_if(out.begin(), out.end(), [&](uint16_t t) { return t >= config.vocab; });
  require(outside == in.end() && outside_target == out.end(),
          "a token id is outside the model's vocab of " + std::to_string(config.vocab));
  if (config.bigram_buckets > 0) {
    const std::vector<uint16_t> b = bigram_buckets_of(windows, static_cast<size_t>(seq_len), config.bigram_buckets);
    buckets.upload(b);
    if (for_backward) bucket_lists.upload(b, config.bigram_buckets);
  }
  inputs.upload(in);
  targets.upload(out);
  length = seq_len;
  if (for_backward && config.mtp_heads > 0) {  // the heads' targets, for their backward
    std::vector<uint16_t> shifted(out.size() * static_cast<size_t>(config.mtp_heads), 0);
    const size_t n = out.size(), window = static_cast<size_t>(seq_len);
    for (size_t i = 0; i < static_cast<size_t>(config.mtp_heads); ++i)
      for (size_t row = 0; row < n; ++row)
        if (row % window + 1 + i < window) shifted[i * n + row] = out[row + 1 + i];
    mtp_targets.upload(shifted);
  }
  if (for_backward) token_lists.upload(in, config.vocab);
}

// trainer/model.cpp's forward, every activation kept; logits are left for the loss kernels.
void CudaTrainer::State::forward(int sequences, int scored, bool for_backward) {
  const ModelConfig& c = config;
  const int seq_len = length, d = c.head_dim();
  int n = sequences * seq_len;  // the rows each kernel runs on: all, then the scored ones
  // Where a GEMM's output goes: its fp32 buffer, or (bf16 scoring) the bf16 scratch the next kernel reads.
  const bool bf16_outputs = bf16() && !for_backward;
  __nv_bfloat16* const out16 = d_rounded.data();
  const int qkv_width = (c.heads + 2 * c.kv_heads) * d, encoders = c.encoder_layers();
  const bool bigram = c.bigram_buckets > 0;
  if (bigram) {  // kept in fp32 in every mode: a small GEMM
    cuda::gather_rows(param(bigram_slot), buckets.data(), n, c.bigram_dim, bigram_rows.data(), stream);
    cuda::linear(gemm, bigram_rows.data(), param(bigram_slot + 1), n, c.bigram_dim, c.dim, bigram_out.data());
  }
  const bool keep_sum = bigram || c.smear_v2();
  cuda::embedding_rms_norm(param(0), inputs.data(), bigram ? bigram_out.data() : nullptr,
                           bigram ? param(bigram_slot + 2) : nullptr, n, c.dim,
                           keep_sum ? embedding_sum.data() : nullptr,
                           c.smear_v2() ? nullptr : c.smear_v1() ? embedded.data() : x0.data(), stream);
  if (c.smear_v1()) cuda::smear(embedded.data(), param(smear_slot), n, seq_len, c.dim, x0.data(), stream);
  if (c.smear_v2())
    cuda::smear_v2(embedding_sum.data(), param(smear_slot), kSmearWindow, param(smear_slot + 1), inputs.data(),
                   c.smear_mask_token(), n, seq_len, c.dim, smeared.data(), x0.data(), stream);
  for (int i = 0; i < virtual_layers(); ++i) {  // virtual layer i runs block b
    const int b = layer_blocks[i];
    BlockActivations& a = blocks[i];
    BlockBf16& h = blocks16[i];
    a.x_in = i == 0 ? x0.data() : blocks[i - 1].x_out.data();
    const int decoder = i - encoders;
    if (takes_skip(i)) {
      cuda::scaled_sum(a.x_in, nullptr, blocks[encoders - 1 - decoder].x_out.data(),
                       param(skip_slot) + decoder * c.dim, n, c.dim, a.skipped.data(), stream);
      a.x_in = a.skipped.data();
    }
    const bool lanes = parallel(i);
    if (lanes) {  // lane 1: lane 0's input where they split, else its own, plus the same skip
      a.x_in1 = splits(i) ? a.x_in : blocks[i - 1].x_out1.data();
      if (!splits(i) && takes_skip(i)) {
        cuda::scaled_sum(a.x_in1, nullptr, blocks[encoders - 1 - decoder].x_out.data(),
                         param(skip_slot) + decoder * c.dim, n, c.dim, a.skipped1.data(), stream);
        a.x_in1 = a.skipped1.data();
      }
    }
    const cuda::Operand attn_in = produce(a.attn_in, h.attn_in, [&](auto* out) {
      cuda::scaled_sum(a.x_in, bp(b, kResidMix), x0.data(), bp(b, kResidMix) + c.dim, n, c.dim, a.mixed.data(), out,
                       stream);
    });
    // GEMM `in` -> out columns, then `next` reading its output: fp32 buffer `kept`, or the bf16 scratch.
    auto gemm_then = [&](cuda::Operand in, cuda::Operand w, int in_width, int out_width, DeviceBuffer<float>& kept,
                         auto&& next) {
      if (bf16_outputs) {
        cuda::linear(gemm, in, w, n, in_width, out_width, out16);
        next(static_cast<const __nv_bfloat16*>(out16));
      } else {
        cuda::linear(gemm, in, w, n, in_width, out_width, kept.data());
        next(static_cast<const float*>(kept.data()));
      }
    };
    gemm_then(attn_in, weight(b, kCq), c.dim, qkv_width, a.qkv_raw, [&](const auto* raw) {
      produce(a.qkv, h.qkv, [&](auto* out) {
        cuda::qk_norm_rope(raw, n, seq_len, c.heads, c.kv_heads, d, c.rotated_dims(), rope_cos.data(), rope_sin.data(),
                           bp(b, kQGain), out, stream);
      });
    });
    // The last layer's queries before the scored rows feed nothing scored.
    const bool last = i + 1 == virtual_layers();
    const int first_query = last ? seq_len - scored : 0;
    if (bf16())
      cuda::attention_bf16_with_lse(h.qkv.data(), sequences, seq_len, c.heads, c.kv_heads, d, h.heads_out.data(),
                                    a.lse.data(), stream, first_query);
    else
      cuda::attention_with_lse(a.qkv.data(), sequences, seq_len, c.heads, c.kv_heads, d, a.heads_out.data(),
                               a.lse.data(), stream, first_query);
    if (c.xsa_on(b))
      produce(a.xsa_out, h.xsa_out, [&](auto* out) {
        if (bf16())
          cuda::xsa(h.heads_out.data(), h.qkv.data(), n, c.heads, c.kv_heads, d, out, stream);
        else
          cuda::xsa(a.heads_out.data(), a.qkv.data(), n, c.heads, c.kv_heads, d, out, stream);
      });
    cuda::Operand heads = proj_input(i);
    const float *mixed = a.mixed.data(), *in0 = a.x_in, *in1 = a.x_in1;
    if (first_query > 0) {  // from here on the scored rows alone, packed into the backward's scratch
      heads = bf16() ? cuda::Operand(nullptr, pack_rows(d_heads16.data(), heads.b16, sequences, first_query, c.heads * d))
                     : cuda::Operand(pack_rows(d_heads.data(), heads.f32, sequences, first_query, c.heads * d));
      mixed = pack_rows(t1.data(), mixed, sequences, first_query, c.dim);
      if (lanes) {
        in0 = pack_rows(d_x.data(), in0, sequences, first_query, c.dim);
        in1 = pack_rows(t2.data(), in1, sequences, first_query, c.dim);
      }
      n = sequences * scored;
    }
    cuda::Operand mlp_in{nullptr};
    if (lanes) {  // the MLP reads lane 1; A stays (fp32) for the lanes' sums after M
      cuda::linear(gemm, heads, weight(b, kAttnProj), n, c.heads * d, c.dim, a.attn_out.data());
      mlp_in = produce(a.mlp_in, h.mlp_in, [&](auto* out) {
        cuda::scaled_sum(in1, nullptr, static_cast<const float*>(nullptr), nullptr, n, c.dim, nullptr, out, stream);
      });
    } else {
      gemm_then(heads, weight(b, kAttnProj), c.heads * d, c.dim, a.attn_out, [&](const auto* attn_out) {
        mlp_in = produce(a.mlp_in, h.mlp_in, [&](auto* out) {
          cuda::scaled_sum(mixed, nullptr, attn_out, bp(b, kAttnScale), n, c.dim, a.after_attn.data(), out, stream);
        });
      });
    }
    cuda::Operand hidden{nullptr};
    gemm_then(mlp_in, weight(b, kMlpFc), c.dim, c.mlp_hidden, a.fc_out, [&](const auto* fc_out) {
      hidden = produce(a.hidden, h.hidden, [&](auto* out) {
        cuda::leaky_relu_square(fc_out, int64_t{n} * c.mlp_hidden, static_cast<float>(c.mlp_negative_slope), out,
                                stream);
      });
    });
    // x_out (and x_out1); after the last block, the final norm (of the lanes' mean) in the same pass.
    gemm_then(hidden, weight(b, kMlpProj), c.mlp_hidden, c.dim, a.mlp_out, [&](const auto* mlp_out) {
      produce(final_normed, final16, [&](auto* out) {
        if (lanes)
          cuda::parallel_lanes(in0, in1, a.attn_out.data(), bp(b, kAttnScale), mlp_out, bp(b, kMlpScale),
                               bp(b, kLanes), n, c.dim, a.x_out.data(), a.x_out1.data(),
                               last ? lanes_mean.data() : nullptr, last ? out : nullptr, stream);
        else
          cuda::scaled_sum(a.after_attn.data(), nullptr, mlp_out, bp(b, kMlpScale), n, c.dim, a.x_out.data(),
                           last ? out : nullptr, stream);
      });
    });
  }
  cuda::linear(gemm, kept(final_normed, final16), weight(0), n, c.dim, c.vocab, logits.data());
}

// trainer/model.cpp's block_backward: d_x holds the gradient of the block's output (after the last
// block: t2 holds the final norm's, d_x nothing) and leaves with that of its input (in a parallel
// block d_x1 likewise lane 1's); d_x0 gathers the gradient of x0.
void CudaTrainer::State::block_backward(int i, int sequences) {
  const ModelConfig& c = config;
  const int b = layer_blocks[i];  // a looped block's gradient sums its passes'

  const int seq_len = length, n = sequences * seq_len, d = c.head_dim();
  const int qkv_width = (c.heads + 2 * c.kv_heads) * d;
  BlockActivations& a = blocks[i];
  BlockBf16& h = blocks16[i];
  float* scratch = column_scratch.data();
  // x_out = after_attn + mlp_scale * mlp_out. The gradient reaching x_out: d_x, plus an encoder's
  // U-Net skip gradient; after the last block, the final norm's backward alone.
  const bool last = i + 1 == virtual_layers(), encoder = i < c.encoder_layers(), lanes = parallel(i);
  if (lanes) {  // lane k = r_k in_k + p_attn,k A + p_mlp,k M: d_x, d_x1 keep the r_k shares, A's and M's apart
    if (last) {  // the final norm reads the lanes' mean
      cuda::ScaledSumGradient<float> g;
      g.out = lanes_mean.data(), g.d_normed = t2.data(), g.d_x = d_x.data();
      cuda::scaled_sum_backward(g, n, c.dim, scratch, stream);
    }
    cuda::parallel_lanes_backward(d_x.data(), d_x1.data(), last, a.x_in, a.x_in1, a.attn_out.data(), bp(b, kAttnScale),
                                  a.mlp_out.data(), bp(b, kMlpScale), bp(b, kLanes), n, c.dim, d_lane_attn.data(),
                                  d_lane_mlp.data(), lane_products.data(), stream);
    cuda::column_sum(lane_products.data(), nullptr, n, cuda::kLaneParams, bg(b, kLanes), true, scratch, stream);
  }
  const cuda::Operand d_mlp_out = produce(t1, d_rounded, [&](auto* out) {
    cuda::ScaledSumGradient<std::remove_pointer_t<decltype(out)>> g;
    if (lanes) {
      g.d_out = d_lane_mlp.data();
    } else {
      g.d_out = last ? nullptr : d_x.data();
      g.d_out_extra = encoder ? d_encoder[i].data() : nullptr;
      if (last) g.out = a.x_out.data(), g.d_normed = t2.data();
      g.d_x = last || encoder ? d_x.data() : nullptr;  // otherwise d_x holds it already
    }
    g.y = a.mlp_out.data(), g.y_scale = bp(b, kMlpScale), g.d_y = out, g.d_y_scale = bg(b, kMlpScale);
    cuda::scaled_sum_backward(g, n, c.dim, scratch, stream);
  });
  cuda::linear_backward_weight(gemm, d_mlp_out, kept(a.hidden, h.hidden), n, c.mlp_hidden, c.dim, bg(b, kMlpProj));
  cuda::linear_backward_input(gemm, d_mlp_out, weight(b, kMlpProj), n, c.mlp_hidden, c.dim, d_hidden.data(), false);
  const cuda::Operand d_fc_out = produce(d_hidden, d_rounded, [&](auto* out) {
    cuda::leaky_relu_square_backward(a.fc_out.data(), d_hidden.data(), int64_t{n} * c.mlp_hidden,
                                     static_cast<float>(c.mlp_negative_slope), out, stream);
  });
  cuda::linear_backward_weight(gemm, d_fc_out, kept(a.mlp_in, h.mlp_in), n, c.dim, c.mlp_hidden, bg(b, kMlpFc));
  cuda::linear_backward_input(gemm, d_fc_out, weight(b, kMlpFc), n, c.dim, c.mlp_hidden, t2.data(), false);
  // after_attn = mixed + attn_scale * attn_out, mlp_in = rms_norm(after_attn); parallel, mlp_in =
  // rms_norm(lane 1), whose gradient gains the norm's backward, and A's gradient waits in d_lane_attn
  if (lanes) {
    cuda::ScaledSumGradient<float> g;
    g.d_out = d_x1.data(), g.out = a.x_in1, g.d_normed = t2.data(), g.d_x = d_x1.data();
    cuda::scaled_sum_backward(g, n, c.dim, scratch, stream);
  }
  const cuda::Operand d_attn_out = produce(t1, d_rounded, [&](auto* out) {
    cuda::ScaledSumGradient<std::remove_pointer_t<decltype(out)>> g;
    if (lanes)
      g.d_out = d_lane_attn.data();
    else
      g.d_out = d_x.data(), g.out = a.after_attn.data(), g.d_normed = t2.data(), g.d_x = d_x.data();
    g.y = a.attn_out.data(), g.y_scale = bp(b, kAttnScale), g.d_y = out, g.d_y_scale = bg(b, kAttnScale);
    cuda::scaled_sum_backward(g, n, c.dim, scratch, stream);
  });
  cuda::linear_backward_weight(gemm, d_attn_out, proj_input(i), n, c.heads * d, c.dim, bg(b, kAttnProj));
  // XSA's backward turns the gradient of its output into that of the attention's, in place, and
  // keeps the value vectors' share for after the attention's backward.
  if (bf16()) {  // the GEMM writes d_heads in bf16 for the bf16 attention
    cuda::linear_backward_input(gemm, d_attn_out, weight(b, kAttnProj), n, c.heads * d, c.dim, d_heads16.data(),
                                false);
    if (c.xsa_on(b))
      cuda::xsa_backward(h.heads_out.data(), h.qkv.data(), d_heads16.data(), n, c.heads, c.kv_heads, d,
                         d_heads16.data(), xsa_d_v.data(), stream);
    cuda::attention_bf16_backward(h.qkv.data(), h.heads_out.data(), a.lse.data(), d_heads16.data(), sequences,
                                  seq_len, c.heads, c.kv_heads, d, d_qkv.data(), delta.data(), stream);
  } else {
    cuda::linear_backward_input(gemm, d_attn_out, weight(b, kAttnProj), n, c.heads * d, c.dim, d_heads.data(), false);
    if (c.xsa_on(b))
      cuda::xsa_backward(a.heads_out.data(), a.qkv.data(), d_heads.data(), n, c.heads, c.kv_heads, d, d_heads.data(),
                         xsa_d_v.data(), stream);
    cuda::attention_backward(a.qkv.data(), a.heads_out.data(), a.lse.data(), d_heads.data(), sequences, seq_len,
                             c.heads, c.kv_heads, d, d_qkv.data(), delta.data(), stream);
  }
  if (c.xsa_on(b)) {  // d_qkv's v columns += XSA's share (in place: C = A, same leading dimension)
    const float one = 1;
    float* d_v = d_qkv.data() + int64_t{c.heads + c.kv_heads} * d;
    PGOLF_CUDA_CHECK(cublasSgeam(gemm.handle, CUBLAS_OP_N, CUBLAS_OP_N, c.kv_heads * d, n, &one, d_v, qkv_width, &one,
                                 xsa_d_v.data(), c.kv_heads * d, d_v, qkv_width));
  }
  const cuda::Operand d_qkv_raw = produce(d_qkv, d_rounded, [&](auto* out) {
    cuda::qk_norm_rope_backward(a.qkv_raw.data(), d_qkv.data(), n, seq_len, c.heads, c.kv_heads, d, c.rotated_dims(),
                                rope_cos.data(), rope_sin.data(), bp(b, kQGain), out, gain_partial.data(), stream);
  });
  cuda::column_sum(gain_partial.data(), nullptr, n, c.heads, bg(b, kQGain), true, scratch, stream);
  cuda::linear_backward_weight(gemm, d_qkv_raw, kept(a.attn_in, h.attn_in), n, c.dim, qkv_width, bg(b, kCq));
  cuda::linear_backward_input(gemm, d_qkv_raw, weight(b, kCq), n, c.dim, qkv_width, t2.data(), false);
  // mixed = mix[0] * x_in + mix[1] * x0, attn_in = rms_norm(mixed): d_x becomes d x_in (parallel: mixed
  // feeds attention alone, and lane 0's own share is in d_x already), d_x0 gathers its share
  cuda::ScaledSumGradient<float> g;
  g.d_out = lanes ? nullptr : d_x.data(), g.out = a.mixed.data(), g.d_normed = t2.data();
  g.x = a.x_in, g.x_scale = bp(b, kResidMix), g.d_x = d_x.data(), g.accumulate_d_x = lanes;
  g.d_x_scale = bg(b, kResidMix);
  g.y = x0.data(), g.y_scale = bp(b, kResidMix) + c.dim, g.d_y = d_x0.data(), g.accumulate_d_y = true;
  g.d_y_scale = bg(b, kResidMix) + c.dim;
  cuda::scaled_sum_backward(g, n, c.dim, scratch, stream);
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

// Multi-token head i (Model's mtp_head): z = final_normed W_i^T, logits = cap(z tok_emb^T) against the
// target 1 + i further on; the rows whose target lies past their window get no gradient. Reuses
// `logits` (the main head is done with it); adds to tok_emb's, W_i's and the final norm's output's
// gradient (t2).
void CudaTrainer::State::mtp_backward(int i, int sequences, float loss_weight) {
  const ModelConfig& c = config;
  const int seq_len = length, n = sequences * seq_len;
  const size_t slot = mtp_slot + static_cast<size_t>(i);
  const int64_t count = int64_t{n} * c.dim;
  cuda::linear(gemm, kept(final_normed, final16), weight(slot), n, c.dim, c.dim, mtp_z.data());
  if (bf16()) cuda::to_bf16(mtp_z.data(), count, mtp_z16.data(), stream);
  const cuda::Operand z = kept(mtp_z, mtp_z16);
  cuda::linear(gemm, z, weight(0), n, c.dim, c.vocab, logits.data());
  const uint16_t* head_targets = mtp_targets.data() + int64_t{i} * n;
  const cuda::Operand d = produce(logits, d_rounded, [&](auto* out) {
    cuda::softcap_cross_entropy_backward(logits.data(), head_targets, n, c.vocab, static_cast<float>(c.logit_softcap),
                                         loss_weight * static_cast<float>(c.mtp_weight) / static_cast<float>(n), out,
                                         losses.data() + n, stream);
    // Each window's last 1 + i rows: no target.
    const size_t row_bytes = static_cast<size_t>(c.vocab) * sizeof(*out);
    PGOLF_CUDA_CHECK(cudaMemset2DAsync(out + int64_t{seq_len - 1 - i} * c.vocab, seq_len * row_bytes, 0,
                                       static_cast<size_t>(1 + i) * row_bytes, static_cast<size_t>(sequences), stream));
  });
  cuda::linear_backward_weight(gemm, d, z, n, c.dim, c.vocab, grad(0));
  cuda::linear_backward_input(gemm, d, weight(0), n, c.dim, c.vocab, mtp_d_z.data(), false);
  if (bf16()) cuda::to_bf16(mtp_d_z.data(), count, mtp_d_z16.data(), stream);
  const cuda::Operand d_z = kept(mtp_d_z, mtp_d_z16);
  cuda::linear_backward_weight(gemm, d_z, kept(final_normed, final16), n, c.dim, c.dim, grad(slot));
  cuda::linear_backward_input(gemm, d_z, weight(slot), n, c.dim, c.dim, t2.data(), true);
}

// Model::loss_and_gradient's backward; with sum_over_ranks each block's gradient (a contiguous run
// of slots) is summed over the ranks as soon as the block is done, the embedding's and the skip
// weights' (written by several blocks) at the end.
void CudaTrainer::State::backward(int sequences, float loss_weight, bool sum_over_ranks,
                                  int first_scored) {
  const ModelConfig& c = config;
  const int n = sequences * length, encoders = c.encoder_layers();
  const int64_t stream_count = int64_t{n} * c.dim;
  const cuda::Operand d_logits = produce(logits, d_rounded, [&](auto* out) {
    cuda::softcap_cross_entropy_backward(logits.data(), targets.data(), n, c.vocab,
                                         static_cast<float>(c.logit_softcap), loss_weight / static_cast<float>(n), out,
                                         losses.data(), stream);
    if (first_scored > 0)  // the targets outside the loss get no gradient
      PGOLF_CUDA_CHECK(
          cudaMemsetAsync(out, 0, static_cast<size_t>(first_scored) * static_cast<size_t>(c.vocab) * sizeof(*out), stream));
  });
  cuda::linear_backward_weight(gemm, d_logits, kept(final_normed, final16), n, c.dim, c.vocab, grad(0));
  cuda::linear_backward_input(gemm, d_logits, weight(0), n, c.dim, c.vocab, t2.data(), false);
  for (int i = 0; i < c.mtp_heads; ++i) mtp_backward(i, sequences, loss_weight);  // into t2 too
  PGOLF_CUDA_CHECK(cudaMemsetAsync(d_x0.data(), 0, stream_count * sizeof(float), stream));
  const size_t skips = skip_slot;
  for (int i = virtual_layers() - 1; i >= 0; --i) {
    block_backward(i, sequences);
    if (splits(i)) add(d_x.data(), d_x1.data(), stream_count);  // lane 1 was lane 0's input
    const int decoder = i - encoders;
    if (takes_skip(i)) {  // x_in = x_in' + skip_weight * encoder output: d_x stays, the encoder gets its share
      const int encoder = encoders - 1 - decoder;
      cuda::ScaledSumGradient<float> g;
      g.d_out = d_x.data(), g.d_out_extra = parallel(i) && !splits(i) ? d_x1.data() : nullptr;  // both lanes took it
      g.y = blocks[encoder].x_out.data(), g.y_scale = param(skips) + decoder * c.dim;
      g.d_y = d_encoder[encoder].data(), g.d_y_scale = grad(skips) + decoder * c.dim;
      cuda::scaled_sum_backward(g, n, c.dim, column_scratch.data(), stream);
    }
    if (sum_over_ranks && !c.recurrent())  // the block's first and last slot
      sum_gradient(block_slot(i, kCq), block_slot(i, parallel(i) ? kLanes : kResidMix));
  }
  add(d_x.data(), d_x0.data(), stream_count);
  const float* d_embedded = d_x.data();
  if (c.smear_v1()) {  // x0 = smear(embedded): d_embedded into t2, the gate's row shares into t1
    cuda::smear_backward(embedded.data(), param(smear_slot), d_x.data(), n, length, c.dim, t2.data(),
                         t1.data(), stream);
    cuda::column_sum(t1.data(), nullptr, n, c.dim, grad(smear_slot), true, column_scratch.data(), stream);
    d_embedded = t2.data();
  }
  const bool bigram = c.bigram_buckets > 0;
  // d of the embedding before its norm (and SmearGate v2) into t1: the token rows' gradient, and BigramHash's
  if (c.smear_v2()) {  // the norm's backward at what v2 made into t2, v2's into t1
    cuda::embedding_rms_norm_backward(smeared.data(), nullptr, d_embedded, n, c.dim, t2.data(), stream);
    float* lambda_rows = smear_rows.data();
    float* w_rows = lambda_rows + n;
    cuda::smear_v2_backward(embedding_sum.data(), param(smear_slot), kSmearWindow, param(smear_slot + 1),
                            inputs.data(), c.smear_mask_token(), t2.data(), n, length, c.dim, t1.data(),
                            lambda_rows, w_rows, w_rows + int64_t{n} * kSmearWindow, stream);
    cuda::add_sum(lambda_rows, n, grad(smear_slot + 1), stream);
    cuda::column_sum(w_rows, nullptr, n, kSmearWindow, grad(smear_slot), true, column_scratch.data(), stream);
  } else {
    cuda::embedding_rms_norm_backward(bigram ? embedding_sum.data() : param(0), bigram ? nullptr : inputs.data(),
                                      d_embedded, n, c.dim, t1.data(), stream);
  }
  token_lists.backward(t1.data(), c.vocab, c.dim, grad(0), stream);
  if (bigram) {  // sum = tok_emb[ids] + scale · bigram_rows proj^T
    cuda::column_sum(t1.data(), bigram_out.data(), n, c.dim, column.data(), false, column_scratch.data(), stream);
    cuda::add_sum(column.data(), c.dim, grad(bigram_slot + 2), stream);
    cuda::scale(t1.data(), param(bigram_slot + 2), stream_count, t2.data(), stream);
    cuda::linear_backward_weight(gemm, t2.data(), bigram_rows.data(), n, c.bigram_dim, c.dim, grad(bigram_slot + 1));
    cuda::linear_backward_input(gemm, cuda::Operand(t2.data()), cuda::Operand(param(bigram_slot + 1)), n, c.bigram_dim,
                                c.dim, d_bigram_rows.data(), false);
    bucket_lists.backward(d_bigram_rows.data(), c.bigram_buckets, c.bigram_dim, grad(bigram_slot), stream);
  }
  if (sum_over_ranks) {  // the embedding, and the slots from skip_weights on (and a recurrent model's blocks)
    group->begin_group();
    sum_gradient(0, c.recurrent() ? skips - 1 : 0);
    sum_gradient(skips, slots.size() - 1);
    group->end_group();
  }
}

// optimizer.cpp's newton_schulz on the device, in place, for matrices (slots) of one shape up to
// transposition: each is gathered as X [r, k] (r <= k) into one batch, and every product is one
// strided-batched GEMM over the batch.
void CudaTrainer::State::newton_schulz(const std::vector<size_t>& batch) {
  const Slot& shape = slots[batch.front()];
  const int r = static_cast<int>(std::min(shape.rows, shape.cols)), k = static_cast<int>(std::max(shape.rows, shape.cols));
  const int64_t size = int64_t{r} * k, square = int64_t{r} * r, count = static_cast<int64_t>(batch.size());
  const float one = 1, zero = 0;
  // X [r, k] row-major = [k, r] column-major.
  float* x = ns_x.data();
  float* y = ns_y.data();
  for (int64_t m = 0; m < count; ++m) {
    const Slot& slot = slots[batch[m]];
    const float* g = grad(batch[m]);
    float* xm = x + m * size;
    if (slot.rows > slot.cols)  // g [k, r] row-major = [r, k] column-major; X = its transpose
      PGOLF_CUDA_CHECK(cublasSgeam(gemm.handle, CUBLAS_OP_T, CUBLAS_OP_N, k, r, &one, g, r, &zero, xm, k, xm, k));
    else
      copy(xm, g, size);
    float* squared = norm.data() + m * cuda::kSquaredNormFloats;
    cuda::squared_norm(xm, size, squared, stream);
    cuda::divide_by_norm(xm, squared, size, stream);
  }
  for (int step = 0; step < settings.optimizer.newton_schulz_steps; ++step) {
    // A = X X^T [r, r] (symmetric); B = b A + c A A; X = a X + B X
    const NewtonSchulzStep coefficients = newton_schulz_step(settings.optimizer.newton_schulz_coefficients, step);
    gemm.batched(CUBLAS_OP_T, CUBLAS_OP_N, r, r, k, 1, x, k, size, x, k, size, 0, ns_a.data(), r, square, count);
    copy(ns_b.data(), ns_a.data(), count * square);
    gemm.batched(CUBLAS_OP_N, CUBLAS_OP_N, r, r, r, coefficients.c, ns_a.data(), r, square, ns_a.data(), r, square,
                 coefficients.b, ns_b.data(), r, square, count);
    copy(y, x, count * size);
    gemm.batched(CUBLAS_OP_N, CUBLAS_OP_N, k, r, r, 1, x, k, size, ns_b.data(), r, square, coefficients.a, y, k, size,
                 count);
    std::swap(x, y);
  }
  for (int64_t m = 0; m < count; ++m) {
    const Slot& slot = slots[batch[m]];
    float* g = grad(batch[m]);
    const float* xm = x + m * size;
    if (slot.rows > slot.cols)  // back to [k, r] row-major = [r, k] column-major
      PGOLF_CUDA_CHECK(cublasSgeam(gemm.handle, CUBLAS_OP_T, CUBLAS_OP_N, r, k, &one, xm, k, &zero, g, r, g, r));
    else
      copy(g, xm, size);
  }
}

// Every buffer the trainer keeps, at sizes.parameters floats of parameters (with their alignment
// gaps) and micro-batches of `rows`: counted, or allocated (Allocation).
void CudaTrainer::State::allocate_buffers(Allocation& a, const BufferSizes& sizes) {
  const ModelConfig& c = config;
  const int d = c.head_dim(), layers = virtual_layers();
  const int64_t qkv_width = int64_t{c.heads + 2 * c.kv_heads} * d;
  const int64_t widest = std::max<int64_t>({c.dim, c.mlp_hidden, qkv_width, c.vocab});
  const bool bf16 = this->bf16(), bigram = c.bigram_buckets > 0;
  const size_t total = sizes.parameters;
  auto floats = [&](size_t count) { return a.make<float>(count); };
  params = floats(total), grads = floats(total), momentum = floats(total), adam_m = floats(total), adam_v = floats(total);
  ema = floats(settings.optimizer.ema_decay > 0 ? total : 0);
  rope_cos = floats(static_cast<size_t>(settings.seq_len) * static_cast<size_t>(d / 2));
  rope_sin = floats(static_cast<size_t>(settings.seq_len) * static_cast<size_t>(d / 2));
  // A block's GEMM and attention inputs (attn_in, qkv, heads_out, mlp_in, hidden) are fp32, or
  // bf16 only in bf16 mode (input()); so are the final norm's output and the backward's GEMM inputs.
  auto buffer = [&](int64_t width) { return floats(static_cast<size_t>(rows * width)); };
  auto input = [&](int64_t width) { return buffer(bf16 ? 0 : width); };
  auto buffer16 = [&](int64_t width) { return a.make<__nv_bfloat16>(bf16 ? static_cast<size_t>(rows * width) : 0); };
  inputs = a.make<uint16_t>(static_cast<size_t>(rows));
  targets = a.make<uint16_t>(static_cast<size_t>(rows));
  token_lists.allocate(a, rows, c.vocab, c.dim);
  x0 = buffer(c.dim);
  embedded = buffer(c.smear_v1() ? c.dim : 0);
  buckets = a.make<uint16_t>(bigram ? static_cast<size_t>(rows) : 0);
  bucket_lists.allocate(a, bigram ? rows : 0, c.bigram_buckets, c.bigram_dim);
  bigram_rows = buffer(c.bigram_dim);
  d_bigram_rows = buffer(c.bigram_dim);
  bigram_out = buffer(bigram ? c.dim : 0);
  embedding_sum = buffer(bigram || c.smear_v2() ? c.dim : 0);
  smeared = buffer(c.smear_v2() ? c.dim : 0);
  smear_rows = buffer(c.smear_v2() ? kSmearWindow + 3 : 0);  // λ's and w's row shares, the backward's scratch
  column = floats(static_cast<size_t>(c.dim));
  final_normed = input(c.dim);
  logits = buffer(c.vocab);
  losses = a.make<double>(static_cast<size_t>(rows) * (c.mtp_heads > 0 ? 2 : 1));  // then a head's
  mtp_targets = a.make<uint16_t>(static_cast<size_t>(rows * c.mtp_heads));
  mtp_z = buffer(c.mtp_heads > 0 ? c.dim : 0);
  mtp_d_z = buffer(c.mtp_heads > 0 ? c.dim : 0);
  // By name, every buffer. `skipped`: in the layers that take a U-Net skip, and in every layer of a
  // recurrent model (whose skips move with the loop).
  blocks.clear();
  blocks16.clear();
  for (int i = 0; i < layers; ++i) {
    const int64_t xsa_width = c.xsa_on(layer_blocks[i]) ? int64_t{c.heads} * d : 0;
    blocks.push_back({.skipped = buffer(takes_skip(i) || c.recurrent() ? c.dim : 0),
                      .mixed = buffer(c.dim),
                      .attn_in = input(c.dim),
                      .qkv_raw = buffer(qkv_width),
                      .qkv = input(qkv_width),
                      .heads_out = input(int64_t{c.heads} * d),
                      .lse = buffer(c.heads),
                      .attn_out = buffer(c.dim),
                      .after_attn = buffer(c.dim),
                      .mlp_in = input(c.dim),
                      .fc_out = buffer(c.mlp_hidden),
                      .hidden = input(c.mlp_hidden),
                      .mlp_out = buffer(c.dim),
                      .x_out = buffer(c.dim),
                      .xsa_out = input(xsa_width),
                      .skipped1 = buffer(c.parallel_from > 0 ? c.dim : 0),
                      .x_out1 = buffer(c.parallel_from > 0 ? c.dim : 0)});
    blocks16.push_back({.attn_in = buffer16(c.dim),
                        .qkv = buffer16(qkv_width),
                        .heads_out = buffer16(int64_t{c.heads} * d),
                        .mlp_in = buffer16(c.dim),
                        .hidden = buffer16(c.mlp_hidden),
                        .xsa_out = buffer16(xsa_width)});
  }
  xsa_d_v = buffer(c.xsa_layers > 0 ? int64_t{c.kv_heads} * d : 0);
  d_x = buffer(c.dim);
  d_x0 = buffer(c.dim);
  const int64_t lane_width = c.parallel_from > 0 ? c.dim : 0;
  lanes_mean = buffer(lane_width), d_x1 = buffer(lane_width), d_lane_attn = buffer(lane_width);
  d_lane_mlp = buffer(lane_width), lane_products = buffer(c.parallel_from > 0 ? cuda::kLaneParams : 0);
  t1 = buffer(c.dim);
  t2 = buffer(c.dim);
  d_hidden = buffer(c.mlp_hidden);
  d_heads = input(int64_t{c.heads} * d);
  d_qkv = buffer(qkv_width);
  gain_partial = buffer(c.heads);
  delta = buffer(c.heads);
  column_scratch = floats(static_cast<size_t>(cuda::column_sum_scratch(static_cast<int>(std::max(c.dim, c.heads)))));
  d_encoder.clear();
  for (int i = 0; i < c.encoder_layers(); ++i) d_encoder.push_back(buffer(c.dim));
  // Newton-Schulz scratch for all matrices in one batch, and a squared norm's floats per matrix.
  ns_x = floats(sizes.matrix_values);
  ns_y = floats(sizes.matrix_values);
  ns_a = floats(sizes.squares);
  ns_b = floats(sizes.squares);
  norm = floats(std::max<size_t>(sizes.matrices, 1) * cuda::kSquaredNormFloats);
  final16 = buffer16(c.dim);
  d_rounded = buffer16(widest);
  d_heads16 = buffer16(int64_t{c.heads} * d);
  mtp_z16 = buffer16(c.mtp_heads > 0 ? c.dim : 0);
  mtp_d_z16 = buffer16(c.mtp_heads > 0 ? c.dim : 0);
  params16 = a.make<__nv_bfloat16>(bf16 ? total : 0);
}

CudaTrainer::CudaTrainer(const TrainState& state, const TrainSettings& settings, Precision precision,
                         std::unique_ptr<cuda::RankGroup> group)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  const ModelConfig& c = state.config;
  settings.validate();
  c.validate();
  if (precision == Precision::kAuto)
    precision = cuda::attention_bf16_supports_head_dim(c.head_dim()) ? Precision::kBf16 : Precision::kTf32;
  if (precision == Precision::kBf16)
    require(cuda::attention_bf16_supports_head_dim(c.head_dim()),
            "the CUDA trainer's bf16 attention takes head_dim 16, 32 or 64; this model's is " +
                std::to_string(c.head_dim()) + " (--precision fp32 or tf32 also take 8)");
  else
    require(cuda::attention_supports_head_dim(c.head_dim()),
            "the CUDA trainer's attention takes head_dim 8, 16, 32 or 64; this model's is " +
                std::to_string(c.head_dim()));
  require(cuda::row_kernels_support_dim(c.dim), "the CUDA trainer takes a model dim that is a multiple of 4 up to "
                                                "2048; this model's is " + std::to_string(c.dim));
  require(cuda::rope_kernels_support(c.head_dim(), c.rotated_dims()),
          "the CUDA trainer takes partial RoPE on a multiple of 8 dims; this model turns " +
              std::to_string(c.rotated_dims()));
  s.config = c;
  s.config.looping = true;
  s.settings = settings;
  s.precision = precision;
  s.optimizer_steps = state.optimizer.steps;
  const int64_t rows = int64_t{settings.micro_batch} * settings.seq_len;
  require(rows <= (int64_t{1} << 24), "--micro-batch x --seq-len is too large for the CUDA trainer");
  s.rows = static_cast<int>(rows);
  const int d = c.head_dim();

  size_t total = 0, matrix_total = 0, squares = 0, matrices = 0;
  for_each_parameter(state.params, [&](const std::string& name, const Matrix<float>& m, const std::vector<int64_t>&) {
    if (name.ends_with(".attn.c_q.weight") || name == "skip_weights") s.block_first.push_back(s.slots.size());
    s.slots.push_back({total, static_cast<size_t>(m.rows()), static_cast<size_t>(m.cols()), param_group(name)});
    s.slot_names.push_back(name);
    total += (static_cast<size_t>(m.size()) + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
    if (param_group(name) == ParamGroup::Matrix) {
      const auto side = static_cast<size_t>(std::min(m.rows(), m.cols()));
      matrix_total += static_cast<size_t>(m.size()), squares += side * side, ++matrices;
    }
  });
  require(s.block_first.size() == static_cast<size_t>(c.layers) + 1, "CudaTrainer: the blocks' slots moved");
  s.skip_slot = s.block_first.back();
  // Buffers for every virtual layer of the looped stack (a recurrent model starts looping: set_looping).
  s.layer_blocks = s.config.block_order();
  s.smear_slot = s.skip_slot + 1;
  s.bigram_slot = s.skip_slot + 1 + (c.smear_v1() ? 1 : c.smear_v2() ? 2 : 0);
  s.mtp_slot = s.bigram_slot + (c.bigram_buckets > 0 ? 3 : 0);  // for_each_parameter's order
  require(c.mtp_heads == 0 || s.slot_names.at(s.mtp_slot) == "mtp.0.weight", "CudaTrainer: the heads' slots moved");

  // One function makes every buffer: counting first, to check the bytes against the free memory.
  const BufferSizes sizes{total, matrix_total, squares, matrices};
  Allocation counted;
  s.allocate_buffers(counted, sizes);
  const double needed = counted.bytes + 512.0 * (1 << 20);  // + cuBLAS and the CUDA context
  size_t free_bytes = 0, total_bytes = 0;
  PGOLF_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  require(needed <= static_cast<double>(free_bytes),
          "this model with micro-batches of " + std::to_string(settings.micro_batch) + " x " +
              std::to_string(settings.seq_len) + " tokens needs " + std::to_string(std::llround(needed / (1 << 20))) +
              " MiB of GPU memory; " + std::to_string(free_bytes >> 20) + " MiB are free (lower --micro-batch)");
  Allocation allocated{.counting = false};
  s.allocate_buffers(allocated, sizes);

  PGOLF_CUDA_CHECK(cublasCreate(&s.gemm.handle));
  PGOLF_CUDA_CHECK(cublasSetStream(s.gemm.handle, s.stream));
  s.gemm.compute = precision == Precision::kBf16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                   : precision == Precision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                       : CUBLAS_COMPUTE_32F_PEDANTIC;
  auto upload = [&](const ModelParams<float>& p, DeviceBuffer<float>& flat) {
    std::vector<float> values(total);
    size_t i = 0;
    for_each_parameter(p, [&](const std::string&, const Matrix<float>& m, const std::vector<int64_t>&) {
      std::copy(m.data(), m.data() + m.size(), values.begin() + static_cast<int64_t>(s.slots[i++].offset));
    });
    flat.upload(values);
  };
  upload(state.params, s.params);
  upload(state.optimizer.momentum, s.momentum);
  upload(state.optimizer.adam_m, s.adam_m);
  upload(state.optimizer.adam_v, s.adam_v);
  if (settings.optimizer.ema_decay > 0 && !state.optimizer.ema.blocks.empty()) {
    upload(state.optimizer.ema, s.ema);
    s.ema_started = true;
  }
  PGOLF_CUDA_CHECK(cudaMemset(s.grads.data(), 0, total * sizeof(float)));
  const RopeTable rope = rope_table(settings.seq_len, d, c.rotated_dims(), c.rope_base, c.rope_rounding);
  s.rope_cos.upload(rope.cos);
  s.rope_sin.upload(rope.sin);
  s.round_params();
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

void CudaTrainer::sgd_step(float lr, const TttSgdOptions& options) {
  State& s = *state_;
  require(!s.group, "test-time training runs on one GPU");
  const cudaStream_t stream = s.stream;
  // The frozen blocks' slots are one contiguous run after tok_emb: their gradient is dropped.
  const size_t frozen_begin = s.slots[1].offset;
  const size_t frozen_end = options.frozen_blocks > 0 ? s.slots[s.block_slot(options.frozen_blocks, kCq)].offset : frozen_begin;
  PGOLF_CUDA_CHECK(cudaMemsetAsync(s.grads.data() + frozen_begin, 0, (frozen_end - frozen_begin) * sizeof(float), stream));
  const auto total = static_cast<int64_t>(s.grads.size());
  if (options.grad_clip > 0) {
    cuda::squared_norm(s.grads.data(), total, s.norm.data(), stream);
    cuda::clip_by_norm(s.grads.data(), s.norm.data(), total, static_cast<float>(options.grad_clip), stream);
  }
  // buf = momentum buf + g; w -= lr buf, on [0, frozen_begin) and [frozen_end, total).
  const float momentum = static_cast<float>(options.momentum), one = 1;
  for (const auto& [begin, end] : {std::pair<size_t, size_t>{0, frozen_begin}, {frozen_end, s.grads.size()}}) {
    const int count = static_cast<int>(end - begin);
    if (count == 0) continue;
    float* buf = s.momentum.data() + begin;
    PGOLF_CUDA_CHECK(cublasSscal(s.gemm.handle, count, &momentum, buf, 1));
    PGOLF_CUDA_CHECK(cublasSaxpy(s.gemm.handle, count, &one, s.grads.data() + begin, 1, buf, 1));
    cuda::apply_update(s.params.data() + begin, buf, count, lr, 1.0f, stream);
  }
  s.round_params();
  PGOLF_CUDA_CHECK(cudaMemsetAsync(s.grads.data(), 0, s.grads.size() * sizeof(float), stream));
  PGOLF_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void CudaTrainer::start_ema() {
  State& s = *state_;
  if (s.settings.optimizer.ema_decay <= 0 || s.ema_started) return;
  s.copy(s.ema.data(), s.params.data(), static_cast<int64_t>(s.params.size()));
  s.ema_started = true;
}

void CudaTrainer::swap_ema() {
  State& s = *state_;
  if (!s.ema_started) return;
  std::swap(s.params, s.ema);
  s.round_params();
}

void CudaTrainer::set_looping(bool on) {
  State& s = *state_;
  s.config.looping = on;
  s.layer_blocks = s.config.block_order();  // never more layers than the buffers were made for
}

double CudaTrainer::accumulate(std::span<const TokenWindow> windows, double weight) {
  State& s = *state_;
  s.upload_windows(windows, State::Pass::kBackward);
  const int sequences = static_cast<int>(windows.size());
  s.forward(sequences, s.length, true);
  // The step's last micro-batch (the loop in training.cpp runs local_micro_batches per step).
  const bool last = s.group && ++s.micro_batches_seen == s.local_micro_batches;
  s.backward(sequences, static_cast<float>(weight), last);
  s.gradient_summed = s.gradient_summed || last;
  const std::vector<double> losses = s.losses.download(static_cast<size_t>(sequences) * s.length);
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
  // matrix's owner (batched by shape), which then hands the result to the others.
  const int rank = this->rank(), ranks = this->ranks();
  int matrix = 0;
  std::map<std::pair<size_t, size_t>, std::vector<size_t>> batches;  // by (short side, long side)
  for (size_t i = 0; i < s.slots.size(); ++i) {
    const Slot& slot = s.slots[i];
    if (slot.group != ParamGroup::Matrix) continue;
    cuda::muon_momentum(s.momentum.data() + slot.offset, s.grad(i), static_cast<int64_t>(slot.rows * slot.cols),
                        momentum, stream);
    if (o.muon_row_normalize)  // MuonEq-R
      cuda::rms_norm_rows(s.grad(i), static_cast<int64_t>(slot.rows), static_cast<int>(slot.cols), stream);
    if (matrix++ % ranks == rank)
      batches[{std::min(slot.rows, slot.cols), std::max(slot.rows, slot.cols)}].push_back(i);
  }
  for (const auto& [shape, batch] : batches) s.newton_schulz(batch);
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
      const float keep = static_cast<float>(o.muon_weight_decay > 0 ? 1 - o.matrix_lr * lr_scale * o.muon_weight_decay : 1);
      cuda::apply_update(w, g, count, static_cast<float>(o.matrix_lr * lr_scale * shape_scale), keep, stream);
      continue;
    }
    const double lr = (slot.group == ParamGroup::Embedding ? o.embed_lr : o.scalar_lr) * lr_scale;
    const double decay = slot.group == ParamGroup::Embedding ? o.embed_weight_decay : o.scalar_weight_decay;
    cuda::adam(w, g, s.adam_m.data() + slot.offset, s.adam_v.data() + slot.offset, count, static_cast<float>(o.beta1),
               static_cast<float>(o.beta2), static_cast<float>(o.eps), static_cast<float>(lr / correction1),
               static_cast<float>(std::sqrt(correction2)), static_cast<float>(1 - lr * decay), stream);
  }
  s.round_params();
  if (s.ema_started) {  // ema = decay ema + (1 - decay) params (every rank alike)
    const auto decay = static_cast<float>(ema_decay_at(o, s.optimizer_steps)), rest = 1 - decay;
    const auto count = static_cast<int>(s.params.size());
    PGOLF_CUDA_CHECK(cublasSscal(s.gemm.handle, count, &decay, s.ema.data(), 1));
    PGOLF_CUDA_CHECK(cublasSaxpy(s.gemm.handle, count, &rest, s.params.data(), 1, s.ema.data(), 1));
  }
  PGOLF_CUDA_CHECK(cudaMemsetAsync(s.grads.data(), 0, s.grads.size() * sizeof(float), stream));
  PGOLF_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::vector<double> CudaTrainer::token_losses(std::span<const TokenWindow> windows, size_t scored) {
  State& s = *state_;
  s.upload_windows(windows, State::Pass::kScoring, scored);
  const int n = static_cast<int>(windows.size() * scored);
  s.forward(static_cast<int>(windows.size()), static_cast<int>(scored), false);
  cuda::softcap_cross_entropy(s.logits.data(), s.targets.data(), n, s.config.vocab,
                              static_cast<float>(s.config.logit_softcap), s.losses.data(), s.stream);
  return s.losses.download(static_cast<size_t>(n));
}

std::vector<double> CudaTrainer::score_suffix(TokenWindow window, size_t scored, bool with_gradient) {
  State& s = *state_;
  require(!s.group, "test-time training runs on one GPU");
  require(scored >= 1 && scored < window.size(), "CudaTrainer::score_suffix: 1 to all of the window's targets scored");
  if (!with_gradient) return token_losses(std::span(&window, 1), scored);  // a pass of the window's own length
  s.upload_windows(std::span(&window, 1), State::Pass::kBackward);
  s.forward(1, s.length, true);
  const int rows = s.length, first = rows - static_cast<int>(scored);
  PGOLF_CUDA_CHECK(cudaMemsetAsync(s.grads.data(), 0, s.grads.size() * sizeof(float), s.stream));
  // backward weighs each row by loss_weight / rows: 1 / scored for the scored ones.
  s.backward(1, static_cast<float>(rows) / static_cast<float>(scored), false, first);
  return last_targets(s.losses.download(static_cast<size_t>(rows)), 1, scored);
}

void CudaTrainer::add_input_moments(std::span<const TokenWindow> windows, InputMoments& moments) {
  State& s = *state_;
  const ModelConfig& c = s.config;
  require(s.precision == Precision::kFp32, "CudaTrainer: calibration runs the fp32 forward");
  require(moments.config().describe() == c.describe(), "CudaTrainer: moments of another model");
  const std::vector<InputSlot> slots = matrix_inputs(c);
  if (s.moment_sums.empty())
    for (const InputSlot& slot : slots)
      s.moment_sums.emplace_back(static_cast<size_t>(input_dim(c, slot.input)) * input_dim(c, slot.input));
  s.upload_windows(windows, State::Pass::kInputs);
  const int sequences = static_cast<int>(windows.size()), rows = sequences * s.length;
  s.forward(sequences, s.length, false);
  // The forward keeps every matrix input [rows, dim]: column-major, its memory is Xᵀ [dim, rows],
  // so Xᵀ (Xᵀ)ᵀ = XᵀX. A looped block's sum gathers its passes.
  std::vector<bool> seen(static_cast<size_t>(c.layers), false);
  auto observe = [&](int block, MatrixInput input, const float* x) {
    const int dim = input_dim(c, input);
    const float beta = block >= 0 && seen[static_cast<size_t>(block)] ? 1 : 0;
    s.gemm(CUBLAS_OP_N, CUBLAS_OP_T, dim, dim, rows, 1, x, dim, x, dim, beta,
           s.moment_sums[input_index(c, block, input)].data(), dim);
  };
  for (int i = 0; i < s.virtual_layers(); ++i) {
    const int b = s.layer_blocks[i];
    const BlockActivations& a = s.blocks[i];
    observe(b, MatrixInput::kAttention, a.attn_in.data());
    observe(b, MatrixInput::kAttentionOutput, s.proj_input(i).f32);
    observe(b, MatrixInput::kMlp, a.mlp_in.data());
    observe(b, MatrixInput::kMlpHidden, a.hidden.data());
    seen[static_cast<size_t>(b)] = true;
  }
  observe(-1, MatrixInput::kHead, s.final_normed.data());
  for (size_t i = 0; i < slots.size(); ++i) {
    const int dim = input_dim(c, slots[i].input);
    const std::vector<float> sum = s.moment_sums[i].download();
    moments.sum(slots[i].block, slots[i].input) += Eigen::Map<const Matrix<float>>(sum.data(), dim, dim).cast<double>();
  }
  moments.add_positions(int64_t{rows});
}

Matrix<float> CudaTrainer::last_logits(std::span<const TokenWindow> windows) {
  State& s = *state_;
  s.upload_windows(windows, State::Pass::kInputs);
  s.forward(static_cast<int>(windows.size()), 1, false);  // the logits of each window's last row alone
  const std::vector<float> rows = s.logits.download(windows.size() * static_cast<size_t>(s.config.vocab));
  // Row-major rows into the column-major matrix, then the softcap as Model<float> applies it.
  const Matrix<float> logits =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          rows.data(), static_cast<Eigen::Index>(windows.size()), s.config.vocab);
  return softcapped(logits, s.config.logit_softcap);
}

CudaTrainer inference_trainer(const Model<float>& model, int seq_len, int windows, Precision precision) {
  TrainState state;
  state.config = model.config();
  state.params = model.params();
  state.optimizer = zero_optimizer_state(state.config);
  TrainSettings settings;
  settings.seq_len = seq_len;
  settings.micro_batch = windows;
  settings.tokens_per_step = int64_t{windows} * seq_len;
  return CudaTrainer(state, settings, precision);
}

namespace {

// LoRA's adapters on the trainer's own weights and gradient: A, B and Adam's moments stay on the
// GPU; each step is three small fp32 GEMMs and two Adam kernels per matrix, then the merged weight
// (and its bf16 copy) rewritten in place. The CPU's adapters (trainer/ttt_lora.cpp) are the oracle.
class CudaLoraAdapters final : public LoraAdapters {
 public:
  CudaLoraAdapters(CudaTrainer::State& s, const TttLoraOptions& options, int layers);
  void reset() override;
  void adam_step() override;

 private:
  struct Adapter {
    size_t slot;
    int out, in;
    DeviceBuffer<float> base, a_first, a, b, a_m, a_v, b_m, b_v, g_a, g_b;  // B [out, r], A [r, in] row-major
  };
  void merge(Adapter& a);  // W = base + scale B A
  CudaTrainer::State& s_;
  TttLoraOptions options_;
  std::vector<Adapter> adapters_;
  int64_t steps_ = 0;
};

}  // namespace

std::unique_ptr<LoraAdapters> CudaTrainer::lora_adapters(const TttLoraOptions& options, int layers) {
  require(!state_->group, "test-time training runs on one GPU");
  return std::make_unique<CudaLoraAdapters>(*state_, options, layers);
}

CudaLoraAdapters::CudaLoraAdapters(CudaTrainer::State& s, const TttLoraOptions& options, int layers)
    : s_(s), options_(options) {
  std::vector<int64_t> in_widths;
  for (const std::string& name : options.parameter_names(layers)) {
    const auto found = std::find(s.slot_names.begin(), s.slot_names.end(), name);
    require(found != s.slot_names.end(), "the model has no parameter " + name);
    const auto slot = static_cast<size_t>(found - s.slot_names.begin());
    Adapter a;
    a.slot = slot, a.out = static_cast<int>(s.slots[slot].rows), a.in = static_cast<int>(s.slots[slot].cols);
    a.base = DeviceBuffer<float>(static_cast<size_t>(a.out) * a.in);
    PGOLF_CUDA_CHECK(cudaMemcpy(a.base.data(), s.param(slot), a.base.size() * sizeof(float), cudaMemcpyDeviceToDevice));
    const size_t a_size = static_cast<size_t>(options.rank) * a.in, b_size = static_cast<size_t>(a.out) * options.rank;
    for (DeviceBuffer<float>* buffer : {&a.a, &a.a_m, &a.a_v, &a.g_a}) *buffer = DeviceBuffer<float>(a_size);
    for (DeviceBuffer<float>* buffer : {&a.b, &a.b_m, &a.b_v, &a.g_b}) *buffer = DeviceBuffer<float>(b_size);
    in_widths.push_back(a.in);
    adapters_.push_back(std::move(a));
  }
  const std::vector<Matrix<float>> draws = lora_first_draws(options, in_widths);
  for (size_t i = 0; i < adapters_.size(); ++i)
    adapters_[i].a_first = DeviceBuffer<float>(std::span<const float>(draws[i].data(), static_cast<size_t>(draws[i].size())));
  reset();
}

void CudaLoraAdapters::reset() {
  for (Adapter& a : adapters_) {
    PGOLF_CUDA_CHECK(cudaMemcpyAsync(a.a.data(), a.a_first.data(), a.a.size() * sizeof(float), cudaMemcpyDeviceToDevice,
                                     s_.stream));
    for (DeviceBuffer<float>* zero : {&a.b, &a.a_m, &a.a_v, &a.b_m, &a.b_v})
      PGOLF_CUDA_CHECK(cudaMemsetAsync(zero->data(), 0, zero->size() * sizeof(float), s_.stream));
    merge(a);  // B = 0: the base
  }
  steps_ = 0;
}

// Row-major M [rows, cols] is column-major M^T with leading dimension cols (kernels/gemm.h).
void CudaLoraAdapters::merge(Adapter& a) {
  const float scale = static_cast<float>(options_.alpha / options_.rank);
  float* w = s_.param(a.slot);
  PGOLF_CUDA_CHECK(cudaMemcpyAsync(w, a.base.data(), a.base.size() * sizeof(float), cudaMemcpyDeviceToDevice, s_.stream));
  // W^T [in, out] += scale A^T [in, r] B^T [r, out]
  s_.gemm(CUBLAS_OP_N, CUBLAS_OP_N, a.in, a.out, options_.rank, scale, a.a.data(), a.in, a.b.data(), options_.rank, 1.0f,
          w, a.in);
  s_.round_slot(a.slot);
}

void CudaLoraAdapters::adam_step() {
  ++steps_;
  const float scale = static_cast<float>(options_.alpha / options_.rank);
  const double correction1 = 1 - std::pow(options_.beta1, steps_), correction2 = 1 - std::pow(options_.beta2, steps_);
  const auto step_size = static_cast<float>(options_.lr / correction1);
  const auto root_correction2 = static_cast<float>(std::sqrt(correction2));
  const auto keep = static_cast<float>(1 - options_.lr * options_.weight_decay);  // AdamW's decay
  const int r = options_.rank;
  for (Adapter& a : adapters_) {
    const float* g = s_.grad(a.slot);  // of the merged weight [out, in]
    // dB^T [r, out] = scale A [r, in] G^T [in, out]
    s_.gemm(CUBLAS_OP_T, CUBLAS_OP_N, r, a.out, a.in, scale, a.a.data(), a.in, g, a.in, 0.0f, a.g_b.data(), r);
    // dA^T [in, r] = scale G^T [in, out] B [out, r]
    s_.gemm(CUBLAS_OP_N, CUBLAS_OP_T, a.in, r, a.out, scale, g, a.in, a.b.data(), r, 0.0f, a.g_a.data(), a.in);
    for (auto [p, m, v, d] : {std::tuple{&a.b, &a.b_m, &a.b_v, &a.g_b}, std::tuple{&a.a, &a.a_m, &a.a_v, &a.g_a}})
      cuda::adam(p->data(), d->data(), m->data(), v->data(), static_cast<int64_t>(p->size()),
                 static_cast<float>(options_.beta1), static_cast<float>(options_.beta2), static_cast<float>(options_.eps),
                 step_size, root_correction2, keep, s_.stream);
    merge(a);
  }
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
  if (s.ema_started) {
    state.optimizer.ema = zero_params<float>(s.config);
    download_into(s.ema, s.slots, state.optimizer.ema);
  }
  state.optimizer.steps = s.optimizer_steps;
}

ModelParams<float> CudaTrainer::gradient() const {
  ModelParams<float> g = zero_params<float>(state_->config);
  download_into(state_->grads, state_->slots, g);
  return g;
}

std::string CudaTrainer::device() const {
  const State& s = *state_;
  const char* precision = s.precision == Precision::kBf16   ? "bf16 GEMMs and attention, fp32 weights and loss"
                          : s.precision == Precision::kTf32 ? "fp32 with TF32 GEMMs"
                                                                : "fp32";
  return "cuda (" + cuda_device_name() + "), " + precision +
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
