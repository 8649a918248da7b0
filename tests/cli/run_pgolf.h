// What the CLI tests share: the pgolf binary run as a user runs it, and small real checkpoints.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <vector>

#include "quant/safetensors.h"
#include "support/test_support.h"

namespace pgolf::test {

struct Run {
  int exit_code;
  std::string out;  // stdout and stderr together
};

inline Run pgolf(const std::string& args) {
  std::string cmd = std::string(PGOLF_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A real checkpoint small enough for fast CLI tests: the named tensors of base9, as they are (bf16),
// written to dir/file.
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
