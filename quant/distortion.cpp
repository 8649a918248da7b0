#include "quant/distortion.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace pgolf {

Distortion Distortion::measure(std::span<const float> reference, std::span<const float> decoded) {
  if (reference.size() != decoded.size()) throw std::logic_error("Distortion::measure: size mismatch");
  Distortion d;
  d.count = static_cast<int64_t>(reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    double x = reference[i], y = decoded[i], e = x - y;
    d.sum_sq_error += e * e;
    d.sum_sq_reference += x * x;
    d.sum_sq_decoded += y * y;
    d.dot += x * y;
    d.max_abs_error = std::max(d.max_abs_error, std::fabs(e));
  }
  return d;
}

void Distortion::add(const Distortion& o) {
  sum_sq_error += o.sum_sq_error;
  sum_sq_reference += o.sum_sq_reference;
  sum_sq_decoded += o.sum_sq_decoded;
  dot += o.dot;
  max_abs_error = std::max(max_abs_error, o.max_abs_error);
  count += o.count;
  output_sq_error += o.output_sq_error;
  output_sq_reference += o.output_sq_reference;
  output_tensors += o.output_tensors;
}

double Distortion::output_relative_error() const {
  if (!has_output()) return std::numeric_limits<double>::quiet_NaN();
  if (output_sq_reference > 0) return output_sq_error / output_sq_reference;
  return output_sq_error > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

double Distortion::mse() const { return count ? sum_sq_error / static_cast<double>(count) : 0.0; }

double Distortion::relative_mse() const {
  if (sum_sq_reference > 0) return sum_sq_error / sum_sq_reference;
  return sum_sq_error > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

double Distortion::snr_db() const {
  if (sum_sq_error == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sum_sq_reference / sum_sq_error);
}

double Distortion::cosine() const {
  double norms = std::sqrt(sum_sq_reference) * std::sqrt(sum_sq_decoded);
  if (norms == 0) return sum_sq_reference == sum_sq_decoded ? 1.0 : 0.0;
  return dot / norms;
}

}  // namespace pgolf
