// The reference recipe's optimizers on the CPU, in float: Muon for the blocks' 2-D weight
// matrices, Adam for the tied embedding and for every scale, gain, mix and skip weight
// (the control tensors). This is the twin the CUDA optimizer kernels are held to.
//   Muon:  buf = momentum * buf + g;  u = g + momentum * buf (Nesterov);  (MuonEq-R: u's rows rms-normed)
//          u = newton_schulz(u) * sqrt(max(1, rows / cols));  w -= lr * u
//   Adam:  torch.optim.Adam (no weight decay) with bias correction.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "trainer/model_params.h"

namespace pgolf {

// Newton-Schulz's (a, b, c) per iteration: the stock quintic's (3.4445, -4.7750, 2.0315) each time, or
// the records' Polar Express schedule (R3 on: five tuned triples; later iterations repeat the last).
enum class NewtonSchulzCoefficients { kStock, kPolarExpress };
struct NewtonSchulzStep {
  float a, b, c;
};
NewtonSchulzStep newton_schulz_step(NewtonSchulzCoefficients kind, int iteration);
// "stock" or "polar-express" and back; InputError naming the choices otherwise.
NewtonSchulzCoefficients parse_newton_schulz_coefficients(const std::string& name);
std::string newton_schulz_coefficients_name(NewtonSchulzCoefficients kind);

struct OptimizerSettings {
  double matrix_lr = 0.04;
  double embed_lr = 0.05;
  double scalar_lr = 0.04;
  double momentum = 0.95;
  double momentum_warmup_start = 0.85;
  int momentum_warmup_steps = 500;
  int newton_schulz_steps = 5;
  NewtonSchulzCoefficients newton_schulz_coefficients = NewtonSchulzCoefficients::kStock;
  // MuonEq-R (the records, R1): each row of Muon's update divided by its rms before Newton-Schulz.
  bool muon_row_normalize = false;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 0;  // max global gradient norm; 0: no clipping
  // Muon's decoupled weight decay: each matrix is scaled by 1 - lr · decay (lr the matrix group's,
  // schedule included) before its update, as the records' Muon does; 0: none (the baseline).
  double muon_weight_decay = 0;
  // AdamW's decoupled weight decay of the embedding's and the scalars' groups: each tensor scaled by
  // 1 - lr · decay (the group's lr, schedule included) before its Adam update, as the records (R1:
  // 0.085 and 0.02). 0: Adam (the baseline).
  double embed_weight_decay = 0, scalar_weight_decay = 0;
  // The records' exponential moving average of the weights (0.9965): after every step ema = decay ·
  // ema + (1 − decay) · weights, from the weights where it starts (start_moving_average; training:
  // TrainSettings::ema_from); the checkpoint and the final validation are the average's. 0: none.
  double ema_decay = 0;
  // The average's decay warmed up as TensorFlow's num_updates does: min(ema_decay, (1 + n) / (10 + n))
  // after optimizer step n, so a run of a few hundred steps averages its last few dozen; a decay of
  // 0.9965 is reached at step 2,560, so a run of the records' 4,900 steps averages as without it.
  bool ema_warmup = false;
};

enum class ParamGroup { Matrix, Embedding, Scalar };
// Muon takes blocks.N.*.weight; tok_emb.weight is the embedding; the rest are scalars.
ParamGroup param_group(const std::string& name);

// Optimizer state, tensor for tensor as the parameters: Muon's momentum buffer for the matrices,
// Adam's first and second moments for the others (zero where a group does not use them).
struct OptimizerState {
  ModelParams<float> momentum, adam_m, adam_v;
  ModelParams<float> ema;  // the weights' moving average (OptimizerSettings::ema_decay); empty before it starts
  int64_t steps = 0;  // optimizer steps taken (Adam's bias correction)
};
OptimizerState zero_optimizer_state(const ModelConfig& config);

// Every tensor of p (ModelParams<T>, const or not) with its name, in for_each_parameter's order.
template <typename Params>
auto named_tensors(Params& p) {
  using Tensor = std::remove_reference_t<decltype((p.tok_emb))>;  // const with Params
  std::vector<std::pair<std::string, Tensor*>> tensors;
  for_each_parameter(p, [&](const std::string& name, Tensor& m, const std::vector<int64_t>&) {
    tensors.emplace_back(name, &m);
  });
  return tensors;
}

// The orthogonalisation Muon applies: X = G / (|G|_F + 1e-7), transposed when rows > cols, then
// `steps` iterations of A = X X^T, X = a X + (b A + c A^2) X with iteration i's (a, b, c)
// (newton_schulz_step). Singular values land near 1 (stock: about 0.7 to 1.2), not exactly on it.
Matrix<float> newton_schulz(const Matrix<float>& g, int steps,
                            NewtonSchulzCoefficients kind = NewtonSchulzCoefficients::kStock);

// Muon's momentum at step (0-based): warmed linearly from momentum_warmup_start.
double muon_momentum(const OptimizerSettings& s, int64_t step);

// sqrt(sum of squares) of every gradient, in double.
double gradient_norm(ModelParams<float>& grad);
// torch.nn.utils.clip_grad_norm_: scales grad in place to a global norm of at most max_norm.
void clip_gradient(ModelParams<float>& grad, double max_norm);

// The moving average's decay after optimizer step `steps` (counted from 1): ema_decay, warmed up
// where ema_warmup is set.
double ema_decay_at(const OptimizerSettings& s, int64_t steps);

// Starts the moving average at params, where s.ema_decay is set and it has not started.
void start_moving_average(const OptimizerSettings& s, const ModelParams<float>& params, OptimizerState& state);

// One step of every parameter: clips grad when grad_clip is set (grad is scaled in place), then
// Muon and Adam with their learning rates times lr_scale (the warmdown), Muon's momentum at `step`;
// then the moving average, where ema_decay is set and it has started.
void optimizer_step(const OptimizerSettings& s, double lr_scale, int64_t step, ModelParams<float>& params,
                    ModelParams<float>& grad, OptimizerState& state);

}  // namespace pgolf
