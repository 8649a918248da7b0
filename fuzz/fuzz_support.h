// What every fuzz target shares: pgolf may refuse any input with InputError (its answer to bad
// input); anything else escaping (another exception, a crash, a sanitizer report) is a bug.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace pgolf::fuzz {

// Runs f; InputError is an accepted answer, every other exception propagates and aborts the run.
template <class F>
void accept_input_error(F&& f) {
  try {
    f();
  } catch (const InputError&) {
  }
}

// A private folder for this process (fuzz jobs may run side by side), removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("pgolf-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return d;
  }();
  return dir;
}

// The fuzz input as a file the readers open by path. A plain write, not pgolf's atomic writer:
// this is the harness setting up input, and an fsync per execution would make fuzzing crawl.
inline std::string write_input(const std::string& name, std::span<const uint8_t> bytes) {
  std::string path = (scratch_dir() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()),
                                                                  static_cast<std::streamsize>(bytes.size()));
  return path;
}

// The fuzz input as a checkpoint file named `name` (its container is found from its bytes):
// opened, and every tensor it declares converted to float.
inline void open_checkpoint(const std::string& name, std::span<const uint8_t> bytes) {
  std::string path = write_input(name, bytes);
  accept_input_error([&] {
    auto checkpoint = Checkpoint::open({path});
    for (const auto& t : checkpoint.tensors()) (void)t.to_floats();
  });
}

// Reads input fields front to back; past the end every field reads as 0.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : bytes_(data, size) {}
  uint8_t u8() { return pos_ < bytes_.size() ? bytes_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{u8()} << (8 * i);
    return v;
  }
  std::span<const uint8_t> take(size_t n) {
    n = std::min(n, bytes_.size() - pos_);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::span<const uint8_t> rest() { return take(bytes_.size() - pos_); }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace pgolf::fuzz
