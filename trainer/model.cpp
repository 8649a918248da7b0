#include "trainer/model.h"

#include <cmath>
#include <numeric>
#include <functional>
#include <thread>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rope_table.h"

namespace pgolf {

namespace {

template <typename T>
using Column = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// F.rms_norm's default eps for fp32 inputs (FLT_EPSILON); the double path uses it too, so both
// precisions compute the same function.
constexpr double kRmsNormEps = 1.1920928955078125e-07;

// y = x / sqrt(mean(x^2) + eps) over each group of `width` consecutive columns (the whole row,
// or one attention head); inv_rms [rows, groups] keeps 1/sqrt(...) for the backward.
template <typename T>
void rms_norm(const Matrix<T>& x, int width, Matrix<T>& y, Matrix<T>& inv_rms) {
  const Eigen::Index groups = x.cols() / width;
  y.resize(x.rows(), x.cols());
  inv_rms.resize(x.rows(), groups);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (Eigen::Index g = 0; g < groups; ++g) {
      auto in = x.row(t).segment(g * width, width);
      T r = T(1) / std::sqrt(in.squaredNorm() / T(width) + T(kRmsNormEps));
      inv_rms(t, g) = r;
      y.row(t).segment(g * width, width) = in * r;
    }
  }
}

// The gradient through rms_norm, from its output y: dx = inv_rms * (dy - y * mean(dy * y)).
template <typename T>
Matrix<T> rms_norm_backward(const Matrix<T>& y, const Matrix<T>& inv_rms, const Matrix<T>& dy, int width) {
  Matrix<T> dx(y.rows(), y.cols());
  for (Eigen::Index t = 0; t < y.rows(); ++t) {
    for (Eigen::Index g = 0; g < inv_rms.cols(); ++g) {
      auto y_g = y.row(t).segment(g * width, width);
      auto dy_g = dy.row(t).segment(g * width, width);
      T mean_dot = dy_g.dot(y_g) / T(width);
      dx.row(t).segment(g * width, width) = inv_rms(t, g) * (dy_g - mean_dot * y_g);
    }
  }
  return dx;
}

// max(x, 0) + slope · min(x, 0) elementwise: LeakyReLU, exactly ReLU at slope 0 (the MLP's
// activation is its square; the square's derivative is 2 · leaky(x, slope²)).
template <typename T>
Matrix<T> leaky(const Matrix<T>& x, T slope) {
  return (x.array().max(T(0)) + slope * x.array().min(T(0))).matrix();
}

// x[t, j] * v[j] for every row t (a per-channel scale).
template <typename T>
Matrix<T> scale_columns(const Matrix<T>& x, const auto& v) {
  return (x.array().rowwise() * v.array()).matrix();
}

// sum over rows of a[t, j] * b[t, j]: the gradient of a per-channel scale.
template <typename T>
auto column_dot(const Matrix<T>& a, const Matrix<T>& b) {
  return (a.array() * b.array()).colwise().sum().matrix();
}

// SmearGate v1: y_t = (1 − σ(g)) x_t + σ(g) x_{t−1} per channel, x_{−1} = 0.
template <typename T>
Matrix<T> smear(const Matrix<T>& x, const Matrix<T>& gate) {
  const Matrix<T> mix = (T(1) / (T(1) + (-gate.array()).exp())).matrix();  // σ(g) [1, C]
  Matrix<T> y = scale_columns(x, (T(1) - mix.array()).matrix().row(0));
  y.bottomRows(x.rows() - 1) += scale_columns<T>(x.topRows(x.rows() - 1), mix.row(0));
  return y;
}

// Its backward from dy: adds to d_gate Σ_t dy_t (x_{t−1} − x_t) σ'(g); returns dx.
template <typename T>
Matrix<T> smear_backward(const Matrix<T>& x, const Matrix<T>& gate, const Matrix<T>& dy, Matrix<T>& d_gate) {
  const Matrix<T> mix = (T(1) / (T(1) + (-gate.array()).exp())).matrix();
  const Eigen::Index n = x.rows();
  Matrix<T> previous_minus_x = -x;
  previous_minus_x.bottomRows(n - 1) += x.topRows(n - 1);
  d_gate += (column_dot(dy, previous_minus_x).array() * mix.array() * (T(1) - mix.array())).matrix();
  Matrix<T> dx = scale_columns(dy, (T(1) - mix.array()).matrix().row(0));
  dx.topRows(n - 1) += scale_columns<T>(dy.bottomRows(n - 1), mix.row(0));
  return dx;
}

// SmearGate v2 (model_params.h): y_t = x_t + λ σ(w · x_t[0 : kSmearWindow]) x_{t−1} where mask_t
// (0 at position 0 and, masked, at BOS).
std::vector<bool> smear_mask(const ModelConfig& c, std::span<const uint16_t> inputs) {
  std::vector<bool> mask(inputs.size());
  for (size_t t = 1; t < inputs.size(); ++t) mask[t] = inputs[t] != c.smear_mask_token();
  return mask;
}

template <typename T>
T smear_v2_gate(const Matrix<T>& x, Eigen::Index t, const Matrix<T>& w) {
  const T z = x.row(t).head(kSmearWindow).dot(w.row(0));
  return T(1) / (T(1) + std::exp(-z));
}

template <typename T>
Matrix<T> smear_v2(const Matrix<T>& x, const Matrix<T>& w, T lambda, const std::vector<bool>& mask) {
  Matrix<T> y = x;
  for (Eigen::Index t = 1; t < x.rows(); ++t)
    if (mask[t]) y.row(t) += (lambda * smear_v2_gate(x, t, w)) * x.row(t - 1);
  return y;
}

// Its backward from dy: adds to d_w and d_lambda; returns dx.
template <typename T>
Matrix<T> smear_v2_backward(const Matrix<T>& x, const Matrix<T>& w, T lambda, const std::vector<bool>& mask,
                            const Matrix<T>& dy, Matrix<T>& d_w, T& d_lambda) {
  Matrix<T> dx = dy;
  for (Eigen::Index t = 1; t < x.rows(); ++t) {
    if (!mask[t]) continue;
    const T gate = smear_v2_gate(x, t, w), seen = dy.row(t).dot(x.row(t - 1));
    d_lambda += gate * seen;
    dx.row(t - 1) += (lambda * gate) * dy.row(t);
    const T d_z = lambda * seen * gate * (T(1) - gate);
    d_w.row(0) += d_z * x.row(t).head(kSmearWindow);
    dx.row(t).head(kSmearWindow) += d_z * w.row(0);
  }
  return dx;
}

// softcap * tanh(x tok_emb^T / softcap): the tied head's logits, capped.
template <typename T>
Matrix<T> capped_logits(const ModelConfig& c, const Matrix<T>& x, const Matrix<T>& tok_emb) {
  return softcapped<T>(x * tok_emb.transpose(), c.logit_softcap);
}

// RoPE's cos and sin [positions, R/2] over the R = rotated_dims() dims it turns: core/rope_table.h's
// floats, the same the CUDA kernels read.
template <typename T>
struct Rope {
  Matrix<T> cos, sin;
};

template <typename T>
Rope<T> make_rope(Eigen::Index positions, const ModelConfig& c) {
  const RopeTable table = rope_table(static_cast<int>(positions), c.head_dim(), c.rotated_dims(), c.rope_base, c.rope_rounding);
  const Eigen::Index width = c.head_dim() / 2, half = c.rotated_dims() / 2;
  Rope<T> rope{Matrix<T>(positions, half), Matrix<T>(positions, half)};
  for (Eigen::Index t = 0; t < positions; ++t)
    for (Eigen::Index j = 0; j < half; ++j) {
      rope.cos(t, j) = static_cast<T>(table.cos[static_cast<size_t>(t * width + j)]);
      rope.sin(t, j) = static_cast<T>(table.sin[static_cast<size_t>(t * width + j)]);
    }
  return rope;
}

// Rotates every head of x [positions, heads * head_dim] in place: with x1, x2 the two halves of
// the head's first R dims (R = 2 * rope.cos.cols()), (x1, x2) -> (x1 cos + x2 sin, x2 cos - x1 sin);
// the dims after R stay. direction -1 applies the inverse (transposed) rotation, which carries
// gradients back through RoPE.
template <typename T>
void rotate(Matrix<T>& x, int head_dim, const Rope<T>& rope, int direction) {
  const auto half = rope.cos.cols();
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (Eigen::Index start = 0; start < x.cols(); start += head_dim) {
      for (Eigen::Index j = 0; j < half; ++j) {
        T c = rope.cos(t, j), s = direction * rope.sin(t, j);
        T x1 = x(t, start + j), x2 = x(t, start + half + j);
        x(t, start + j) = x1 * c + x2 * s;
        x(t, start + half + j) = x2 * c - x1 * s;
      }
    }
  }
}

// Attention is computed in blocks of this many query rows, each against only the keys it can
// see (0 .. its last row): about half the work of the full [T, T] product.
constexpr Eigen::Index kQueryBlock = 128;

// Causal attention weights of one head into weights [T, T]: row t is the softmax over keys
// 0..t of scale * q_t . k_j, and 0 for the keys after t.
template <typename T>
void causal_attention_weights(const Matrix<T>& q, const auto& k, T scale, Matrix<T>& weights) {
  const Eigen::Index n = q.rows();
  weights.resize(n, n);
  for (Eigen::Index first = 0; first < n; first += kQueryBlock) {
    const Eigen::Index rows = std::min(kQueryBlock, n - first), seen = first + rows;
    weights.block(first, 0, rows, seen).noalias() = scale * (q.middleRows(first, rows) * k.topRows(seen).transpose());
  }
  for (Eigen::Index t = 0; t < n; ++t) {
    auto row = weights.row(t).head(t + 1);
    row = (row.array() - row.maxCoeff()).exp().matrix();
    row /= row.sum();
    weights.row(t).tail(n - t - 1).setZero();
  }
}

// What one block keeps from its forward for the backward.
template <typename T>
struct BlockActivations {
  Matrix<T> input;                            // x entering the block (after any skip)
  Matrix<T> mixed;                            // resid_mix[0] * input + resid_mix[1] * x0
  Matrix<T> attn_in, attn_in_inv_rms;         // rms_norm(mixed)
  Matrix<T> q_normed, q_inv_rms;              // per-head rms_norm of the q projection
  Matrix<T> k_normed, k_inv_rms;              // per-head rms_norm of the k projection
  Matrix<T> q_rotated, k_rotated, v;          // q and k after RoPE (q before q_gain)
  Matrix<T> heads_out;                        // every head's attention output [T, H*D]
  Matrix<T> xsa_out;                          // heads_out through XSA, in the blocks that have it
  Matrix<T> attn_out;                         // attn.proj(xsa_out or heads_out)
  Matrix<T> after_attn;                       // mixed + attn_scale * attn_out (serial blocks)
  Matrix<T> mlp_in, mlp_in_inv_rms;           // rms_norm(after_attn), or of lane 1 in a parallel block
  Matrix<T> fc_out;                           // mlp.fc(mlp_in)
  Matrix<T> hidden;                           // leaky_relu(fc_out)^2 (relu^2 at slope 0)
  Matrix<T> mlp_out;                          // mlp.proj(hidden)
  Matrix<T> output;                           // after_attn + mlp_scale * mlp_out, or lane 0's
  Matrix<T> input1, output1;                  // lane 1 entering and leaving a parallel block
};

template <typename T>
struct Activations {
  Rope<T> rope;
  std::vector<uint16_t> buckets;              // BigramHash: each position's bucket
  Matrix<T> bigram_rows, bigram_out;          // bigram_embed[buckets], its projection
  Matrix<T> sum;                              // tok_emb[inputs] + bigram_scale * bigram_out
  std::vector<bool> smear_mask;               // SmearGate v2's, per position
  Matrix<T> embedded, embedded_inv_rms;       // rms_norm(sum), through SmearGate v2 where there is one
  Matrix<T> x0;                               // embedded, through the SmearGate where there is one
  std::vector<BlockActivations<T>> blocks;    // every block's, or only the last one's
  std::vector<Matrix<T>> encoder_outputs;     // the skips
  Matrix<T> final_normed, final_inv_rms;      // rms_norm(last block's output)
  Matrix<T> logits;                           // softcapped [T, V]
};

// GQA: query head h reads KV head h / (heads / kv_heads).
int kv_head(const ModelConfig& c, int h) { return h / (c.heads / c.kv_heads); }

// The attention weights of query head h (the backward recomputes them rather than storing them).
template <typename T>
void attention_weights(const ModelConfig& c, const BlockParams<T>& p, const BlockActivations<T>& a, int h,
                       Matrix<T>& weights) {
  const int d = c.head_dim();
  const int kv = kv_head(c, h);
  const Matrix<T> q = a.q_rotated.middleCols(h * d, d) * p.q_gain(0, h);
  causal_attention_weights(q, a.k_rotated.middleCols(kv * d, d), T(1) / std::sqrt(T(d)), weights);
}

// XSA: each head's output y minus its projection on the unit value vector u = v / |v| of its KV
// group at the same position (|v| at least 1e-12, as F.normalize).
constexpr double kXsaEps = 1e-12;

template <typename T>
Matrix<T> xsa(const ModelConfig& c, const Matrix<T>& heads_out, const Matrix<T>& v) {
  const int d = c.head_dim();
  Matrix<T> out = heads_out;
  for (Eigen::Index t = 0; t < v.rows(); ++t)
    for (int h = 0; h < c.heads; ++h) {
      const auto v_h = v.row(t).segment(kv_head(c, h) * d, d);
      const auto u = (v_h / std::max(v_h.norm(), T(kXsaEps))).eval();
      auto y = out.row(t).segment(h * d, d);
      y -= y.dot(u) * u;
    }
  return out;
}

// Its backward from d_out: returns d(heads_out) and adds to d_v.
template <typename T>
Matrix<T> xsa_backward(const ModelConfig& c, const Matrix<T>& heads_out, const Matrix<T>& v, const Matrix<T>& d_out,
                       Matrix<T>& d_v) {
  const int d = c.head_dim();
  Matrix<T> d_in = d_out;
  for (Eigen::Index t = 0; t < v.rows(); ++t)
    for (int h = 0; h < c.heads; ++h) {
      const int kv = kv_head(c, h);
      const auto v_h = v.row(t).segment(kv * d, d);
      const T norm = v_h.norm(), divisor = std::max(norm, T(kXsaEps));
      const auto u = (v_h / divisor).eval();
      const auto y = heads_out.row(t).segment(h * d, d);
      const auto dy = d_out.row(t).segment(h * d, d);
      const T y_u = y.dot(u), dy_u = dy.dot(u);
      d_in.row(t).segment(h * d, d) -= dy_u * u;  // y' = y - (y.u) u: the projection is symmetric
      const auto d_u = (-(y_u * dy) - dy_u * y).eval();
      // u = v / max(|v|, eps): through the norm where it is |v|
      if (norm > T(kXsaEps))
        d_v.row(t).segment(kv * d, d) += (d_u - d_u.dot(u) * u) / divisor;
      else
        d_v.row(t).segment(kv * d, d) += d_u / divisor;
    }
  return d_in;
}

// Hands a forward's matrix inputs to an InputObserver, when there is one, with the forward's thread.
template <typename T>
struct Observer {
  const InputObserver<T>* observe = nullptr;
  int thread = 0;
  void operator()(int block, MatrixInput input, const Matrix<T>& rows) const {
    if (observe) (*observe)(thread, block, input, rows);
  }
};

// Fills everything in a from a.input; block is its index, for the observer.
template <typename T>
void block_forward(const ModelConfig& c, const BlockParams<T>& p, const Rope<T>& rope, const Matrix<T>& x0,
                   BlockActivations<T>& a, int block, const Observer<T>& observe) {
  const int d = c.head_dim();
  a.mixed = scale_columns(a.input, p.resid_mix.row(0)) + scale_columns(x0, p.resid_mix.row(1));
  rms_norm(a.mixed, c.dim, a.attn_in, a.attn_in_inv_rms);
  observe(block, MatrixInput::kAttention, a.attn_in);
  rms_norm<T>(a.attn_in * p.c_q.transpose(), d, a.q_normed, a.q_inv_rms);
  rms_norm<T>(a.attn_in * p.c_k.transpose(), d, a.k_normed, a.k_inv_rms);
  a.v.noalias() = a.attn_in * p.c_v.transpose();
  a.q_rotated = a.q_normed;
  rotate(a.q_rotated, d, rope, +1);
  a.k_rotated = a.k_normed;
  rotate(a.k_rotated, d, rope, +1);
  const Eigen::Index n = a.input.rows();
  a.heads_out.resize(n, c.heads * d);
  Matrix<T> weights;
  for (int h = 0; h < c.heads; ++h) {
    const int kv = kv_head(c, h);
    attention_weights(c, p, a, h, weights);
    for (Eigen::Index first = 0; first < n; first += kQueryBlock) {  // only the keys each block sees
      const Eigen::Index rows = std::min(kQueryBlock, n - first), seen = first + rows;
      a.heads_out.block(first, h * d, rows, d).noalias() =
          weights.block(first, 0, rows, seen) * a.v.block(0, kv * d, seen, d);
    }
  }
  if (c.xsa_on(block)) a.xsa_out = xsa(c, a.heads_out, a.v);
  const Matrix<T>& proj_in = c.xsa_on(block) ? a.xsa_out : a.heads_out;
  observe(block, MatrixInput::kAttentionOutput, proj_in);
  a.attn_out.noalias() = proj_in * p.attn_proj.transpose();
  const bool parallel = c.parallel_on(block);
  if (!parallel) a.after_attn = a.mixed + scale_columns(a.attn_out, p.attn_scale.row(0));
  rms_norm(parallel ? a.input1 : a.after_attn, c.dim, a.mlp_in, a.mlp_in_inv_rms);
  observe(block, MatrixInput::kMlp, a.mlp_in);
  a.fc_out.noalias() = a.mlp_in * p.mlp_fc.transpose();
  a.hidden = leaky(a.fc_out, static_cast<T>(c.mlp_negative_slope)).array().square().matrix();
  observe(block, MatrixInput::kMlpHidden, a.hidden);
  a.mlp_out.noalias() = a.hidden * p.mlp_proj.transpose();
  if (!parallel) {
    a.output = a.after_attn + scale_columns(a.mlp_out, p.mlp_scale.row(0));
    return;
  }
  const Matrix<T> attn = scale_columns(a.attn_out, p.attn_scale.row(0)), mlp = scale_columns(a.mlp_out, p.mlp_scale.row(0));
  const Matrix<T>& l = p.lanes;  // rows r, p_attn, p_mlp; column k is lane k's
  a.output = l(0, 0) * a.input + l(1, 0) * attn + l(2, 0) * mlp;
  a.output1 = l(0, 1) * a.input1 + l(1, 1) * attn + l(2, 1) * mlp;
}

// d_x holds the gradient of the block's output and leaves with that of its input (in a parallel
// block, d_x1 those of lane 1's); adds to the block's parameter gradients g and to d_x0.
template <typename T>
void block_backward(const ModelConfig& c, const BlockParams<T>& p, const Rope<T>& rope, const Matrix<T>& x0,
                    const BlockActivations<T>& a, int block, Matrix<T>& d_x, Matrix<T>& d_x1, Matrix<T>& d_x0,
                    BlockParams<T>& g) {
  const int d = c.head_dim();
  const T scale = T(1) / std::sqrt(T(d));
  const bool parallel = c.parallel_on(block);
  // The gradients of M = mlp_scale * mlp_out and A = attn_scale * attn_out: serial, output =
  // after_attn + M with after_attn = mixed + A; parallel, lane k = r_k lane_k + p_attn,k A + p_mlp,k M.
  Matrix<T> d_mlp = d_x, d_attn;
  if (parallel) {
    const Matrix<T>& l = p.lanes;
    const Matrix<T> attn = scale_columns(a.attn_out, p.attn_scale.row(0)), mlp = scale_columns(a.mlp_out, p.mlp_scale.row(0));
    g.lanes(0, 0) += (d_x.array() * a.input.array()).sum();
    g.lanes(0, 1) += (d_x1.array() * a.input1.array()).sum();
    g.lanes(1, 0) += (d_x.array() * attn.array()).sum();
    g.lanes(1, 1) += (d_x1.array() * attn.array()).sum();
    g.lanes(2, 0) += (d_x.array() * mlp.array()).sum();
    g.lanes(2, 1) += (d_x1.array() * mlp.array()).sum();
    d_mlp = l(2, 0) * d_x + l(2, 1) * d_x1;
    d_attn = l(1, 0) * d_x + l(1, 1) * d_x1;
    d_x *= l(0, 0);
    d_x1 *= l(0, 1);
  }

  // M = mlp_scale * mlp_proj(leaky_relu(mlp_fc(rms_norm(after_attn or lane 1)))^2)
  g.mlp_scale += column_dot(d_mlp, a.mlp_out);
  Matrix<T> d_mlp_out = scale_columns(d_mlp, p.mlp_scale.row(0));
  g.mlp_proj.noalias() += d_mlp_out.transpose() * a.hidden;
  Matrix<T> d_hidden = d_mlp_out * p.mlp_proj;
  const T slope = static_cast<T>(c.mlp_negative_slope);
  Matrix<T> d_fc_out = (d_hidden.array() * T(2) * leaky(a.fc_out, slope * slope).array()).matrix();
  g.mlp_fc.noalias() += d_fc_out.transpose() * a.mlp_in;
  const Matrix<T> d_mlp_source = rms_norm_backward<T>(a.mlp_in, a.mlp_in_inv_rms, d_fc_out * p.mlp_fc, c.dim);
  if (parallel) {
    d_x1 += d_mlp_source;
  } else {
    d_attn = d_x + d_mlp_source;  // d(after_attn)
  }

  // A = attn_scale * attn.proj(heads_out)
  g.attn_scale += column_dot(d_attn, a.attn_out);
  Matrix<T> d_attn_out = scale_columns(d_attn, p.attn_scale.row(0));
  const bool has_xsa = c.xsa_on(block);
  g.attn_proj.noalias() += d_attn_out.transpose() * (has_xsa ? a.xsa_out : a.heads_out);
  Matrix<T> d_heads_out = d_attn_out * p.attn_proj;
  Matrix<T> d_v = Matrix<T>::Zero(a.v.rows(), a.v.cols());
  if (has_xsa) d_heads_out = xsa_backward(c, a.heads_out, a.v, d_heads_out, d_v);

  // heads_out[h] = softmax(scale * q_gain[h] * q[h] k[kv]^T) v[kv], for each query head h
  Matrix<T> d_q_rotated(a.q_rotated.rows(), a.q_rotated.cols());
  Matrix<T> d_k_rotated = Matrix<T>::Zero(a.k_rotated.rows(), a.k_rotated.cols());
  Matrix<T> weights;
  for (int h = 0; h < c.heads; ++h) {
    const int kv = kv_head(c, h);
    const T gain = p.q_gain(0, h);
    auto q = a.q_rotated.middleCols(h * d, d);
    auto k = a.k_rotated.middleCols(kv * d, d);
    auto d_o = d_heads_out.middleCols(h * d, d);
    attention_weights(c, p, a, h, weights);
    d_v.middleCols(kv * d, d).noalias() += weights.transpose() * d_o;
    Matrix<T> d_weights = d_o * a.v.middleCols(kv * d, d).transpose();
    // softmax backward: d_scores = w * (d_w - sum_j d_w w); masked weights are 0, so are their gradients
    Column<T> row_dot = (d_weights.array() * weights.array()).rowwise().sum();
    Matrix<T> d_scores = (weights.array() * (d_weights.colwise() - row_dot).array()).matrix() * scale;
    Matrix<T> d_gained_q = d_scores * k;  // gradient of q_gain[h] * q[h]
    g.q_gain(0, h) += (d_gained_q.array() * q.array()).sum();
    d_q_rotated.middleCols(h * d, d) = d_gained_q * gain;
    d_k_rotated.middleCols(kv * d, d).noalias() += d_scores.transpose() * (q * gain);
  }
  rotate(d_q_rotated, d, rope, -1);
  rotate(d_k_rotated, d, rope, -1);
  Matrix<T> d_q = rms_norm_backward(a.q_normed, a.q_inv_rms, d_q_rotated, d);
  Matrix<T> d_k = rms_norm_backward(a.k_normed, a.k_inv_rms, d_k_rotated, d);
  g.c_q.noalias() += d_q.transpose() * a.attn_in;
  g.c_k.noalias() += d_k.transpose() * a.attn_in;
  g.c_v.noalias() += d_v.transpose() * a.attn_in;
  Matrix<T> d_attn_in = d_q * p.c_q + d_k * p.c_k + d_v * p.c_v;
  // serial: mixed also feeds after_attn; parallel: lane 0 itself is the residual (d_x, scaled above)
  Matrix<T> d_mixed = rms_norm_backward(a.attn_in, a.attn_in_inv_rms, d_attn_in, c.dim);
  if (!parallel) d_mixed += d_attn;

  // mixed = resid_mix[0] * input + resid_mix[1] * x0
  g.resid_mix.row(0) += column_dot(d_mixed, a.input);
  g.resid_mix.row(1) += column_dot(d_mixed, x0);
  d_x0 += scale_columns(d_mixed, p.resid_mix.row(1));
  if (parallel) {
    d_x += scale_columns(d_mixed, p.resid_mix.row(0));
  } else {
    d_x = scale_columns(d_mixed, p.resid_mix.row(0));
  }
}

// keep_blocks: keep every block's activations for the backward; otherwise only the skips.
template <typename T>
void forward(const ModelConfig& c, const ModelParams<T>& p, std::span<const uint16_t> inputs, bool keep_blocks,
             Activations<T>& a, const Observer<T>& observe = {}) {
  const auto n = static_cast<Eigen::Index>(inputs.size());
  const std::vector<int> order = c.block_order();
  const int encoders = c.encoder_layers(), skips = c.skips_now();
  Matrix<T>& sum = a.sum;
  sum.resize(n, c.dim);
  for (Eigen::Index t = 0; t < n; ++t) sum.row(t) = p.tok_emb.row(inputs[t]);
  if (c.bigram_buckets > 0) {
    a.buckets = bigram_buckets_of(inputs, c.bigram_buckets);
    a.bigram_rows.resize(n, c.bigram_dim);
    for (Eigen::Index t = 0; t < n; ++t) a.bigram_rows.row(t) = p.bigram_embed.row(a.buckets[t]);
    a.bigram_out.noalias() = a.bigram_rows * p.bigram_proj.transpose();
    sum += p.bigram_scale(0, 0) * a.bigram_out;
  }
  if (c.smear_v2()) {
    a.smear_mask = smear_mask(c, inputs);
    rms_norm<T>(smear_v2(sum, p.smear_gate, p.smear_lambda(0, 0), a.smear_mask), c.dim, a.embedded, a.embedded_inv_rms);
  } else {
    rms_norm(sum, c.dim, a.embedded, a.embedded_inv_rms);
  }
  a.x0 = c.smear_v1() ? smear(a.embedded, p.smear_gate) : a.embedded;
  a.rope = make_rope<T>(n, c);
  a.blocks.resize(keep_blocks ? order.size() : 1);
  a.encoder_outputs.resize(encoders);

  Matrix<T> x = a.x0, x1;  // x1: lane 1, from the first parallel block on
  for (int i = 0; i < static_cast<int>(order.size()); ++i) {  // virtual layer i runs block order[i]
    const int decoder = i - encoders;  // this layer's index among the decoder layers, if >= 0
    if (decoder >= 0 && decoder < skips) {
      const Matrix<T> skip = scale_columns(a.encoder_outputs[encoders - 1 - decoder], p.skip_weights.row(decoder));
      x += skip;
      if (x1.size() > 0) x1 += skip;
    }
    if (c.parallel_on(order[i]) && x1.size() == 0) x1 = x;  // the lanes split
    BlockActivations<T>& block = a.blocks[keep_blocks ? i : 0];
    block.input = std::move(x);
    block.input1 = std::move(x1);
    x1.resize(0, 0);  // (Eigen's move swaps: x1 could hold a reused block's old lane)
    block_forward(c, p.blocks[order[i]], a.rope, a.x0, block, order[i], observe);
    x = block.output;
    if (c.parallel_on(order[i])) x1 = block.output1;
    if (i < encoders) a.encoder_outputs[i] = x;
  }
  if (x1.size() > 0) x = T(0.5) * (x + x1);  // the lanes' mean
  rms_norm(x, c.dim, a.final_normed, a.final_inv_rms);
  observe(-1, MatrixInput::kHead, a.final_normed);
  a.logits = capped_logits(c, a.final_normed, p.tok_emb);
}

// Softmax of one row of logits, in double.
Column<double> softmax(const auto& logits) {
  Column<double> z = logits.transpose().template cast<double>();
  Column<double> e = (z.array() - z.maxCoeff()).exp().matrix();
  return e / e.sum();
}

// -log softmax(logits)[target], in double.
double cross_entropy(const auto& logits, uint16_t target) {
  Column<double> z = logits.transpose().template cast<double>();
  double max = z.maxCoeff();
  return std::log((z.array() - max).exp().sum()) + max - z(target);
}

// The gradient of weight * (sum over rows t of -log softmax(capped[t])[targets[t]]) with respect to
// the logits before the cap: (softmax - onehot) * weight * (1 - tanh^2).
template <typename T>
Matrix<T> capped_logits_gradient(const ModelConfig& c, const Matrix<T>& capped, std::span<const uint16_t> targets,
                                 double weight) {
  const T cap = static_cast<T>(c.logit_softcap);
  Matrix<T> d(capped.rows(), capped.cols());
  for (Eigen::Index t = 0; t < capped.rows(); ++t) {
    Column<double> s = softmax(capped.row(t));
    s(targets[t]) -= 1.0;
    d.row(t) = (s * weight).template cast<T>().transpose();
  }
  return (d.array() * (T(1) - (capped.array() / cap).square())).matrix();
}

// Multi-token head i: z = final_normed W_i^T on the positions t whose target t + 2 + i is in the
// window (the first n - 1 - i), and its capped logits.
template <typename T>
struct MtpHead {
  Matrix<T> z, logits;
};
template <typename T>
MtpHead<T> mtp_head(const ModelConfig& c, const ModelParams<T>& p, const Activations<T>& a, int i) {
  const Eigen::Index positions = std::max<Eigen::Index>(a.final_normed.rows() - 1 - i, 0);
  MtpHead<T> head;
  head.z = a.final_normed.topRows(positions) * p.mtp[static_cast<size_t>(i)].transpose();
  head.logits = capped_logits(c, head.z, p.tok_emb);
  return head;
}

// The multi-token heads' cross-entropies summed over their positions (targets: the window's main
// targets, target t + 1 of position t), unweighted.
template <typename T>
double mtp_loss_sum(const ModelConfig& c, const ModelParams<T>& p, const Activations<T>& a,
                    std::span<const uint16_t> targets) {
  double sum = 0;
  for (int i = 0; i < c.mtp_heads; ++i) {
    const MtpHead<T> head = mtp_head(c, p, a, i);
    for (Eigen::Index t = 0; t < head.logits.rows(); ++t) sum += cross_entropy(head.logits.row(t), targets[t + 1 + i]);
  }
  return sum;
}

// From a forward that kept every block: adds to g the gradient of loss_weight * (sum of the
// window's cross-entropies).
template <typename T>
void backward(const ModelConfig& c, const ModelParams<T>& p, std::span<const uint16_t> inputs,
              std::span<const uint16_t> targets, const Activations<T>& a, double loss_weight, ModelParams<T>& g,
              Eigen::Index first_scored = 0) {
  const auto n = static_cast<Eigen::Index>(inputs.size());
  const std::vector<int> order = c.block_order();
  const int encoders = c.encoder_layers(), skips = c.skips_now();
  Matrix<T> d_logits = capped_logits_gradient(c, a.logits, targets, loss_weight);
  d_logits.topRows(first_scored).setZero();  // targets outside the loss
  g.tok_emb.noalias() += d_logits.transpose() * a.final_normed;
  Matrix<T> d_final = d_logits * p.tok_emb;
  for (int i = 0; i < c.mtp_heads; ++i) {  // logits_i = cap(z_i tok_emb^T), z_i = final_normed W_i^T
    const MtpHead<T> head = mtp_head(c, p, a, i);
    const Eigen::Index m = head.z.rows();
    const Matrix<T> d = capped_logits_gradient(c, head.logits, targets.subspan(1 + i), loss_weight * c.mtp_weight);
    g.tok_emb.noalias() += d.transpose() * head.z;
    const Matrix<T> d_z = d * p.tok_emb;
    g.mtp[static_cast<size_t>(i)].noalias() += d_z.transpose() * a.final_normed.topRows(m);
    d_final.topRows(m).noalias() += d_z * p.mtp[static_cast<size_t>(i)];
  }
  Matrix<T> d_x = rms_norm_backward<T>(a.final_normed, a.final_inv_rms, d_final, c.dim), d_x1;
  if (c.parallel_from > 0) {  // through the lanes' mean
    d_x *= T(0.5);
    d_x1 = d_x;
  }

  Matrix<T> d_x0 = Matrix<T>::Zero(n, c.dim);
  std::vector<Matrix<T>> d_encoder_outputs(encoders);  // what reaches each skip from its decoder
  for (int i = static_cast<int>(order.size()) - 1; i >= 0; --i) {  // a looped block's gradient sums its passes'
    if (i < encoders && d_encoder_outputs[i].size() > 0) d_x += d_encoder_outputs[i];
    block_backward(c, p.blocks[order[i]], a.rope, a.x0, a.blocks[i], order[i], d_x, d_x1, d_x0, g.blocks[order[i]]);
    if (d_x1.size() > 0 && (i == 0 || !c.parallel_on(order[i - 1]))) {  // where the lanes split
      d_x += d_x1;
      d_x1.resize(0, 0);
    }
    const int decoder = i - encoders;
    if (decoder >= 0 && decoder < skips) {  // a skip added to every lane
      const Matrix<T>& skip = a.encoder_outputs[encoders - 1 - decoder];
      const Matrix<T> d_skip = d_x1.size() > 0 ? Matrix<T>(d_x + d_x1) : d_x;
      g.skip_weights.row(decoder) += column_dot(d_skip, skip);
      d_encoder_outputs[encoders - 1 - decoder] = scale_columns(d_skip, p.skip_weights.row(decoder));
    }
  }
  d_x += d_x0;
  if (c.smear_v1()) d_x = smear_backward(a.embedded, p.smear_gate, d_x, g.smear_gate);
  Matrix<T> d_sum = rms_norm_backward(a.embedded, a.embedded_inv_rms, d_x, c.dim);
  if (c.smear_v2())
    d_sum = smear_v2_backward(a.sum, p.smear_gate, p.smear_lambda(0, 0), a.smear_mask, d_sum, g.smear_gate,
                              g.smear_lambda(0, 0));
  for (Eigen::Index t = 0; t < n; ++t) g.tok_emb.row(inputs[t]) += d_sum.row(t);
  if (c.bigram_buckets > 0) {  // sum += scale * bigram_rows proj^T
    g.bigram_scale(0, 0) += (d_sum.array() * a.bigram_out.array()).sum();
    const Matrix<T> d_out = p.bigram_scale(0, 0) * d_sum;
    g.bigram_proj.noalias() += d_out.transpose() * a.bigram_rows;
    const Matrix<T> d_rows = d_out * p.bigram_proj;
    for (Eigen::Index t = 0; t < n; ++t) g.bigram_embed.row(a.buckets[t]) += d_rows.row(t);
  }
}

// Runs work(i, thread) for every i in [0, count): thread k of `threads` takes the k-th
// contiguous range, so results do not depend on scheduling.
void parallel_for(size_t count, int threads, const std::function<void(size_t, int)>& work) {
  const size_t used = std::max<size_t>(1, std::min<size_t>(count, static_cast<size_t>(std::max(threads, 1))));
  auto run_range = [&](int k) {
    for (size_t i = count * k / used; i < count * (k + 1) / used; ++i) work(i, k);
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < static_cast<int>(used); ++k) pool.emplace_back(run_range, k);
  run_range(0);
  for (auto& thread : pool) thread.join();
}

// The forward (no backward) of every window on threads, as parallel_for shares them out, with one
// Activations per thread reused from window to window (no page faults); then done(i, a) for window
// i. drop_last: the window's last token is only a target.
template <typename T, typename Done>
void forward_each(const ModelConfig& c, const ModelParams<T>& p, std::span<const TokenWindow> windows, bool drop_last,
                  int threads, const std::type_identity_t<InputObserver<T>>* observe, Done&& done) {
  std::vector<Activations<T>> scratch(static_cast<size_t>(std::max(threads, 1)));
  parallel_for(windows.size(), threads, [&](size_t i, int thread) {
    const TokenWindow& w = windows[i];
    forward(c, p, drop_last ? w.first(w.size() - 1) : w, false, scratch[thread], Observer<T>{observe, thread});
    done(i, scratch[thread]);
  });
}

}  // namespace

template <typename T>
Model<T>::Model(ModelConfig config, ModelParams<T> params) : config_(config), params_(std::move(params)) {
  ModelParams<T> expected = zero_params<T>(config_);
  std::vector<std::vector<int64_t>> shapes;
  for_each_parameter(expected, [&](const std::string&, const Matrix<T>&, const std::vector<int64_t>& shape) {
    shapes.push_back(shape);
  });
  require(params_.blocks.size() == expected.blocks.size(),
          "model has " + std::to_string(params_.blocks.size()) + " blocks, config " + config_.describe());
  size_t i = 0;
  for_each_parameter(params_, [&](const std::string& name, const Matrix<T>&, const std::vector<int64_t>& shape) {
    require(shape == shapes[i], name + ": expected shape " + shape_string(shapes[i]) + ", got " + shape_string(shape));
    ++i;
  });
}

template <typename T>
void Model<T>::check_tokens(std::span<const uint16_t> tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t)
    require(tokens[t] < config_.vocab, "token id " + std::to_string(tokens[t]) + " is outside the model's vocab of " +
                                           std::to_string(config_.vocab));
}

template <typename T>
size_t Model<T>::check_windows(std::span<const TokenWindow> windows) const {
  require(!windows.empty(), "no windows to evaluate");
  size_t targets = 0;
  for (const TokenWindow& w : windows) {
    require(w.size() >= 2, "a window needs at least 2 tokens, got " + std::to_string(w.size()));
    check_tokens(w);
    targets += w.size() - 1;
  }
  return targets;
}

template <typename T>
void Model<T>::check_inputs(std::span<const TokenWindow> windows) const {
  require(!windows.empty(), "no windows to run");
  for (const TokenWindow& w : windows) {
    require(!w.empty(), "an empty window");
    check_tokens(w);
  }
}

template <typename T>
Matrix<T> Model<T>::logits(std::span<const uint16_t> inputs) const {
  require(!inputs.empty(), "no input tokens");
  check_tokens(inputs);
  Activations<T> a;
  forward(config_, params_, inputs, false, a);
  return std::move(a.logits);
}

template <typename T>
std::vector<double> Model<T>::token_losses(std::span<const TokenWindow> windows, int threads) const {
  check_windows(windows);
  std::vector<size_t> offsets{0};  // where each window's losses start
  for (const TokenWindow& w : windows) offsets.push_back(offsets.back() + w.size() - 1);
  std::vector<double> losses(offsets.back());
  forward_each(config_, params_, windows, true, threads, nullptr, [&](size_t i, const Activations<T>& a) {
    const TokenWindow& w = windows[i];
    for (size_t t = 0; t + 1 < w.size(); ++t)
      losses[offsets[i] + t] = cross_entropy(a.logits.row(static_cast<Eigen::Index>(t)), w[t + 1]);
  });
  return losses;
}

template <typename T>
void Model<T>::observe_inputs(std::span<const TokenWindow> windows, int threads,
                              const InputObserver<T>& observe) const {
  check_inputs(windows);
  forward_each(config_, params_, windows, false, threads, &observe, [](size_t, const Activations<T>&) {});
}

template <typename T>
Matrix<T> Model<T>::last_logits(std::span<const TokenWindow> windows, int threads) const {
  check_inputs(windows);
  Matrix<T> logits(static_cast<Eigen::Index>(windows.size()), config_.vocab);
  forward_each(config_, params_, windows, false, threads, nullptr, [&](size_t i, const Activations<T>& a) {
    logits.row(static_cast<Eigen::Index>(i)) = a.logits.bottomRows(1);
  });
  return logits;
}

template <typename T>
double Model<T>::objective(std::span<const TokenWindow> windows, int threads) const {
  const size_t targets = check_windows(windows);
  std::vector<double> sums(windows.size());
  forward_each(config_, params_, windows, true, threads, nullptr, [&](size_t i, const Activations<T>& a) {
    const TokenWindow& w = windows[i];
    for (size_t t = 0; t + 1 < w.size(); ++t) sums[i] += cross_entropy(a.logits.row(static_cast<Eigen::Index>(t)), w[t + 1]);
    sums[i] += config_.mtp_weight * mtp_loss_sum(config_, params_, a, w.subspan(1));
  });
  return std::accumulate(sums.begin(), sums.end(), 0.0) / static_cast<double>(targets);
}

template <typename T>
double Model<T>::loss_and_gradient(std::span<const TokenWindow> windows, ModelParams<T>& grad, int threads) const {
  const double weight = 1.0 / static_cast<double>(check_windows(windows));
  const int used = std::max(1, std::min(threads, static_cast<int>(windows.size())));
  std::vector<ModelParams<T>> grads(used, zero_params<T>(config_));
  std::vector<double> loss_sums(used, 0.0);
  parallel_for(windows.size(), used, [&](size_t i, int thread) {
    const TokenWindow& w = windows[i];
    auto inputs = w.first(w.size() - 1), outputs = w.subspan(1);
    Activations<T> a;
    forward(config_, params_, inputs, true, a);
    for (size_t t = 0; t < outputs.size(); ++t)
      loss_sums[thread] += cross_entropy(a.logits.row(static_cast<Eigen::Index>(t)), outputs[t]);
    backward(config_, params_, inputs, outputs, a, weight, grads[thread]);
  });
  grad = std::move(grads[0]);
  double loss_sum = loss_sums[0];
  for (int k = 1; k < used; ++k) {
    add_params(grad, grads[k]);
    loss_sum += loss_sums[k];
  }
  return loss_sum * weight;
}

template <typename T>
std::vector<double> Model<T>::suffix_losses(TokenWindow window, size_t scored, ModelParams<T>* grad) const {
  check_windows(std::span(&window, 1));
  require(scored >= 1 && scored < window.size(), "score 1 to " + std::to_string(window.size() - 1) +
                                                     " targets of the window, not " + std::to_string(scored));
  require(!grad || config_.mtp_heads == 0, "the gradient of a window's last targets takes a model without MTP heads");
  auto inputs = window.first(window.size() - 1), outputs = window.subspan(1);
  const size_t first = outputs.size() - scored;
  Activations<T> a;
  forward(config_, params_, inputs, grad != nullptr, a);
  std::vector<double> losses(scored);
  for (size_t t = first; t < outputs.size(); ++t)
    losses[t - first] = cross_entropy(a.logits.row(static_cast<Eigen::Index>(t)), outputs[t]);
  if (grad) {
    *grad = zero_params<T>(config_);
    backward(config_, params_, inputs, outputs, a, 1.0 / static_cast<double>(scored), *grad,
             static_cast<Eigen::Index>(first));
  }
  return losses;
}

template class Model<float>;
template class Model<double>;

}  // namespace pgolf
