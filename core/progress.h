// A one-line progress bar on stderr, drawn only when stderr is a terminal (logs stay clean).
#pragma once
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace pgolf {

class Progress {
 public:
  Progress(std::string label, size_t total);
  ~Progress();  // clears the line
  void advance(size_t n = 1);  // thread-safe

 private:
  void draw();
  std::string label_;
  size_t total_;
  std::atomic<size_t> done_{0};
  bool enabled_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace pgolf
