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

std::map<std::string, FloatTensor> load_float_tensors(const std::vector<std::string>& paths,
                                                      std::map<std::string, std::string>* metadata) {
  if (paths.size() == 1 && is_artifact_path(paths[0])) {
    DecodedArtifact decoded = decode_artifact_file(paths[0]);
    if (metadata) *metadata = decoded.manifest.metadata;
    return float_tensors_of(std::move(decoded), paths[0]);
  }
  for (const auto& path : paths)
    require(!is_artifact_path(path), path + ": an artifact must be the only model path");
  const Checkpoint checkpoint = Checkpoint::open(paths);
  if (metadata) *metadata = checkpoint.metadata();
  return float_tensors_of(checkpoint);
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
