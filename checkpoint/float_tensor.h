// A tensor as floats, the form the model and the codecs take weights in.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pgolf {

struct FloatTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

class Checkpoint;
// The tensors of an open checkpoint as floats; InputError for one that is not a float tensor.
std::map<std::string, FloatTensor> float_tensors_of(const Checkpoint& checkpoint);

}  // namespace pgolf
