// Small real checkpoints for fast tests: some of base9's tensors, as they are (bf16). Header-only:
// only the test binaries that link the quant library include it.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "support/test_support.h"

namespace pgolf::test {

// The named tensors of samples/base9 written to dir/file; returns its path.
inline std::string base9_subset(const TempDir& dir, std::initializer_list<const char*> names, const std::string& file) {
  auto base9 = Checkpoint::open({sample_path("base9")});
  std::vector<TensorData> tensors;
  for (const char* name : names) {
    const auto& t = base9.at(name);
    tensors.push_back({t.name, t.dtype, t.shape, {t.bytes.begin(), t.bytes.end()}});
  }
  std::string path = dir.file(file);
  write_safetensors(path, tensors, base9.metadata(), false);
  return path;
}

}  // namespace pgolf::test
