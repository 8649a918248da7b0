#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

namespace pgolf {

ProgressCounter::ProgressCounter(const ProgressReport& report, std::string stage, size_t total)
    : report_(report), stage_(std::move(stage)), total_(total) {
  if (report_) report_(stage_, 0, total_);
}

void ProgressCounter::advance(size_t n) {
  if (!report_) return;
  std::lock_guard lock(mutex_);
  done_ += n;
  report_(stage_, done_, total_);
}

ProgressReport progress_bars() {
  struct Bars {
    std::string stage;
    std::unique_ptr<Progress> bar;
    size_t shown = 0;
  };
  auto bars = std::make_shared<Bars>();
  return [bars](const std::string& stage, size_t done, size_t total) {
    if (!bars->bar || stage != bars->stage) {
      bars->bar.reset();  // clears the last stage's line first
      bars->bar = std::make_unique<Progress>(stage, total);
      bars->stage = stage;
      bars->shown = 0;
    }
    if (done > bars->shown) bars->bar->advance(done - bars->shown);
    bars->shown = done;
    if (done >= total) bars->bar.reset();
  };
}

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
