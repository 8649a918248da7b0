// Progress: the one protocol libraries report through, and the bar the CLI draws from it.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

namespace pgolf {

// `done` of `total` units of the named stage are finished. Libraries call it one call at a time
// with `done` rising (ProgressCounter sees to both from any thread); the CLI draws it
// (progress_bars). An empty function reports nowhere.
using ProgressReport = std::function<void(const std::string& stage, size_t done, size_t total)>;

// One stage's units counted from any thread, each step reported in order; 0 is reported at once.
class ProgressCounter {
 public:
  ProgressCounter(const ProgressReport& report, std::string stage, size_t total);
  void advance(size_t n = 1);

 private:
  const ProgressReport& report_;
  std::string stage_;
  size_t total_;
  size_t done_ = 0;
  std::mutex mutex_;
};

// Progress on stderr: a one-line bar redrawn in place when stderr is a terminal; otherwise (a log)
// a plain line with the elapsed time and an estimate of the rest every PGOLF_PROGRESS_SECONDS
// seconds (default 10); nothing at all after set_quiet_progress(true) (the CLI's -q).
void set_quiet_progress(bool quiet);

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
  bool enabled_, logged_;  // the bar on a terminal; lines in a log
  double log_seconds_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// What the CLI hands libraries: a Progress bar per stage, replaced when the stage changes.
ProgressReport progress_bars();

}  // namespace pgolf
