#include "artifact/load.h"

#include <filesystem>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace pgolf {

bool is_artifact_path(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  return has_artifact_magic(MappedFile::open(path)->bytes());
}

std::map<std::string, FloatTensor> load_float_tensors(const std::vector<std::string>& paths) {
  if (paths.size() == 1 && is_artifact_path(paths[0])) return float_tensors_of(decode_artifact_file(paths[0]), paths[0]);
  for (const auto& path : paths)
    require(!is_artifact_path(path), path + ": an artifact must be the only model path");
  return float_tensors_of(Checkpoint::open(paths));
}

std::map<std::string, FloatTensor> float_tensors_of(DecodedArtifact&& decoded, const std::string& path) {
  std::map<std::string, FloatTensor> out;
  for (auto& t : decoded.tensors) {
    require(t.codec != kRawSpec, path + ": tensor '" + t.name + "' is not a float tensor");
    out[t.name] = {t.shape, std::move(t.values)};
  }
  return out;
}

}  // namespace pgolf
