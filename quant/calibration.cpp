#include "quant/calibration.h"

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace pgolf {

Calibration Calibration::load(const std::string& path) {
  Checkpoint file = Checkpoint::open({path});
  Calibration c;
  c.path_ = path;
  c.metadata_ = file.metadata();
  for (const auto& ref : file.tensors()) {
    require(dtype_is_float(ref.dtype) && ref.shape.size() == 2 && ref.shape[0] == ref.shape[1],
            path + ": tensor '" + ref.name + "' is not a square float matrix, so not an input Hessian");
    c.values_[ref.name] = ref.to_floats();
  }
  // Views into values_: map nodes and vector buffers keep their address when a Calibration moves.
  for (const auto& [name, values] : c.values_) c.hessians_[name] = {values, file.at(name).shape[0]};
  return c;
}

const InputHessian* Calibration::find(const std::string& name) const {
  auto it = hessians_.find(name);
  return it == hessians_.end() ? nullptr : &it->second;
}

}  // namespace pgolf
