// Per-document LoRA test-time training (trainer/ttt.h): the driver, A's first draw, and the CPU's
// adapters (Adam on rank-r A and B through the engine's gradient of the merged weights).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/random.h"
#include "core/spec.h"
#include "trainer/ttt.h"

namespace pgolf {

namespace {
// The block matrices an adapter can sit on, by their names within a block.
constexpr const char* kAdaptable[] = {"attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj"};
}  // namespace

std::vector<std::string> TttLoraOptions::parameter_names(int layers) const {
  std::vector<std::string> names;
  for (const std::string& matrix : matrices) {
    require(std::find(std::begin(kAdaptable), std::end(kAdaptable), matrix) != std::end(kAdaptable),
            "--ttt-lora-matrices: " + matrix + " is none of attn.c_q, attn.c_k, attn.c_v, attn.proj, mlp.fc, mlp.proj");
    for (int block = 0; block < layers; ++block) names.push_back("blocks." + std::to_string(block) + "." + matrix + ".weight");
  }
  return names;
}

void TttLoraOptions::validate(int layers, int seq_len) const {
  require(rank > 0, "--ttt-lora-rank must be positive");
  require(alpha > 0 && std::isfinite(alpha), "--ttt-lora-alpha must be positive");
  require(chunk_tokens > 0 && chunk_tokens <= seq_len, "--ttt-chunk " + std::to_string(chunk_tokens) +
                                                           " for --ttt lora: 1 to the sequence length " +
                                                           std::to_string(seq_len));
  require(lr > 0 && std::isfinite(lr), "--ttt-lr must be positive");
  require(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0, "--ttt-lora-betas: Adam's betas lie in [0, 1)");
  require(weight_decay >= 0 && lr * weight_decay < 1, "--ttt-lora-wd must be at least 0 and below 1 / lr");
  require(!matrices.empty(), "--ttt-lora-matrices: name at least one matrix");
  parameter_names(layers);
}

std::string TttLoraOptions::describe() const {
  std::string names;
  for (const std::string& m : matrices) names += (names.empty() ? "" : ";") + m;
  const std::string decay = weight_decay > 0 ? ", weight decay " + number_text(weight_decay) : "";
  char text[280];
  std::snprintf(text, sizeof text,
                "per-document LoRA rank %d (alpha %g) on %s, chunks of %lld targets, Adam%s lr %g betas (%g, %g)%s, reset per "
                "document", rank, alpha, names.c_str(), static_cast<long long>(chunk_tokens), decay.empty() ? "" : "W", lr,
                beta1, beta2, decay.c_str());
  return text;
}

std::vector<Matrix<float>> lora_first_draws(const TttLoraOptions& options, const std::vector<int64_t>& in_widths) {
  Random random(options.seed);
  std::vector<Matrix<float>> draws;
  for (const int64_t in : in_widths) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    Matrix<float> a(options.rank, in);
    for (auto& x : a.reshaped()) x = static_cast<float>(bound * (2.0 * random.uniform() - 1.0));
    draws.push_back(std::move(a));
  }
  return draws;
}

namespace {

class CpuLoraAdapters final : public LoraAdapters {
 public:
  CpuLoraAdapters(const TttLoraOptions& options, std::vector<LoraTarget> targets) : options_(options) {
    std::vector<int64_t> in_widths;
    for (const LoraTarget& t : targets) in_widths.push_back(t.weight->cols());
    std::vector<Matrix<float>> draws = lora_first_draws(options, in_widths);
    for (size_t i = 0; i < targets.size(); ++i)
      adapters_.push_back({targets[i], *targets[i].weight, std::move(draws[i]), {}, {}, {}, {}, {}, {}});
    reset();
  }

  void reset() override {
    for (Adapter& a : adapters_) {
      a.a = a.a_first;
      a.b = Matrix<float>::Zero(a.base.rows(), options_.rank);
      a.a_m = a.a_v = Matrix<float>::Zero(a.a.rows(), a.a.cols());
      a.b_m = a.b_v = Matrix<float>::Zero(a.b.rows(), a.b.cols());
      *a.target.weight = a.base;  // B = 0: the merged weight is the base
    }
    steps_ = 0;
  }

  void adam_step() override {
    ++steps_;
    const auto scale = static_cast<float>(options_.alpha / options_.rank);
    const double correction1 = 1 - std::pow(options_.beta1, steps_), correction2 = 1 - std::pow(options_.beta2, steps_);
    const auto b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
    // torch.optim.AdamW: p *= 1 - lr decay; m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    // p -= lr m^ / (sqrt(v^) + eps). (No decay: torch.optim.Adam.)
    auto update = [&](Matrix<float>& p, Matrix<float>& m, Matrix<float>& v, const Matrix<float>& g) {
      p *= static_cast<float>(1 - options_.lr * options_.weight_decay);
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g.cwiseAbs2();
      const auto step_size = static_cast<float>(options_.lr / correction1);
      const auto root_correction2 = static_cast<float>(std::sqrt(correction2));
      p.array() -= step_size * m.array() / (v.array().sqrt() / root_correction2 + static_cast<float>(options_.eps));
    };
    for (Adapter& a : adapters_) {
      const Matrix<float>& g = *a.target.gradient;  // of the merged weight
      const Matrix<float> g_b = scale * (g * a.a.transpose()), g_a = scale * (a.b.transpose() * g);
      update(a.b, a.b_m, a.b_v, g_b);
      update(a.a, a.a_m, a.a_v, g_a);
      *a.target.weight = a.base + scale * (a.b * a.a);
    }
  }

 private:
  struct Adapter {
    LoraTarget target;
    Matrix<float> base, a_first;  // W [out, in], A's first draw [r, in]
    Matrix<float> a, b, a_m, a_v, b_m, b_v;  // A [r, in], B [out, r], Adam's moments
  };
  TttLoraOptions options_;
  std::vector<Adapter> adapters_;
  int64_t steps_ = 0;  // Adam's t since the reset
};

}  // namespace

std::unique_ptr<LoraAdapters> make_cpu_lora_adapters(const TttLoraOptions& options, std::vector<LoraTarget> targets) {
  return std::make_unique<CpuLoraAdapters>(options, std::move(targets));
}

TttLora::TttLora(TttEngine& engine, const TttLoraOptions& options, int layers, int seq_len) : engine_(engine) {
  options.validate(layers, seq_len);
  adapters_ = engine_.lora_adapters(options, layers);
}

std::vector<double> TttLora::score(const DocumentChunk& chunk) {
  if (chunk.first_of_document) adapters_->reset();
  std::vector<double> losses = engine_.score_suffix(chunk.window, chunk.scored, !chunk.last_of_document);
  if (!chunk.last_of_document) adapters_->adam_step();  // after the chunk's losses are counted: score first
  return losses;
}

}  // namespace pgolf
