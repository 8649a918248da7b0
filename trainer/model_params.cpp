#include "trainer/model_params.h"

#include <charconv>
#include <cmath>
#include <numbers>
#include <random>
#include <set>
#include <tuple>

#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"
#include "core/spec.h"

namespace pgolf {

void ModelConfig::validate() const {
  require(vocab > 0 && dim > 0 && layers > 0 && heads > 0 && kv_heads > 0 && mlp_hidden > 0,
          "model config: vocab, dim, layers, heads, kv heads and MLP hidden must be positive (" + describe() + ")");
  require(dim % heads == 0, "model config: dim " + std::to_string(dim) + " is not a multiple of " +
                                std::to_string(heads) + " heads");
  require(head_dim() % 2 == 0, "model config: head dim " + std::to_string(head_dim()) + " is odd; RoPE needs it even");
  require(heads % kv_heads == 0, "model config: " + std::to_string(heads) + " heads are not a multiple of " +
                                     std::to_string(kv_heads) + " KV heads");
  require(mlp_negative_slope >= 0 && mlp_negative_slope < 1,
          "model config: the MLP's negative slope must be in [0, 1), got " + number_text(mlp_negative_slope));
  require(rope_dims >= 0 && rope_dims % 2 == 0 && rope_dims <= head_dim(),
          "model config: partial RoPE rotates an even number of dims up to the head dim " +
              std::to_string(head_dim()) + ", got " + std::to_string(rope_dims));
  require(!smear_v2() || dim >= kSmearWindow, "model config: SmearGate v2 reads the first " +
                                                   std::to_string(kSmearWindow) + " dims; the model has " +
                                                   std::to_string(dim));
  require(xsa_layers >= 0 && xsa_layers <= layers, "model config: XSA on the last " + std::to_string(xsa_layers) +
                                                      " layers of " + std::to_string(layers));
  require(mtp_heads >= 0 && mtp_heads <= 8 && mtp_weight > 0,
          "model config: 0 to 8 multi-token heads with a positive weight, got " + std::to_string(mtp_heads) + " at " +
              number_text(mtp_weight));
  require(loops >= 1 && loops <= 16, "model config: --loops is 1 (none) to 16, got " + std::to_string(loops));
  require(!recurrent() || (loop_first >= 0 && loop_first <= loop_last && loop_last < layers),
          "model config: the loop range " + std::to_string(loop_first) + ".." + std::to_string(loop_last) +
              " is outside the " + std::to_string(layers) + " layers 0.." + std::to_string(layers - 1));
  require(bigram_buckets == 0 ? bigram_dim == 0 : bigram_buckets >= 2 && bigram_buckets <= 65536 && bigram_dim > 0,
          "model config: BigramHash needs 2 to 65536 buckets and a positive width, got " +
              std::to_string(bigram_buckets) + " x " + std::to_string(bigram_dim));
  // In the decoder half, after any loop: the skips are pushed by one stream, a looped block has one.
  require(parallel_from == 0 || (parallel_from >= layers / 2 && parallel_from < layers &&
                                 (!recurrent() || loop_last < parallel_from)),
          "model config: parallel lanes from block " + std::to_string(parallel_from) + " of " + std::to_string(layers) +
              ": they start in the decoder half (" + std::to_string(layers / 2) + ".." + std::to_string(layers - 1) +
              ") and after the looped blocks");
}

std::vector<int> ModelConfig::block_order() const {
  std::vector<int> order;
  for (int b = 0; b < layers; ++b) {
    order.push_back(b);
    if (recurrent() && looping && b == loop_last)
      for (int pass = 1; pass < loops; ++pass)
        for (int r = loop_first; r <= loop_last; ++r) order.push_back(r);
  }
  return order;
}

int ModelConfig::skip_count() const {
  ModelConfig looped = *this;
  looped.looping = true;
  return looped.skips_now();
}

std::string ModelConfig::describe() const {
  return std::to_string(layers) + " layers, dim " + std::to_string(dim) + ", " + std::to_string(heads) +
         " heads / " + std::to_string(kv_heads) + " KV heads, MLP " + std::to_string(mlp_hidden) +
         (mlp_negative_slope == 0 ? "" : " " + activation_name(mlp_negative_slope)) + ", vocab " + std::to_string(vocab) +
         (rope_dims > 0 ? ", RoPE on " + std::to_string(rope_dims) + " dims" : "") +
         (rope_rounding != RopeRounding::kFloat32 ? ", RoPE table " + rope_rounding_name(rope_rounding) : "") + (smear_gate != SmearGate::kNone ? ", SmearGate " + smear_gate_name(smear_gate) : "") +
         (bigram_buckets > 0 ? ", BigramHash " + std::to_string(bigram_buckets) + "x" + std::to_string(bigram_dim) : "") +
         (xsa_layers > 0 ? ", XSA on the last " + std::to_string(xsa_layers) : "") +
         (mtp_heads > 0 ? ", " + std::to_string(mtp_heads) + " multi-token heads at " + number_text(mtp_weight) : "") +
         (recurrent() ? ", blocks " + std::to_string(loop_first) + ".." + std::to_string(loop_last) + " looped " +
                            std::to_string(loops) + "x" : "") +
         (parallel_from > 0 ? ", parallel lanes from block " + std::to_string(parallel_from) : "");
}

namespace {

const std::vector<int64_t>& shape_of(const std::map<std::string, FloatTensor>& tensors, const std::string& name,
                                     size_t rank) {
  auto it = tensors.find(name);
  require(it != tensors.end(), "missing tensor " + name);
  const auto& shape = it->second.shape;
  require(shape.size() == rank && shape.back() > 0, name + ": expected a " + std::to_string(rank) +
                                                        "-D tensor, got shape " + shape_string(shape));
  return shape;
}

// The number of blocks: one more than the largest N of any "blocks.N." tensor.
int count_blocks(const std::map<std::string, FloatTensor>& tensors) {
  int layers = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!name.starts_with("blocks.")) continue;
    const char* begin = name.data() + 7;
    int index = -1;
    auto [end, ec] = std::from_chars(begin, name.data() + name.size(), index);
    if (ec == std::errc() && end != begin && *end == '.') layers = std::max(layers, index + 1);
  }
  return layers;
}

constexpr const char* kSeqLenKey = "pgolf.seq_len";
constexpr const char* kRopeBaseKey = "pgolf.rope_base";
constexpr const char* kSoftcapKey = "pgolf.logit_softcap";
constexpr const char* kActivationKey = "pgolf.activation";
constexpr const char* kRopeDimsKey = "pgolf.rope_dims";
constexpr const char* kRopeTableKey = "pgolf.rope_table";
constexpr const char* kLoopLayersKey = "pgolf.loop_layers";
constexpr const char* kLoopsKey = "pgolf.loops";
constexpr const char* kSmearGateKey = "pgolf.smear_gate";
constexpr const char* kXsaLayersKey = "pgolf.xsa_layers";

std::optional<double> positive_number(const std::map<std::string, std::string>& metadata, const char* key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  double v = 0;
  const auto [end, error] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  require(error == std::errc() && end == it->second.data() + it->second.size() && std::isfinite(v) && v > 0,
          "__metadata__ " + std::string(key) + " is '" + it->second + "', not a positive number");
  return v;
}
}  // namespace

std::map<std::string, std::string> recorded_metadata(const ModelConfig& config, int seq_len) {
  std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                 {kSeqLenKey, std::to_string(seq_len)},
                                                 {kRopeBaseKey, number_text(config.rope_base)},
                                                 {kSoftcapKey, number_text(config.logit_softcap)},
                                                 {kActivationKey, activation_name(config.mlp_negative_slope)}};
  if (config.rope_dims > 0) metadata[kRopeDimsKey] = std::to_string(config.rope_dims);
  if (config.rope_rounding != RopeRounding::kFloat32) metadata[kRopeTableKey] = rope_rounding_name(config.rope_rounding);
  if (config.recurrent()) {
    metadata[kLoopLayersKey] = loop_range_text(config.loop_first, config.loop_last);
    metadata[kLoopsKey] = std::to_string(config.loops);
  }
  if (config.smear_gate != SmearGate::kNone) metadata[kSmearGateKey] = smear_gate_name(config.smear_gate);
  if (config.xsa_layers > 0) metadata[kXsaLayersKey] = std::to_string(config.xsa_layers);
  return metadata;
}

std::pair<int, int> parse_loop_range(const std::string& text) {
  int first = -1, last = -1;
  const char* end = text.data() + text.size();
  const auto dots = text.find("..");
  if (dots != std::string::npos) {
    const auto a = std::from_chars(text.data(), text.data() + dots, first);
    const auto b = std::from_chars(text.data() + dots + 2, end, last);
    if (a.ec != std::errc() || a.ptr != text.data() + dots || b.ec != std::errc() || b.ptr != end) first = last = -1;
  }
  require(first >= 0 && first <= last, "loop layers '" + text + "': A..B with 0 <= A <= B (blocks A to B)");
  return {first, last};
}

std::string loop_range_text(int first, int last) { return std::to_string(first) + ".." + std::to_string(last); }

SmearGate parse_smear_gate(const std::string& text) {
  for (SmearGate gate : {SmearGate::kNone, SmearGate::kV1, SmearGate::kV2, SmearGate::kV2Unmasked})
    if (text == smear_gate_name(gate)) return gate;
  throw InputError("SmearGate '" + text + "': none, v1, v2 or v2-unmasked");
}

std::string smear_gate_name(SmearGate gate) {
  switch (gate) {
    case SmearGate::kNone: return "none";
    case SmearGate::kV1: return "v1";
    case SmearGate::kV2: return "v2";
    case SmearGate::kV2Unmasked: return "v2-unmasked";
  }
  return "none";
}

std::vector<uint16_t> bigram_buckets_of(std::span<const uint16_t> ids, int buckets) {
  const int32_t modulus = buckets - 1;
  std::vector<uint16_t> out(ids.size());
  auto wrap = [](uint32_t product) { return static_cast<int32_t>(product); };  // int32 overflow, as torch's
  for (size_t t = 0; t < ids.size(); ++t) {
    if (t == 0) {
      out[t] = static_cast<uint16_t>(modulus);
      continue;
    }
    const int32_t mixed = wrap(36313u * ids[t]) ^ wrap(27191u * ids[t - 1]);
    out[t] = static_cast<uint16_t>(((mixed % modulus) + modulus) % modulus);
  }
  return out;
}

std::vector<uint16_t> bigram_buckets_of(std::span<const std::span<const uint16_t>> windows, size_t inputs, int buckets) {
  std::vector<uint16_t> out;
  out.reserve(windows.size() * inputs);
  for (const auto& w : windows) {
    const std::vector<uint16_t> b = bigram_buckets_of(w.first(inputs), buckets);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

double parse_activation(const std::string& text) {
  if (text == "relu2") return 0.0;
  const std::string prefix = "leaky-relu2:";
  double slope = -1;
  if (text.starts_with(prefix)) {
    const char* begin = text.data() + prefix.size();
    const auto [end, error] = std::from_chars(begin, text.data() + text.size(), slope);
    if (error != std::errc() || end != text.data() + text.size()) slope = -1;
  }
  require(slope > 0 && slope < 1, "activation '" + text + "': relu2 or leaky-relu2:S with 0 < S < 1");
  return slope;
}

std::string activation_name(double negative_slope) {
  return negative_slope == 0 ? "relu2" : "leaky-relu2:" + number_text(negative_slope);
}

RecordedSettings recorded_settings(const std::map<std::string, std::string>& metadata) {
  RecordedSettings r;
  if (auto v = positive_number(metadata, kSeqLenKey)) {
    require(*v == std::floor(*v) && *v <= (1 << 24), "__metadata__ pgolf.seq_len is not a whole sequence length");
    r.seq_len = static_cast<int>(*v);
  }
  r.rope_base = positive_number(metadata, kRopeBaseKey);
  r.logit_softcap = positive_number(metadata, kSoftcapKey);
  if (auto it = metadata.find(kSmearGateKey); it != metadata.end()) {
    try {
      r.smear_gate = parse_smear_gate(it->second);
    } catch (const InputError& e) {
      throw InputError(std::string("__metadata__ ") + kSmearGateKey + ": " + e.what());
    }
  }
  if (auto v = positive_number(metadata, kXsaLayersKey)) {
    require(*v == std::floor(*v) && *v <= 4096, "__metadata__ pgolf.xsa_layers is not a whole number of layers");
    r.xsa_layers = static_cast<int>(*v);
  }
  if (auto v = positive_number(metadata, kRopeDimsKey)) {
    require(*v == std::floor(*v) && *v <= 4096, "__metadata__ pgolf.rope_dims is not a whole number of dims");
    r.rope_dims = static_cast<int>(*v);
  }
  if (auto v = positive_number(metadata, kLoopsKey)) {
    require(*v == std::floor(*v) && *v <= 16, "__metadata__ pgolf.loops is not a whole number of passes up to 16");
    r.loops = static_cast<int>(*v);
    auto it = metadata.find(kLoopLayersKey);
    require(it != metadata.end(), "__metadata__ pgolf.loops without pgolf.loop_layers");
    try {
      std::tie(r.loop_first, r.loop_last) = parse_loop_range(it->second);
    } catch (const InputError& e) {
      throw InputError(std::string("__metadata__ ") + kLoopLayersKey + ": " + e.what());
    }
  }
  if (auto it = metadata.find(kRopeTableKey); it != metadata.end()) {
    try {
      r.rope_rounding = parse_rope_rounding(it->second);
    } catch (const InputError& e) {
      throw InputError(std::string("__metadata__ ") + kRopeTableKey + ": " + e.what());
    }
  }
  if (auto it = metadata.find(kActivationKey); it != metadata.end()) {
    try {
      r.mlp_negative_slope = parse_activation(it->second);
    } catch (const InputError& e) {
      throw InputError(std::string("__metadata__ ") + kActivationKey + ": " + e.what());
    }
  }
  return r;
}

ModelConfig with_recorded(ModelConfig config, const RecordedSettings& recorded) {
  if (recorded.rope_base) config.rope_base = *recorded.rope_base;
  if (recorded.logit_softcap) config.logit_softcap = *recorded.logit_softcap;
  if (recorded.mlp_negative_slope) config.mlp_negative_slope = *recorded.mlp_negative_slope;
  if (recorded.rope_dims) config.rope_dims = *recorded.rope_dims;
  if (recorded.rope_rounding) config.rope_rounding = *recorded.rope_rounding;
  if (recorded.loops) {
    config.loops = *recorded.loops;
    config.loop_first = *recorded.loop_first;
    config.loop_last = *recorded.loop_last;
  }
  if (recorded.xsa_layers) config.xsa_layers = *recorded.xsa_layers;
  // The tensors tell v1 from v2; only v2's mask is the metadata's alone.
  if (recorded.smear_gate == SmearGate::kV2Unmasked && config.smear_v2()) config.smear_gate = SmearGate::kV2Unmasked;
  config.validate();
  return config;
}

ModelConfig ModelConfig::from_tensors(const std::map<std::string, FloatTensor>& tensors) {
  ModelConfig c;
  const auto& emb = shape_of(tensors, "tok_emb.weight", 2);
  c.vocab = static_cast<int>(emb[0]);
  c.dim = static_cast<int>(emb[1]);
  c.layers = count_blocks(tensors);
  require(c.layers > 0, "missing tensor blocks.0.attn.c_q.weight: no blocks.N.* tensors");
  c.heads = static_cast<int>(shape_of(tensors, "blocks.0.attn.q_gain", 1)[0]);
  require(c.dim % c.heads == 0, "blocks.0.attn.q_gain: " + std::to_string(c.heads) +
                                    " heads do not divide the model dim " + std::to_string(c.dim));
  int64_t kv_rows = shape_of(tensors, "blocks.0.attn.c_k.weight", 2)[0];
  require(kv_rows % c.head_dim() == 0, "blocks.0.attn.c_k.weight: " + std::to_string(kv_rows) +
                                           " rows are not a multiple of the head dim " +
                                           std::to_string(c.head_dim()));
  c.kv_heads = static_cast<int>(kv_rows / c.head_dim());
  c.mlp_hidden = static_cast<int>(shape_of(tensors, "blocks.0.mlp.fc.weight", 2)[0]);
  c.smear_gate = tensors.contains("smear_gate.weight") ? SmearGate::kV2
                 : tensors.contains("smear.gate")      ? SmearGate::kV1
                                                       : SmearGate::kNone;
  if (tensors.contains("bigram.embed.weight")) {
    const auto& table = shape_of(tensors, "bigram.embed.weight", 2);
    require(table[0] <= 65536, "bigram.embed.weight: more than 65536 buckets");
    c.bigram_buckets = static_cast<int>(table[0]);
    c.bigram_dim = static_cast<int>(table[1]);
  }
  for (int b = c.layers - 1; b >= 0 && tensors.contains("blocks." + std::to_string(b) + ".lanes"); --b)
    c.parallel_from = b;
  c.validate();
  return c;
}

template <typename T>
ModelParams<T> zero_params(const ModelConfig& c) {
  c.validate();
  const int q_rows = c.heads * c.head_dim();
  const int kv_rows = c.kv_heads * c.head_dim();
  ModelParams<T> p;
  p.tok_emb = Matrix<T>::Zero(c.vocab, c.dim);
  p.blocks.resize(c.layers);
  for (auto& b : p.blocks) {
    b.c_q = Matrix<T>::Zero(q_rows, c.dim);
    b.c_k = Matrix<T>::Zero(kv_rows, c.dim);
    b.c_v = Matrix<T>::Zero(kv_rows, c.dim);
    b.attn_proj = Matrix<T>::Zero(c.dim, q_rows);
    b.q_gain = Matrix<T>::Zero(1, c.heads);
    b.mlp_fc = Matrix<T>::Zero(c.mlp_hidden, c.dim);
    b.mlp_proj = Matrix<T>::Zero(c.dim, c.mlp_hidden);
    b.attn_scale = Matrix<T>::Zero(1, c.dim);
    b.mlp_scale = Matrix<T>::Zero(1, c.dim);
    b.resid_mix = Matrix<T>::Zero(2, c.dim);
  }
  for (int b = c.parallel_from > 0 ? c.parallel_from : c.layers; b < c.layers; ++b)
    p.blocks[static_cast<size_t>(b)].lanes = Matrix<T>::Zero(3, 2);
  p.skip_weights = Matrix<T>::Zero(c.skip_count(), c.dim);
  if (c.smear_v1()) p.smear_gate = Matrix<T>::Zero(1, c.dim);
  if (c.smear_v2()) {
    p.smear_gate = Matrix<T>::Zero(1, kSmearWindow);
    p.smear_lambda = Matrix<T>::Zero(1, 1);
  }
  if (c.bigram_buckets > 0) {
    p.bigram_embed = Matrix<T>::Zero(c.bigram_buckets, c.bigram_dim);
    p.bigram_proj = Matrix<T>::Zero(c.dim, c.bigram_dim);
    p.bigram_scale = Matrix<T>::Zero(1, 1);
  }
  p.mtp.assign(static_cast<size_t>(c.mtp_heads), Matrix<T>::Zero(c.dim, c.dim));
  return p;
}

template <typename T>
ModelParams<T> init_params(const ModelConfig& c, uint64_t seed) {
  Random random(seed);
  ModelParams<T> p = zero_params<T>(c);
  auto fill_normal = [&](Matrix<T>& m, double std) {
    for (auto& x : m.reshaped()) x = static_cast<T>(std * random.normal());
  };
  auto fill_linear = [&](Matrix<T>& w) {  // nn.Linear: uniform(-1/sqrt(in), 1/sqrt(in))
    double bound = 1.0 / std::sqrt(static_cast<double>(w.cols()));
    for (auto& x : w.reshaped()) x = static_cast<T>(bound * (2.0 * random.uniform() - 1.0));
  };
  fill_normal(p.tok_emb, 0.005);
  for (auto& b : p.blocks) {
    fill_linear(b.c_q);
    fill_linear(b.c_k);
    fill_linear(b.c_v);
    fill_linear(b.mlp_fc);
    b.q_gain.setConstant(T(1.5));
    b.attn_scale.setOnes();
    b.mlp_scale.setOnes();
    b.resid_mix.row(0).setOnes();
    if (b.lanes.size() > 0) {
      b.lanes.setOnes();
      b.lanes.row(0).setConstant(T(1.1));
    }
  }
  p.skip_weights.setOnes();
  if (c.bigram_buckets > 0) {
    fill_linear(p.bigram_proj);
    p.bigram_scale.setConstant(T(0.05));
  }
  for (auto& head : p.mtp) fill_linear(head);
  return p;
}

template <typename T>
ModelParams<T> params_from_tensors(const ModelConfig& config, const std::map<std::string, FloatTensor>& tensors) {
  ModelParams<T> p = zero_params<T>(config);
  std::set<std::string> known;
  for_each_parameter(p, [&](const std::string& name, Matrix<T>& m, const std::vector<int64_t>& shape) {
    auto it = tensors.find(name);
    require(it != tensors.end(), "missing tensor " + name + " (expected shape " + shape_string(shape) + ")");
    const FloatTensor& t = it->second;
    require(t.shape == shape, name + ": expected shape " + shape_string(shape) + ", got " + shape_string(t.shape));
    require(t.values.size() == static_cast<size_t>(m.size()), name + ": " + std::to_string(t.values.size()) +
                                                                   " values for shape " + shape_string(shape));
    m = Eigen::Map<const Matrix<float>>(t.values.data(), m.rows(), m.cols()).template cast<T>();
    known.insert(name);
  });
  for (const auto& [name, tensor] : tensors)
    require(known.contains(name), "unexpected tensor " + name + ": not part of the model (" + config.describe() + ")");
  return p;
}

template <typename T>
std::map<std::string, FloatTensor> params_to_tensors(const ModelParams<T>& params) {
  std::map<std::string, FloatTensor> tensors;
  for_each_parameter(params, [&](const std::string& name, const Matrix<T>& m, const std::vector<int64_t>& shape) {
    Matrix<float> values = m.template cast<float>();
    tensors[name] = FloatTensor{shape, std::vector<float>(values.data(), values.data() + values.size())};
  });
  return tensors;
}

template <typename T>
void add_params(ModelParams<T>& sum, const ModelParams<T>& term) {
  std::vector<const Matrix<T>*> terms;
  for_each_parameter(term, [&](const std::string&, const Matrix<T>& m, const std::vector<int64_t>&) {
    terms.push_back(&m);
  });
  size_t i = 0;
  for_each_parameter(sum, [&](const std::string&, Matrix<T>& m, const std::vector<int64_t>&) { m += *terms[i++]; });
}

#define PGOLF_INSTANTIATE(T)                                                                                  \
  template ModelParams<T> zero_params<T>(const ModelConfig&);                                                \
  template ModelParams<T> init_params<T>(const ModelConfig&, uint64_t);                                      \
  template ModelParams<T> params_from_tensors<T>(const ModelConfig&, const std::map<std::string, FloatTensor>&); \
  template std::map<std::string, FloatTensor> params_to_tensors<T>(const ModelParams<T>&);                   \
  template void add_params<T>(ModelParams<T>&, const ModelParams<T>&);
PGOLF_INSTANTIATE(float)
PGOLF_INSTANTIATE(double)
#undef PGOLF_INSTANTIATE

}  // namespace pgolf
