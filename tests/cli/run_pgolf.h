// What the CLI tests share: the pgolf binary run as a user runs it (and support/base9_subset.h).
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "support/base9_subset.h"
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

}  // namespace pgolf::test
