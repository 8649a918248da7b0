#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace pgolf {

namespace {

std::atomic<bool> quiet_progress{false};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// "ETA 12.3s" from the rate so far; empty before the first unit.
std::string eta(size_t done, size_t total, double seconds) {
  if (done == 0 || done >= total) return "";
  char text[32];
  std::snprintf(text, sizeof text, " ETA %.1fs", seconds * static_cast<double>(total - done) / static_cast<double>(done));
  return text;
}

}  // namespace

void set_quiet_progress(bool quiet) { quiet_progress = quiet; }

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
    : label_(std::move(label)),
      total_(total),
      enabled_(!quiet_progress && ::isatty(STDERR_FILENO) == 1),
      logged_(!quiet_progress && !enabled_),
      log_seconds_(10) {
  if (const char* every = std::getenv("PGOLF_PROGRESS_SECONDS")) log_seconds_ = std::atof(every);
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (enabled_) draw();
}

Progress::~Progress() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

void Progress::advance(size_t n) {
  done_ += n;
  if (logged_) {
    std::lock_guard lock(mutex_);
    const size_t done = done_;
    if (seconds_since(last_draw_) < log_seconds_ || done >= total_) return;
    last_draw_ = std::chrono::steady_clock::now();
    const double seconds = seconds_since(start_);
    std::fprintf(stderr, "%s %zu/%zu (%.0f%%) %.1fs%s\n", label_.c_str(), done, total_,
                 100.0 * static_cast<double>(done) / static_cast<double>(total_), seconds,
                 eta(done, total_, seconds).c_str());
    return;
  }
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
  const double seconds = seconds_since(start_);
  std::fprintf(stderr, "\r\033[K%s [%.*s%*s] %zu/%zu %.1fs%s", label_.c_str(), filled,
               "##############################", kWidth - filled, "", done, total_, seconds,
               eta(done, total_, seconds).c_str());
  std::fflush(stderr);
}

}  // namespace pgolf
