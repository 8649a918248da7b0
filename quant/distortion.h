// Reconstruction error of one tensor or many: sums that add up across tensors, and the
// figures users compare (MSE, relative MSE, SNR in dB, cosine, max abs error).
#pragma once
#include <cstdint>
#include <span>

namespace pgolf {

struct Distortion {
  double sum_sq_error = 0;      // sum (x - y)^2
  double sum_sq_reference = 0;  // sum x^2
  double sum_sq_decoded = 0;    // sum y^2
  double dot = 0;               // sum x*y
  double max_abs_error = 0;
  int64_t count = 0;
  // In output space, for matrices with a calibration Hessian H: tr(ΔW H ΔWᵀ) and tr(W H Wᵀ).
  double output_sq_error = 0;
  double output_sq_reference = 0;
  int64_t output_tensors = 0;  // how many matrices the output sums cover

  static Distortion measure(std::span<const float> reference, std::span<const float> decoded);
  void add(const Distortion& other);

  double mse() const;
  double relative_mse() const;  // sum_sq_error / sum_sq_reference (0 for an all-zero reference with no error)
  double snr_db() const;        // 10 log10(sum x^2 / sum err^2); +inf when exact
  double cosine() const;        // 1 for two all-zero tensors
  bool has_output() const { return output_tensors > 0; }
  double output_relative_error() const;  // output_sq_error / output_sq_reference (NaN without calibration)
};

}  // namespace pgolf
