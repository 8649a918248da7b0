// Model weights as floats from whatever the user points at: a safetensors checkpoint
// (any form Checkpoint::open takes) or a .pgz artifact (decoded in memory).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "checkpoint/float_tensor.h"

namespace pgolf {

// Throws InputError on anything malformed. metadata, where given, gets the checkpoint's
// __metadata__ (an artifact carries the metadata of the checkpoint it was made from).
std::map<std::string, FloatTensor> load_float_tensors(const std::vector<std::string>& paths,
                                                      std::map<std::string, std::string>* metadata = nullptr);

struct DecodedArtifact;
// The tensors of a decoded artifact (moved out of it); InputError naming `path` for a raw one.
std::map<std::string, FloatTensor> float_tensors_of(DecodedArtifact&& decoded, const std::string& path);

bool is_artifact_path(const std::string& path);  // by the file's magic bytes

}  // namespace pgolf
