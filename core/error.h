// Errors: InputError is the user's fault (bad file, bad flag; exit code 2),
// anything else is ours (exit code 1). Messages are one line and name the file or tensor.
#pragma once
#include <stdexcept>
#include <string>

namespace pgolf {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws InputError(message) unless condition holds. The message is built before the call:
// keep require() out of per-element loops.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

}  // namespace pgolf
