#include "trainer/optimizer.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.h"

namespace pgolf {

ParamGroup param_group(const std::string& name) {
  // BigramHash's table learns with the tied embedding, as in the records; its proj and scale with the scalars.
  if (name == "tok_emb.weight" || name == "bigram.embed.weight") return ParamGroup::Embedding;
  if (name.starts_with("blocks.") && name.ends_with(".weight")) return ParamGroup::Matrix;
  if (name.starts_with("mtp.")) return ParamGroup::Matrix;  // the multi-token heads: matrices, Muon's
  return ParamGroup::Scalar;
}

OptimizerState zero_optimizer_state(const ModelConfig& config) {
  return {zero_params<float>(config), zero_params<float>(config), zero_params<float>(config), {}, 0};
}

NewtonSchulzStep newton_schulz_step(NewtonSchulzCoefficients kind, int iteration) {
  // ../shared/reference/parameter-golf-records.md, R1's Muon.
  static constexpr NewtonSchulzStep kPolarExpress[] = {{8.156554524902461f, -22.48329292557795f, 15.878769915207462f},
                                                       {4.042929935166739f, -2.808917465908714f, 0.5000178451051316f},
                                                       {3.8916678022926607f, -2.772484153217685f, 0.5060648178503393f},
                                                       {3.285753657755655f, -2.3681294933425376f, 0.46449024233003106f},
                                                       {2.3465413258596377f, -1.7097828382687081f, 0.42323551169305323f}};
  if (kind == NewtonSchulzCoefficients::kStock) return {3.4445f, -4.7750f, 2.0315f};
  return kPolarExpress[std::min(iteration, 4)];
}

NewtonSchulzCoefficients parse_newton_schulz_coefficients(const std::string& name) {
  for (auto kind : {NewtonSchulzCoefficients::kStock, NewtonSchulzCoefficients::kPolarExpress})
    if (name == newton_schulz_coefficients_name(kind)) return kind;
  throw InputError("--ns-coefficients " + name + ": stock or polar-express");
}

std::string newton_schulz_coefficients_name(NewtonSchulzCoefficients kind) {
  return kind == NewtonSchulzCoefficients::kStock ? "stock" : "polar-express";
}

Matrix<float> newton_schulz(const Matrix<float>& g, int steps, NewtonSchulzCoefficients kind) {
  const bool transposed = g.rows() > g.cols();
  Matrix<float> x = transposed ? Matrix<float>(g.transpose()) : g;
  x /= x.norm() + 1e-7f;
  for (int i = 0; i < steps; ++i) {
    const NewtonSchulzStep k = newton_schulz_step(kind, i);
    const Matrix<float> a = x * x.transpose();
    const Matrix<float> b = k.b * a + k.c * a * a;
    x = k.a * x + b * x;
  }
  if (transposed) return x.transpose();
  return x;
}

double muon_momentum(const OptimizerSettings& s, int64_t step) {
  if (s.momentum_warmup_steps <= 0) return s.momentum;
  const double fraction = std::min(1.0, static_cast<double>(step) / s.momentum_warmup_steps);
  return (1 - fraction) * s.momentum_warmup_start + fraction * s.momentum;
}

double gradient_norm(ModelParams<float>& grad) {
  double sum = 0;
  for (auto& [name, g] : named_tensors(grad)) sum += g->cast<double>().squaredNorm();
  return std::sqrt(sum);
}

void clip_gradient(ModelParams<float>& grad, double max_norm) {
  const double coefficient = max_norm / (gradient_norm(grad) + 1e-6);
  if (coefficient < 1)
    for (auto& [name, g] : named_tensors(grad)) *g *= static_cast<float>(coefficient);
}

double ema_decay_at(const OptimizerSettings& s, int64_t steps) {
  if (!s.ema_warmup) return s.ema_decay;
  return std::min(s.ema_decay, (1.0 + static_cast<double>(steps)) / (10.0 + static_cast<double>(steps)));
}

void start_moving_average(const OptimizerSettings& s, const ModelParams<float>& params, OptimizerState& state) {
  if (s.ema_decay > 0 && state.ema.blocks.empty()) state.ema = params;
}

void optimizer_step(const OptimizerSettings& s, double lr_scale, int64_t step, ModelParams<float>& params,
                    ModelParams<float>& grad, OptimizerState& state) {
  if (s.grad_clip > 0) clip_gradient(grad, s.grad_clip);
  ++state.steps;
  const auto p = named_tensors(params), g = named_tensors(grad);
  const auto buf = named_tensors(state.momentum), m = named_tensors(state.adam_m), v = named_tensors(state.adam_v);
  const float momentum = static_cast<float>(muon_momentum(s, step));
  const double correction1 = 1 - std::pow(s.beta1, static_cast<double>(state.steps));
  const double correction2 = 1 - std::pow(s.beta2, static_cast<double>(state.steps));
  const float beta1 = static_cast<float>(s.beta1), beta2 = static_cast<float>(s.beta2);
  for (size_t i = 0; i < p.size(); ++i) {
    const ParamGroup group = param_group(p[i].first);
    Matrix<float>& w = *p[i].second;
    const Matrix<float>& grad_i = *g[i].second;
    if (group == ParamGroup::Matrix) {
      Matrix<float>& b = *buf[i].second;
      b = momentum * b + grad_i;
      Matrix<float> direction = grad_i + momentum * b;
      if (s.muon_row_normalize)  // MuonEq-R: rows / their rms (rms_norm's epsilon), as the CUDA kernel
        for (Eigen::Index r = 0; r < direction.rows(); ++r)
          direction.row(r) /= std::sqrt(direction.row(r).squaredNorm() / static_cast<float>(direction.cols()) + FLT_EPSILON);
      const Matrix<float> update = newton_schulz(direction, s.newton_schulz_steps, s.newton_schulz_coefficients);
      const double shape_scale = std::sqrt(std::max(1.0, static_cast<double>(w.rows()) / static_cast<double>(w.cols())));
      if (s.muon_weight_decay > 0) w *= static_cast<float>(1 - s.matrix_lr * lr_scale * s.muon_weight_decay);
      w -= static_cast<float>(s.matrix_lr * lr_scale * shape_scale) * update;
      continue;
    }
    const double lr = (group == ParamGroup::Embedding ? s.embed_lr : s.scalar_lr) * lr_scale;
    const double decay = group == ParamGroup::Embedding ? s.embed_weight_decay : s.scalar_weight_decay;
    if (decay > 0) w *= static_cast<float>(1 - lr * decay);
    Matrix<float>& m_i = *m[i].second;
    Matrix<float>& v_i = *v[i].second;
    m_i = beta1 * m_i + (1 - beta1) * grad_i;
    v_i = beta2 * v_i + (1 - beta2) * grad_i.cwiseProduct(grad_i);
    // torch's Adam: w -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps)
    const float step_size = static_cast<float>(lr / correction1);
    const float root_c2 = static_cast<float>(std::sqrt(correction2));
    w.array() -= step_size * m_i.array() / (v_i.array().sqrt() / root_c2 + static_cast<float>(s.eps));
  }
  if (s.ema_decay > 0 && !state.ema.blocks.empty()) {
    const auto decay = static_cast<float>(ema_decay_at(s, state.steps));
    const auto average = named_tensors(state.ema);
    for (size_t i = 0; i < p.size(); ++i) *average[i].second = decay * *average[i].second + (1 - decay) * *p[i].second;
  }
}

}  // namespace pgolf
