// CPU twins of the kernels in kernels/forward_kernels.h and kernels/train_kernels.h: the same
// operation on the same float layout, written as plainly as possible and computed in double, as
// the kernels' references. (The whole GPU forward and every gradient are also held to
// trainer/model.cpp itself in cuda_eval_test.cpp and cuda_train_test.cpp.)
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace pgolf::test {

inline std::vector<double> twin_rms_norm(const std::vector<float>& x, int64_t rows, int dim) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < rows; ++t) {
    double sum = 0;
    for (int j = 0; j < dim; ++j) sum += double(x[t * dim + j]) * x[t * dim + j];
    const double inv_rms = 1.0 / std::sqrt(sum / dim + FLT_EPSILON);
    for (int j = 0; j < dim; ++j) out[t * dim + j] = x[t * dim + j] * inv_rms;
  }
  return out;
}

// table[ids[t]] row by row.
inline std::vector<float> twin_gather_rows(const std::vector<float>& table, const std::vector<uint16_t>& ids,
                                           int width) {
  std::vector<float> gathered;
  for (uint16_t id : ids) gathered.insert(gathered.end(), table.begin() + id * width, table.begin() + (id + 1) * width);
  return gathered;
}

// tok_emb[ids[t]] + scale extra[t] (extra empty: none), before the norm (in float, as the kernel
// keeps it).
inline std::vector<float> twin_embedding_sum(const std::vector<float>& tok_emb, const std::vector<uint16_t>& ids,
                                             int dim, const std::vector<float>& extra, float scale) {
  std::vector<float> sum = twin_gather_rows(tok_emb, ids, dim);
  for (size_t i = 0; i < extra.size(); ++i) sum[i] = float(double(sum[i]) + double(scale) * extra[i]);
  return sum;
}

inline std::vector<double> twin_embedding_rms_norm(const std::vector<float>& tok_emb, const std::vector<uint16_t>& ids,
                                                   int dim, const std::vector<float>& extra = {}, float scale = 0) {
  return twin_rms_norm(twin_embedding_sum(tok_emb, ids, dim, extra, scale), static_cast<int64_t>(ids.size()), dim);
}

inline double twin_sigmoid(float g) { return 1.0 / (1.0 + std::exp(-double(g))); }

// SmearGate v1 over sequences of seq_len rows.
inline std::vector<double> twin_smear(const std::vector<float>& x, const std::vector<float>& gate, int seq_len,
                                      int dim) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double mix = twin_sigmoid(gate[i % dim]);
    const size_t row = i / dim;
    out[i] = (1 - mix) * x[i] + (row % seq_len == 0 ? 0.0 : mix * x[i - dim]);
  }
  return out;
}

// SmearGate v2 on rows of dim over sequences of seq_len: whether row t mixes, and its coefficient
// λ σ(w · x_t[0 : window]).
inline bool twin_smear_v2_mixes(size_t row, const std::vector<uint16_t>& ids, int bos, int seq_len) {
  return row % seq_len != 0 && (bos < 0 || ids[row] != bos);
}
inline double twin_smear_v2_gate(const std::vector<float>& x, size_t row, const std::vector<float>& w, int dim) {
  double z = 0;
  for (size_t j = 0; j < w.size(); ++j) z += double(w[j]) * x[row * dim + j];
  return 1.0 / (1.0 + std::exp(-z));
}
inline std::vector<double> twin_smear_v2(const std::vector<float>& x, const std::vector<float>& w, float lambda,
                                         const std::vector<uint16_t>& ids, int bos, int seq_len, int dim) {
  std::vector<double> y(x.begin(), x.end());
  for (size_t row = 0; row < ids.size(); ++row) {
    if (!twin_smear_v2_mixes(row, ids, bos, seq_len)) continue;
    const double coefficient = lambda * twin_smear_v2_gate(x, row, w, dim);
    for (int j = 0; j < dim; ++j) y[row * dim + j] += coefficient * x[(row - 1) * dim + j];
  }
  return y;
}
struct SmearV2Gradient {
  std::vector<double> dx, d_lambda_rows, d_w_rows;
};
inline SmearV2Gradient twin_smear_v2_backward(const std::vector<float>& x, const std::vector<float>& w, float lambda,
                                              const std::vector<uint16_t>& ids, int bos, const std::vector<float>& dy,
                                              int seq_len, int dim) {
  const size_t rows = ids.size(), window = w.size();
  SmearV2Gradient g{std::vector<double>(dy.begin(), dy.end()), std::vector<double>(rows),
                    std::vector<double>(rows * window)};
  for (size_t row = 0; row < rows; ++row) {
    if (!twin_smear_v2_mixes(row, ids, bos, seq_len)) continue;
    const double gate = twin_smear_v2_gate(x, row, w, dim);
    double seen = 0;
    for (int j = 0; j < dim; ++j) seen += double(dy[row * dim + j]) * x[(row - 1) * dim + j];
    g.d_lambda_rows[row] = gate * seen;
    for (int j = 0; j < dim; ++j) g.dx[(row - 1) * dim + j] += lambda * gate * dy[row * dim + j];
    const double dz = lambda * seen * gate * (1 - gate);
    for (size_t j = 0; j < window; ++j) {
      g.d_w_rows[row * window + j] = dz * x[row * dim + j];
      g.dx[row * dim + j] += dz * w[j];
    }
  }
  return g;
}

// XSA over heads_out [rows, heads * head_dim], the value vectors read from qkv's layout.
inline std::vector<double> twin_unit_value(const std::vector<float>& qkv, size_t row, int heads, int kv_heads, int kv,
                                           int head_dim, double* norm = nullptr) {
  const size_t at = row * (heads + 2 * kv_heads) * head_dim + (heads + kv_heads + kv) * head_dim;
  double sum = 0;
  for (int j = 0; j < head_dim; ++j) sum += double(qkv[at + j]) * qkv[at + j];
  const double divisor = std::max(std::sqrt(sum), 1e-12);
  if (norm) *norm = std::sqrt(sum);
  std::vector<double> u(head_dim);
  for (int j = 0; j < head_dim; ++j) u[j] = qkv[at + j] / divisor;
  return u;
}
inline std::vector<double> twin_xsa(const std::vector<float>& heads_out, const std::vector<float>& qkv, size_t rows,
                                    int heads, int kv_heads, int head_dim) {
  std::vector<double> out(heads_out.begin(), heads_out.end());
  for (size_t row = 0; row < rows; ++row)
    for (int h = 0; h < heads; ++h) {
      const auto u = twin_unit_value(qkv, row, heads, kv_heads, h / (heads / kv_heads), head_dim);
      double* y = &out[(row * heads + h) * head_dim];
      double y_u = 0;
      for (int j = 0; j < head_dim; ++j) y_u += y[j] * u[j];
      for (int j = 0; j < head_dim; ++j) y[j] -= y_u * u[j];
    }
  return out;
}
struct XsaGradient {
  std::vector<double> d_in, d_v;
};
inline XsaGradient twin_xsa_backward(const std::vector<float>& heads_out, const std::vector<float>& qkv,
                                     const std::vector<float>& d_out, size_t rows, int heads, int kv_heads,
                                     int head_dim) {
  XsaGradient g{std::vector<double>(d_out.begin(), d_out.end()), std::vector<double>(rows * kv_heads * head_dim, 0.0)};
  for (size_t row = 0; row < rows; ++row)
    for (int kv = 0; kv < kv_heads; ++kv) {
      double norm = 0;
      const auto u = twin_unit_value(qkv, row, heads, kv_heads, kv, head_dim, &norm);
      std::vector<double> d_u(head_dim, 0.0);
      for (int h = kv * (heads / kv_heads); h < (kv + 1) * (heads / kv_heads); ++h) {
        const size_t at = (row * heads + h) * head_dim;
        double y_u = 0, dy_u = 0;
        for (int j = 0; j < head_dim; ++j) y_u += heads_out[at + j] * u[j], dy_u += d_out[at + j] * u[j];
        for (int j = 0; j < head_dim; ++j) {
          g.d_in[at + j] -= dy_u * u[j];
          d_u[j] -= y_u * d_out[at + j] + dy_u * heads_out[at + j];
        }
      }
      double du_u = 0;
      for (int j = 0; j < head_dim; ++j) du_u += d_u[j] * u[j];
      const double divisor = std::max(norm, 1e-12);
      for (int j = 0; j < head_dim; ++j)
        g.d_v[(row * kv_heads + kv) * head_dim + j] = (d_u[j] - (norm > 1e-12 ? du_u * u[j] : 0.0)) / divisor;
    }
  return g;
}

// Its backward: dx, and each row's share of the gate's gradient.
struct SmearGradient {
  std::vector<double> dx, d_gate_rows;
};
inline SmearGradient twin_smear_backward(const std::vector<float>& x, const std::vector<float>& gate,
                                         const std::vector<float>& dy, int seq_len, int dim) {
  SmearGradient g{std::vector<double>(x.size()), std::vector<double>(x.size())};
  for (size_t i = 0; i < x.size(); ++i) {
    const double mix = twin_sigmoid(gate[i % dim]);
    const size_t row = i / dim;
    const bool first = row % seq_len == 0, last = row % seq_len == size_t(seq_len) - 1;
    g.dx[i] = (1 - mix) * dy[i] + (last ? 0.0 : mix * dy[i + dim]);
    g.d_gate_rows[i] = dy[i] * ((first ? 0.0 : double(x[i - dim])) - x[i]) * mix * (1 - mix);
  }
  return g;
}

// x_scale x + y_scale y per channel (x_scale empty: 1).
inline std::vector<double> twin_scaled_sum(const std::vector<float>& x, const std::vector<float>& x_scale,
                                           const std::vector<float>& y, const std::vector<float>& y_scale, int dim) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = (x_scale.empty() ? 1.0 : double(x_scale[i % dim])) * x[i] + double(y_scale[i % dim]) * y[i];
  return out;
}

inline std::vector<double> twin_leaky_relu_square(const std::vector<float>& x, double slope) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = x[i] > 0 ? double(x[i]) : slope * x[i];
    out[i] = a * a;
  }
  return out;
}

// qkv rows of (heads + 2 kv_heads) * head_dim: q and k heads normed, rotated and (q) gained; v kept.
// Partial RoPE: only the first rotated_dims dims turn, pairs (j, rotated_dims / 2 + j); the table
// is [positions, head_dim / 2].
inline std::vector<double> twin_qk_norm_rope(const std::vector<float>& qkv, int64_t rows, int seq_len, int heads,
                                             int kv_heads, int head_dim, int rotated_dims,
                                             const std::vector<float>& cos, const std::vector<float>& sin,
                                             const std::vector<float>& q_gain) {
  const int width = (heads + 2 * kv_heads) * head_dim, table = head_dim / 2, half = rotated_dims / 2;
  std::vector<double> out(qkv.begin(), qkv.end());
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t position = t % seq_len;
    for (int h = 0; h < heads + kv_heads; ++h) {
      const float* x = &qkv[t * width + h * head_dim];
      double sum = 0;
      for (int j = 0; j < head_dim; ++j) sum += double(x[j]) * x[j];
      const double inv_rms = 1.0 / std::sqrt(sum / head_dim + FLT_EPSILON);
      const double gain = h < heads ? q_gain[h] : 1.0;
      for (int j = 0; j < half; ++j) {
        const double c = cos[position * table + j], s = sin[position * table + j];
        const double x1 = x[j] * inv_rms, x2 = x[half + j] * inv_rms;
        out[t * width + h * head_dim + j] = (x1 * c + x2 * s) * gain;
        out[t * width + h * head_dim + half + j] = (x2 * c - x1 * s) * gain;
      }
      for (int j = rotated_dims; j < head_dim; ++j) out[t * width + h * head_dim + j] = x[j] * inv_rms * gain;
    }
  }
  return out;
}

// The backward of twin_qk_norm_rope given d (the gradient of its output): the gradient of qkv (v
// columns: d itself) and, per row, each q head's share of q_gain's gradient [rows, heads].
struct QkNormRopeGradient {
  std::vector<double> d_qkv, d_gain_partial;
};
inline QkNormRopeGradient twin_qk_norm_rope_backward(const std::vector<float>& qkv, const std::vector<float>& d,
                                                     int64_t rows, int seq_len, int heads, int kv_heads, int head_dim,
                                                     int rotated_dims, const std::vector<float>& cos,
                                                     const std::vector<float>& sin, const std::vector<float>& q_gain) {
  const int width = (heads + 2 * kv_heads) * head_dim, table = head_dim / 2, half = rotated_dims / 2;
  QkNormRopeGradient g{std::vector<double>(d.begin(), d.end()), std::vector<double>(rows * heads, 0.0)};
  std::vector<double> y(head_dim), dy(head_dim);
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t position = t % seq_len;
    for (int h = 0; h < heads + kv_heads; ++h) {
      const float* x = &qkv[t * width + h * head_dim];
      const float* dh = &d[t * width + h * head_dim];
      double sum = 0;
      for (int j = 0; j < head_dim; ++j) sum += double(x[j]) * x[j];
      const double inv_rms = 1.0 / std::sqrt(sum / head_dim + FLT_EPSILON);
      const double gain = h < heads ? q_gain[h] : 1.0;
      for (int j = 0; j < head_dim; ++j) y[j] = x[j] * inv_rms;
      double gain_dot = 0, y_dot = 0;
      for (int j = 0; j < half; ++j) {  // out1 = gain (y1 c + y2 s), out2 = gain (y2 c - y1 s)
        const double c = cos[position * table + j], s = sin[position * table + j];
        gain_dot += dh[j] * (y[j] * c + y[half + j] * s) + dh[half + j] * (y[half + j] * c - y[j] * s);
        dy[j] = gain * (dh[j] * c - dh[half + j] * s);
        dy[half + j] = gain * (dh[j] * s + dh[half + j] * c);
      }
      for (int j = rotated_dims; j < head_dim; ++j) {  // not turned: out = gain y
        gain_dot += dh[j] * y[j];
        dy[j] = gain * dh[j];
      }
      for (int j = 0; j < head_dim; ++j) y_dot += dy[j] * y[j];
      for (int j = 0; j < head_dim; ++j)
        g.d_qkv[t * width + h * head_dim + j] = inv_rms * (dy[j] - y[j] * y_dot / head_dim);
      if (h < heads) g.d_gain_partial[t * heads + h] = gain_dot;
    }
  }
  return g;
}

// Materialised causal softmax attention in the qkv layout (forward_kernels.h): the weights p[j],
// j <= i, of query i of head h in one sequence, returning the log-sum-exp of its scaled scores.
inline double twin_attention_weights(const float* seq, int heads, int kv_heads, int head_dim, int h, int i,
                                     std::vector<double>& p) {
  const int width = (heads + 2 * kv_heads) * head_dim, kv = h / (heads / kv_heads);
  double max = -std::numeric_limits<double>::infinity();
  for (int j = 0; j <= i; ++j) {
    double dot = 0;
    for (int d = 0; d < head_dim; ++d)
      dot += double(seq[i * width + h * head_dim + d]) * seq[j * width + (heads + kv) * head_dim + d];
    p[j] = dot / std::sqrt(double(head_dim));
    max = std::max(max, p[j]);
  }
  double sum = 0;
  for (int j = 0; j <= i; ++j) sum += p[j] = std::exp(p[j] - max);
  for (int j = 0; j <= i; ++j) p[j] /= sum;
  return max + std::log(sum);
}

// The attention output [rows, heads * head_dim], and lse [rows, heads] when asked for.
inline std::vector<double> twin_attention(const std::vector<float>& qkv, int sequences, int seq_len, int heads,
                                          int kv_heads, int head_dim, std::vector<double>* lse = nullptr) {
  const int width = (heads + 2 * kv_heads) * head_dim;
  std::vector<double> out(static_cast<size_t>(sequences) * seq_len * heads * head_dim), p(seq_len);
  if (lse) lse->assign(static_cast<size_t>(sequences) * seq_len * heads, 0.0);
  for (int b = 0; b < sequences; ++b) {
    const float* seq = &qkv[static_cast<size_t>(b) * seq_len * width];
    for (int h = 0; h < heads; ++h) {
      const int kv = h / (heads / kv_heads);
      for (int i = 0; i < seq_len; ++i) {
        const double row_lse = twin_attention_weights(seq, heads, kv_heads, head_dim, h, i, p);
        if (lse) (*lse)[(static_cast<size_t>(b) * seq_len + i) * heads + h] = row_lse;
        for (int d = 0; d < head_dim; ++d) {
          double o = 0;
          for (int j = 0; j <= i; ++j) o += p[j] * seq[j * width + (heads + kv_heads + kv) * head_dim + d];
          out[(static_cast<size_t>(b) * seq_len + i) * heads * head_dim + h * head_dim + d] = o;
        }
      }
    }
  }
  return out;
}

// The gradient of q, k and v (qkv's layout) given d_out: with dp[j] = d_out_i . v_j and
// delta = sum_j p[j] dp[j], ds[j] = p[j] (dp[j] - delta); dq_i = sum_j ds[j] k_j / sqrt(D),
// dk_j += ds[j] q_i / sqrt(D), dv_j += p[j] d_out_i.
inline std::vector<double> twin_attention_backward(const std::vector<float>& qkv, const std::vector<float>& d_out,
                                                   int sequences, int seq_len, int heads, int kv_heads, int head_dim) {
  const int width = (heads + 2 * kv_heads) * head_dim;
  const double scale = 1 / std::sqrt(double(head_dim));
  std::vector<double> d_qkv(qkv.size(), 0.0), p(seq_len), ds(seq_len);
  for (int b = 0; b < sequences; ++b) {
    const size_t first_row = static_cast<size_t>(b) * seq_len;
    const float* seq = &qkv[first_row * width];
    double* d_seq = &d_qkv[first_row * width];
    for (int h = 0; h < heads; ++h) {
      const int kv = h / (heads / kv_heads);
      const int q = h * head_dim, k = (heads + kv) * head_dim, v = (heads + kv_heads + kv) * head_dim;
      for (int i = 0; i < seq_len; ++i) {
        twin_attention_weights(seq, heads, kv_heads, head_dim, h, i, p);
        const float* g = &d_out[((first_row + i) * heads + h) * head_dim];
        double delta = 0;
        for (int j = 0; j <= i; ++j) {
          double dp = 0;
          for (int d = 0; d < head_dim; ++d) dp += double(g[d]) * seq[j * width + v + d];
          ds[j] = dp;
          delta += p[j] * dp;
        }
        for (int j = 0; j <= i; ++j) {
          ds[j] = p[j] * (ds[j] - delta) * scale;
          for (int d = 0; d < head_dim; ++d) {
            d_seq[i * width + q + d] += ds[j] * seq[j * width + k + d];
            d_seq[j * width + k + d] += ds[j] * seq[i * width + q + d];
            d_seq[j * width + v + d] += p[j] * g[d];
          }
        }
      }
    }
  }
  return d_qkv;
}

inline std::vector<double> twin_softcap_cross_entropy(const std::vector<float>& logits,
                                                      const std::vector<uint16_t>& targets, int vocab, double cap) {
  std::vector<double> losses(targets.size());
  std::vector<double> z(vocab);
  for (size_t t = 0; t < targets.size(); ++t) {
    double max = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < vocab; ++j) max = std::max(max, z[j] = cap * std::tanh(logits[t * vocab + j] / cap));
    double sum = 0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(z[j] - max);
    losses[t] = std::log(sum) + max - z[targets[t]];
  }
  return losses;
}

// The backward of rms_norm over rows of `width`: y = x r, r = 1 / sqrt(mean(x^2) + eps), so
// dx = r dy - x r^3 mean(dy x).
inline std::vector<double> twin_rms_norm_backward(const std::vector<float>& x, const std::vector<float>& dy,
                                                  int64_t rows, int width) {
  std::vector<double> dx(x.size());
  for (int64_t t = 0; t < rows; ++t) {
    double squares = 0, dot = 0;
    for (int j = 0; j < width; ++j) {
      squares += double(x[t * width + j]) * x[t * width + j];
      dot += double(dy[t * width + j]) * x[t * width + j];
    }
    const double r = 1.0 / std::sqrt(squares / width + FLT_EPSILON);
    for (int j = 0; j < width; ++j)
      dx[t * width + j] = r * dy[t * width + j] - x[t * width + j] * r * r * r * dot / width;
  }
  return dx;
}

inline std::vector<double> twin_leaky_relu_square_backward(const std::vector<float>& pre, const std::vector<float>& d,
                                                           double slope) {
  std::vector<double> out(pre.size());
  for (size_t i = 0; i < pre.size(); ++i) out[i] = 2.0 * (pre[i] > 0 ? double(pre[i]) : slope * slope * pre[i]) * d[i];
  return out;
}

// Per column: the sum over rows of a * b (b empty: of a).
inline std::vector<double> twin_column_sum(const std::vector<float>& a, const std::vector<float>& b, int64_t rows,
                                           int dim) {
  std::vector<double> out(dim, 0.0);
  for (int64_t t = 0; t < rows; ++t)
    for (int j = 0; j < dim; ++j) out[j] += double(a[t * dim + j]) * (b.empty() ? 1.0 : b[t * dim + j]);
  return out;
}

// weight * d/d logits of the softcapped cross-entropy: z = cap tanh(l / cap), p = softmax(z),
// dz = p - onehot(target), dl = dz (1 - tanh^2).
inline std::vector<double> twin_softcap_cross_entropy_backward(const std::vector<float>& logits,
                                                               const std::vector<uint16_t>& targets, int vocab,
                                                               double cap, double weight) {
  std::vector<double> grad(logits.size()), z(vocab);
  for (size_t t = 0; t < targets.size(); ++t) {
    double max = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < vocab; ++j) max = std::max(max, z[j] = cap * std::tanh(logits[t * vocab + j] / cap));
    double sum = 0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(z[j] - max);
    for (int j = 0; j < vocab; ++j) {
      const double p = std::exp(z[j] - max) / sum, th = std::tanh(logits[t * vocab + j] / cap);
      grad[t * vocab + j] = weight * (p - (j == targets[t] ? 1.0 : 0.0)) * (1 - th * th);
    }
  }
  return grad;
}

// d_tok_emb (starting from `initial`) plus, per token id, the rows that read it.
inline std::vector<double> twin_embedding_backward(const std::vector<float>& d_rows, const std::vector<uint16_t>& ids,
                                                   const std::vector<float>& initial, int dim) {
  std::vector<double> out(initial.begin(), initial.end());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int j = 0; j < dim; ++j) out[ids[t] * dim + j] += d_rows[t * dim + j];
  return out;
}

}  // namespace pgolf::test
