#include "checkpoint/float_tensor.h"

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace pgolf {

std::map<std::string, FloatTensor> float_tensors_of(const Checkpoint& checkpoint) {
  std::map<std::string, FloatTensor> out;
  for (const auto& t : checkpoint.tensors()) {
    require(dtype_is_float(t.dtype), t.file + ": tensor '" + t.name + "' is not a float tensor");
    out[t.name] = {t.shape, t.to_floats()};
  }
  return out;
}

}  // namespace pgolf
