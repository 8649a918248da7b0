#include "trainer/calibration.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "checkpoint/safetensors.h"
#include "core/dtype.h"
#include "core/error.h"
#include "data/shards.h"

namespace pgolf {

namespace {

constexpr MatrixInput kBlockInputs[] = {MatrixInput::kAttention, MatrixInput::kAttentionOutput, MatrixInput::kMlp,
                                        MatrixInput::kMlpHidden};
constexpr size_t kInputsPerBlock = std::size(kBlockInputs);

// Index of the token drawn from softmax(logits / temperature) by u in [0, 1), in double.
uint16_t sample(const auto& logits, double temperature, double u) {
  const double max = static_cast<double>(logits.maxCoeff());
  std::vector<double> cumulative(static_cast<size_t>(logits.size()));
  double total = 0;
  for (Eigen::Index j = 0; j < logits.size(); ++j) {
    total += std::exp((static_cast<double>(logits(j)) - max) / temperature);
    cumulative[j] = total;
  }
  const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u * total);
  return static_cast<uint16_t>(std::min<ptrdiff_t>(it - cumulative.begin(), logits.size() - 1));
}

}  // namespace

int input_dim(const ModelConfig& c, MatrixInput input) {
  return input == MatrixInput::kAttentionOutput ? c.heads * c.head_dim()
         : input == MatrixInput::kMlpHidden     ? c.mlp_hidden
                                                : c.dim;
}

std::vector<std::string> weights_of(int block, MatrixInput input) {
  const std::string p = "blocks." + std::to_string(block) + ".";
  switch (input) {
    case MatrixInput::kAttention: return {p + "attn.c_q.weight", p + "attn.c_k.weight", p + "attn.c_v.weight"};
    case MatrixInput::kAttentionOutput: return {p + "attn.proj.weight"};
    case MatrixInput::kMlp: return {p + "mlp.fc.weight"};
    case MatrixInput::kMlpHidden: return {p + "mlp.proj.weight"};
    case MatrixInput::kHead: return {"tok_emb.weight"};  // tied: the LM head is the embedding
  }
  return {};
}

std::vector<InputSlot> matrix_inputs(const ModelConfig& c) {
  std::vector<InputSlot> slots{{-1, MatrixInput::kHead}};
  for (int b = 0; b < c.layers; ++b)
    for (MatrixInput input : kBlockInputs) slots.push_back({b, input});
  return slots;
}

size_t input_index(const ModelConfig& c, int block, MatrixInput input) {
  if (input == MatrixInput::kHead) return 0;
  require(block >= 0 && block < c.layers, "calibration: block " + std::to_string(block) + " of " +
                                              std::to_string(c.layers));
  return 1 + static_cast<size_t>(block) * kInputsPerBlock + static_cast<size_t>(input);
}

InputMoments::InputMoments(const ModelConfig& config) : config_(config) {
  for (const InputSlot& s : matrix_inputs(config)) {
    const int dim = input_dim(config, s.input);
    sums_.push_back(Eigen::MatrixXd::Zero(dim, dim));
  }
}

void InputMoments::add(int block, MatrixInput input, const Matrix<float>& rows) {
  const size_t index = input_index(config_, block, input);
  Eigen::MatrixXd& s = sums_[index];
  require(rows.cols() == s.cols(), "calibration: an input of " + std::to_string(rows.cols()) + " columns, expected " +
                                       std::to_string(s.cols()));
  if (rows_sums_.size() != sums_.size()) rows_sums_.resize(sums_.size());
  Eigen::MatrixXf& w = rows_sums_[index];
  w.setZero(s.rows(), s.cols());
  w.selfadjointView<Eigen::Lower>().rankUpdate(rows.transpose());
  s += w.cast<double>();
}

void InputMoments::add(const InputMoments& other) {
  require(other.config_.describe() == config_.describe(), "calibration: adding moments of another model");
  for (size_t i = 0; i < sums_.size(); ++i) sums_[i] += other.sums_[i];
  positions_ += other.positions_;
}

std::vector<TokenWindow> calibration_windows(std::span<const uint16_t> tokens, int seq_len) {
  require(seq_len > 0 && !tokens.empty() && tokens.size() % static_cast<size_t>(seq_len) == 0,
          "calibration: " + std::to_string(tokens.size()) + " tokens are not whole windows of " +
              std::to_string(seq_len));
  std::vector<TokenWindow> windows;
  for (size_t start = 0; start < tokens.size(); start += seq_len) windows.push_back(tokens.subspan(start, seq_len));
  return windows;
}

std::vector<uint16_t> read_train_windows(const std::string& dir, int64_t tokens, int seq_len) {
  require(tokens > 0 && seq_len > 0, "calibration needs a positive token count and sequence length");
  const int64_t windows = (tokens + seq_len - 1) / seq_len;
  const size_t needed = static_cast<size_t>(windows * seq_len);
  std::vector<uint16_t> read;
  for (const std::string& path : find_shards(dir, "train")) {  // the train split only: never calibrate on val
    const TokenShard shard = TokenShard::open(path);
    const auto t = shard.tokens();
    read.insert(read.end(), t.begin(), t.begin() + static_cast<ptrdiff_t>(std::min(t.size(), needed - read.size())));
    if (read.size() == needed) return read;
  }
  throw InputError(dir + ": the train shards hold " + std::to_string(read.size()) + " tokens; calibration needs " +
                   std::to_string(needed) + " (" + std::to_string(windows) + " windows of " + std::to_string(seq_len) +
                   ")");
}

InputMoments input_moments(const Model<float>& model, std::span<const TokenWindow> windows, int threads,
                           const ProgressReport& progress) {
  threads = std::max(threads, 1);
  ProgressCounter windows_run(progress, "calibrating", windows.size());
  std::vector<InputMoments> per_thread(static_cast<size_t>(threads), InputMoments(model.config()));
  const InputObserver<float> observe = [&](int thread, int block, MatrixInput input, const Matrix<float>& rows) {
    per_thread[thread].add(block, input, rows);
  };
  // In chunks, for a progress bar; each chunk is shared out in the same way, so thread k's sum is
  // always over the same windows in the same order.
  const size_t chunk = 4 * static_cast<size_t>(threads);
  for (size_t first = 0; first < windows.size(); first += chunk) {
    const size_t count = std::min(chunk, windows.size() - first);
    model.observe_inputs(windows.subspan(first, count), threads, observe);
    windows_run.advance(count);
  }
  InputMoments total = std::move(per_thread[0]);
  for (size_t k = 1; k < per_thread.size(); ++k) total.add(per_thread[k]);
  for (const TokenWindow& w : windows) total.add_positions(std::ssize(w));
  return total;
}

void SamplingOptions::validate(int vocab) const {
  require(sequences > 0 && seq_len > 0, "self-generation needs a positive sequence count and length");
  require(temperature > 0 && std::isfinite(temperature), "the sampling temperature must be positive");
  require(kBosToken < vocab, "self-generation starts with BOS (id 1); the model's vocab is " + std::to_string(vocab));
}

std::vector<uint16_t> self_generate(const SamplingOptions& o, int vocab, size_t windows_per_call,
                                    const LastLogits& last_logits, const ProgressReport& progress) {
  o.validate(vocab);
  ProgressCounter positions(progress, "self-generating", static_cast<size_t>(o.seq_len - 1));
  const size_t length = static_cast<size_t>(o.seq_len);
  std::vector<uint16_t> tokens(static_cast<size_t>(o.sequences) * length, 0);
  std::vector<TokenWindow> prefixes(static_cast<size_t>(o.sequences));
  std::mt19937_64 rng(o.seed);  // its output is fixed by the standard; the conversion below too
  for (size_t i = 0; i < prefixes.size(); ++i) tokens[i * length] = kBosToken;
  for (size_t t = 1; t < length; ++t) {
    for (size_t i = 0; i < prefixes.size(); ++i) prefixes[i] = TokenWindow(tokens.data() + i * length, t);
    for (size_t first = 0; first < prefixes.size(); first += windows_per_call) {
      const size_t count = std::min(windows_per_call, prefixes.size() - first);
      const Matrix<float> logits = last_logits(std::span(prefixes).subspan(first, count));
      for (size_t r = 0; r < count; ++r) {
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
        tokens[(first + r) * length + t] = sample(logits.row(static_cast<Eigen::Index>(r)), o.temperature, u);
      }
    }
    positions.advance();
  }
  return tokens;
}

// In the checkpoint's tensor order (for_each_parameter's): tok_emb, then block by block.
std::vector<WeightHessian> weight_hessians(const InputMoments& moments) {
  require(moments.positions() > 0, "calibration saw no token positions");
  const ModelConfig& c = moments.config();
  std::vector<WeightHessian> out;
  for (const InputSlot& s : matrix_inputs(c)) {
    const Eigen::MatrixXd h = Eigen::MatrixXd(moments.sum(s.block, s.input).selfadjointView<Eigen::Lower>()) /
                              static_cast<double>(moments.positions());
    const Matrix<float> values = h.cast<float>();  // row-major; h is symmetric, so either layout is H
    for (const std::string& name : weights_of(s.block, s.input))
      out.push_back({name, h.rows(), {values.data(), values.data() + values.size()}, h.trace()});
  }
  return out;
}

void write_hessians(const std::string& path, const std::vector<WeightHessian>& hessians, int64_t tokens,
                    const CalibrationRecord& record, bool overwrite) {
  std::vector<TensorData> tensors;
  for (const WeightHessian& h : hessians)
    tensors.push_back({h.name, DType::F32, {h.dim, h.dim}, from_float(DType::F32, std::span(h.values))});
  write_safetensors(path, tensors,
                    {{"pgolf.calibration", "hessian"},
                     {"model", record.model},
                     {"tokens", std::to_string(tokens)},
                     {"seq_len", std::to_string(record.seq_len)},
                     {"source", record.source}},
                    overwrite);
}

}  // namespace pgolf
