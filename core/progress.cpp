#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace pgolf {

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (enabled_) draw();
}

Progress::~Progress() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

void Progress::advance(size_t n) {
  done_ += n;
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  draw();
}

void Progress::draw() {
  constexpr int kWidth = 30;
  size_t done = done_;
  int filled = total_ ? static_cast<int>(kWidth * done / total_) : kWidth;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "\r\033[K%s [%.*s%*s] %zu/%zu %.1fs", label_.c_str(), filled,
               "##############################", kWidth - filled, "", done, total_, seconds);
  std::fflush(stderr);
}

}  // namespace pgolf
