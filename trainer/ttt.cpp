#include "trainer/ttt.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "core/error.h"
#include "trainer/optimizer.h"

namespace pgolf {

void TttSgdOptions::validate(int layers) const {
  require(chunk_tokens > 0, "--ttt-chunk must be positive");
  require(lr > 0 && std::isfinite(lr), "--ttt-lr must be positive");
  require(momentum >= 0 && momentum < 1, "--ttt-momentum must lie in [0, 1)");
  require(epochs > 0, "--ttt-epochs must be positive");
  require(batch_sequences > 0, "--ttt-batch must be positive");
  require(grad_clip >= 0, "--ttt-clip must not be negative");
  require(frozen_blocks >= 0 && frozen_blocks <= layers,
          "--ttt-freeze " + std::to_string(frozen_blocks) + ": 0 to the model's " + std::to_string(layers) + " blocks");
}

std::string TttSgdOptions::describe() const {
  char text[200];
  std::snprintf(text, sizeof text, "SGD over chunks of %lld targets, lr %g (cosine), momentum %g, %d epochs, %d windows a step, clip %g, %d blocks frozen",
                static_cast<long long>(chunk_tokens), lr, momentum, epochs, batch_sequences, grad_clip, frozen_blocks);
  return text;
}

namespace {

class CpuTttEngine final : public TttEngine {
 public:
  CpuTttEngine(Model<float>& model, int threads)
      : model_(model), threads_(threads), grad_(zero_params<float>(model.config())),
        momentum_(zero_params<float>(model.config())) {}

  double accumulate(std::span<const TokenWindow> windows, double weight) override {
    ModelParams<float> g;
    const double loss = model_.loss_and_gradient(windows, g, threads_);
    const auto sum = named_tensors(grad_), term = named_tensors(g);
    for (size_t i = 0; i < sum.size(); ++i) *sum[i].second += static_cast<float>(weight) * *term[i].second;
    return loss;
  }

  void sgd_step(float lr, const TttSgdOptions& options) override {
    const auto params = named_tensors(model_.params()), g = named_tensors(grad_), buffers = named_tensors(momentum_);
    auto frozen = [&](const std::string& name) {
      return name.starts_with("blocks.") && std::stoi(name.substr(7)) < options.frozen_blocks;
    };
    for (size_t i = 0; i < params.size(); ++i)  // frozen: no gradient, in the clip's norm neither
      if (frozen(params[i].first)) g[i].second->setZero();
    if (options.grad_clip > 0) clip_gradient(grad_, options.grad_clip);
    const auto momentum = static_cast<float>(options.momentum);
    for (size_t i = 0; i < params.size(); ++i) {
      if (!frozen(params[i].first)) {
        *buffers[i].second = momentum * *buffers[i].second + *g[i].second;
        *params[i].second -= lr * *buffers[i].second;
      }
      g[i].second->setZero();
    }
  }

  std::vector<double> score_suffix(TokenWindow window, size_t scored, bool with_gradient) override {
    ModelParams<float> g;
    std::vector<double> losses = model_.suffix_losses(window, scored, with_gradient ? &g : nullptr);
    if (with_gradient) {  // into grad_'s own tensors: LoRA's adapters point at them
      const auto to = named_tensors(grad_), from = named_tensors(g);
      for (size_t i = 0; i < to.size(); ++i) *to[i].second = *from[i].second;
    }
    return losses;
  }
  std::unique_ptr<LoraAdapters> lora_adapters(const TttLoraOptions& options, int layers) override {
    std::vector<LoraTarget> targets;
    for (const std::string& name : options.parameter_names(layers))
      targets.push_back({tensor(model_.params(), name), tensor(grad_, name)});
    return make_cpu_lora_adapters(options, std::move(targets));
  }

 private:
  static Matrix<float>* tensor(ModelParams<float>& params, const std::string& name) {
    for (const auto& [tensor_name, tensor] : named_tensors(params))
      if (tensor_name == name) return tensor;
    throw InputError("the model has no parameter " + name);
  }
  Model<float>& model_;
  int threads_;
  ModelParams<float> grad_, momentum_;
};

}  // namespace

std::unique_ptr<TttEngine> make_cpu_ttt_engine(Model<float>& model, int threads) {
  return std::make_unique<CpuTttEngine>(model, threads);
}

TttSgd::TttSgd(TttEngine& engine, const TttSgdOptions& options, int layers, int seq_len)
    : engine_(engine), options_(options), seq_len_(seq_len) {
  options_.validate(layers);
}

void TttSgd::adapt(int64_t chunk, int64_t chunks, std::span<const uint16_t> tokens) {
  if (tokens.size() < 2) return;
  // Windows of seq_len + 1 tokens (the chunk's last one shorter), every target of the chunk once.
  std::vector<TokenWindow> windows;
  for (size_t start = 0; start + 1 < tokens.size(); start += static_cast<size_t>(seq_len_))
    windows.push_back(tokens.subspan(start, std::min(tokens.size() - start, static_cast<size_t>(seq_len_) + 1)));
  const double progress = chunks > 1 ? static_cast<double>(chunk) / static_cast<double>(chunks - 1) : 0.0;
  const auto lr = static_cast<float>(options_.lr * 0.5 * (1 + std::cos(std::numbers::pi * progress)));
  for (int epoch = 0; epoch < options_.epochs; ++epoch)
    for (size_t first = 0; first < windows.size(); first += static_cast<size_t>(options_.batch_sequences)) {
      const auto batch = std::span(windows).subspan(
          first, std::min(windows.size() - first, static_cast<size_t>(options_.batch_sequences)));
      // The mean over the batch's targets; an engine pass takes windows of one length, so each run of
      // equal lengths (the chunk's shorter last window is one) is weighted by its share of the targets.
      double targets = 0;
      for (const TokenWindow& w : batch) targets += static_cast<double>(w.size() - 1);
      for (size_t begin = 0, end = 0; begin < batch.size(); begin = end) {
        double run_targets = 0;
        for (end = begin; end < batch.size() && batch[end].size() == batch[begin].size(); ++end)
          run_targets += static_cast<double>(batch[end].size() - 1);
        engine_.accumulate(batch.subspan(begin, end - begin), run_targets / targets);
      }
      engine_.sgd_step(lr, options_);
    }
}

}  // namespace pgolf
