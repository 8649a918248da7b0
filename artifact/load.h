// Model weights as floats from whatever the user points at: a safetensors checkpoint
// (any form Checkpoint::open takes) or a .pgz artifact (decoded in memory).
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

// Throws InputError on anything malformed.
std::map<std::string, FloatTensor> load_float_tensors(const std::vector<std::string>& paths);

bool is_artifact_path(const std::string& path);  // by the file's magic bytes

}  // namespace pgolf
