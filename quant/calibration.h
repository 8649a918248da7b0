// Calibration statistics as `pgolf calibrate` writes them: a safetensors file with, per matrix the
// plan quantizes, the fp32 Hessian H = XᵀX / n of its inputs [cols, cols], under the matrix's
// own name; __metadata__ says how many tokens and from where.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "quant/tensor_codec.h"

namespace pgolf {

class Calibration {
 public:
  // InputError naming the file and tensor for anything but square, finite-sized float matrices.
  static Calibration load(const std::string& path);
  Calibration(Calibration&&) = default;
  Calibration(const Calibration&) = delete;  // hessians_ views values_
  Calibration& operator=(const Calibration&) = delete;

  const InputHessian* find(const std::string& name) const;  // null when the file has none for it
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Calibration() = default;
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, std::vector<float>> values_;
  std::map<std::string, InputHessian> hessians_;  // views of values_
};

}  // namespace pgolf
