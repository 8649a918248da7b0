#include "trainer/train_state.h"

#include <charconv>
#include <cstdio>
#include <map>

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr const char* kFormat = "pgolf-train-state-1";

// Each tensor set of the state under its own name prefix.
struct Part {
  const char* prefix;
  ModelParams<float> TrainState::*params;
  ModelParams<float> OptimizerState::*optimizer;
};

template <typename State>  // TrainState, const or not
auto& part_of(State& s, const Part& part) {
  return part.params ? s.*part.params : s.optimizer.*part.optimizer;
}

// The weights' moving average, in the states of runs that keep one.
constexpr const char* kEmaPrefix = "ema.";
constexpr Part kParts[] = {{"param.", &TrainState::params, nullptr},
                           {"muon_momentum.", nullptr, &OptimizerState::momentum},
                           {"adam_m.", nullptr, &OptimizerState::adam_m},
                           {"adam_v.", nullptr, &OptimizerState::adam_v}};

void add_tensors(std::vector<TensorData>& out, const std::string& prefix, const ModelParams<float>& params, DType dtype) {
  for_each_parameter(params, [&](const std::string& name, const Matrix<float>& m, const std::vector<int64_t>& shape) {
    out.push_back({prefix + name, dtype, shape, from_float(dtype, std::span(m.data(), static_cast<size_t>(m.size())))});
  });
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", x);
  return text;
}

template <typename N>
N parse(const std::map<std::string, std::string>& metadata, const std::string& key, const std::string& path) {
  auto it = metadata.find(key);
  require(it != metadata.end(), path + ": training state lacks '" + key + "'");
  N value{};
  const std::string& text = it->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  require(ec == std::errc() && end == text.data() + text.size(), path + ": training state '" + key + "' is not a number: " + text);
  return value;
}

}  // namespace

TrainState initial_train_state(const ModelConfig& config, uint64_t seed) {
  TrainState s;
  s.config = config;
  s.params = init_params<float>(config, seed);
  s.optimizer = zero_optimizer_state(config);
  return s;
}

void save_train_state(const std::string& path, const TrainState& state, bool overwrite) {
  std::vector<TensorData> tensors;
  for (const Part& part : kParts) add_tensors(tensors, part.prefix, part_of(state, part), DType::F32);
  if (!state.optimizer.ema.blocks.empty()) add_tensors(tensors, kEmaPrefix, state.optimizer.ema, DType::F32);
  const ModelConfig& c = state.config;
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"vocab", std::to_string(c.vocab)},
      {"dim", std::to_string(c.dim)},
      {"layers", std::to_string(c.layers)},
      {"heads", std::to_string(c.heads)},
      {"kv_heads", std::to_string(c.kv_heads)},
      {"mlp_hidden", std::to_string(c.mlp_hidden)},
      {"logit_softcap", number(c.logit_softcap)},
      {"rope_base", number(c.rope_base)},
      {"activation", activation_name(c.mlp_negative_slope)},
      {"rope_dims", std::to_string(c.rope_dims)},
      {"rope_table", rope_rounding_name(c.rope_rounding)},
      {"smear_gate", smear_gate_name(c.smear_gate)},
      {"bigram_buckets", std::to_string(c.bigram_buckets)},
      {"bigram_dim", std::to_string(c.bigram_dim)},
      {"xsa_layers", std::to_string(c.xsa_layers)},
      {"loop_layers", loop_range_text(c.loop_first, c.loop_last)},
      {"loops", std::to_string(c.loops)},
      {"mtp_heads", std::to_string(c.mtp_heads)},
      {"mtp_weight", number(c.mtp_weight)},
      {"parallel_from", std::to_string(c.parallel_from)},
      {"step", std::to_string(state.step)},
      {"optimizer_steps", std::to_string(state.optimizer.steps)},
      {"data_shard", std::to_string(state.data.shard)},
      {"data_offset", std::to_string(state.data.offset)},
      {"elapsed_seconds", number(state.elapsed_seconds)},
  };
  write_safetensors(path, tensors, metadata, overwrite);
}

TrainState load_train_state(const std::string& path) {
  const Checkpoint file = Checkpoint::open({path});
  const auto& meta = file.metadata();
  auto format = meta.find("format");
  require(format != meta.end() && format->second == kFormat, path + ": not a pgolf training state (no format " + kFormat + ")");
  TrainState s;
  ModelConfig& c = s.config;
  c.vocab = parse<int>(meta, "vocab", path);
  c.dim = parse<int>(meta, "dim", path);
  c.layers = parse<int>(meta, "layers", path);
  c.heads = parse<int>(meta, "heads", path);
  c.kv_heads = parse<int>(meta, "kv_heads", path);
  c.mlp_hidden = parse<int>(meta, "mlp_hidden", path);
  c.logit_softcap = parse<double>(meta, "logit_softcap", path);
  c.rope_base = parse<double>(meta, "rope_base", path);
  // States written before the activation was an option are relu².
  if (auto it = meta.find("activation"); it != meta.end()) c.mlp_negative_slope = parse_activation(it->second);
  // ... and of the whole-head RoPE, without SmearGate or BigramHash.
  if (meta.contains("rope_dims")) c.rope_dims = parse<int>(meta, "rope_dims", path);
  if (auto it = meta.find("rope_table"); it != meta.end()) c.rope_rounding = parse_rope_rounding(it->second);
  if (auto it = meta.find("smear_gate"); it != meta.end()) c.smear_gate = parse_smear_gate(it->second);
  if (meta.contains("xsa_layers")) c.xsa_layers = parse<int>(meta, "xsa_layers", path);
  if (meta.contains("mtp_heads")) {
    c.mtp_heads = parse<int>(meta, "mtp_heads", path);
    c.mtp_weight = parse<double>(meta, "mtp_weight", path);
  }
  if (meta.contains("parallel_from")) c.parallel_from = parse<int>(meta, "parallel_from", path);
  if (meta.contains("loops")) {
    c.loops = parse<int>(meta, "loops", path);
    auto it = meta.find("loop_layers");
    require(it != meta.end(), path + ": training state has loops but no loop_layers");
    std::tie(c.loop_first, c.loop_last) = parse_loop_range(it->second);
  }
  if (meta.contains("bigram_buckets")) {
    c.bigram_buckets = parse<int>(meta, "bigram_buckets", path);
    c.bigram_dim = parse<int>(meta, "bigram_dim", path);
  }
  c.validate();
  s.step = parse<int64_t>(meta, "step", path);
  s.optimizer.steps = parse<int64_t>(meta, "optimizer_steps", path);
  s.data = {parse<int64_t>(meta, "data_shard", path), parse<int64_t>(meta, "data_offset", path)};
  s.elapsed_seconds = parse<double>(meta, "elapsed_seconds", path);
  require(s.step >= 0 && s.optimizer.steps >= 0 && s.elapsed_seconds >= 0,
          path + ": training state has a negative step count or training time");
  auto read_part = [&](const std::string& prefix) {
    std::map<std::string, FloatTensor> tensors;
    for (const TensorRef& t : file.tensors())
      if (t.name.starts_with(prefix)) tensors[t.name.substr(prefix.size())] = {t.shape, t.to_floats()};
    return tensors;
  };
  for (const Part& part : kParts) part_of(s, part) = params_from_tensors<float>(c, read_part(part.prefix));
  if (const auto average = read_part(kEmaPrefix); !average.empty()) s.optimizer.ema = params_from_tensors<float>(c, average);
  return s;
}

void save_checkpoint(const std::string& path, const ModelParams<float>& params,
                     const std::map<std::string, std::string>& metadata, bool overwrite) {
  std::vector<TensorData> tensors;
  add_tensors(tensors, "", params, DType::BF16);
  std::erase_if(tensors, [](const TensorData& t) { return !exported_tensor(t.name); });
  write_safetensors(path, tensors, metadata, overwrite);
}

}  // namespace pgolf
