#include "trainer/ranks.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "core/error.h"

namespace pgolf {

struct RankBoard::Shared {
  std::atomic<uint32_t> published{0};  // lock-free, so it works across processes
  uint32_t size = 0;
  std::byte bytes[kCapacity];
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

void RankBoard::publish(std::span<const std::byte> bytes) {
  require(bytes.size() <= kCapacity, "RankBoard: at most " + std::to_string(kCapacity) + " bytes");
  std::memcpy(shared_->bytes, bytes.data(), bytes.size());
  shared_->size = static_cast<uint32_t>(bytes.size());
  shared_->published.store(1, std::memory_order_release);
}

std::vector<std::byte> RankBoard::wait(double timeout_seconds) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (shared_->published.load(std::memory_order_acquire) == 0) {
    require(std::chrono::steady_clock::now() < deadline, "rank 0 did not publish the group id in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {shared_->bytes, shared_->bytes + shared_->size};
}

namespace {

// What a rank prints when the supervisor stops it; built before the handler is installed because a
// signal handler may only write(2) and _exit.
char stop_message[96];
size_t stop_message_size = 0;

void stop_on_signal(int) {
  (void)!::write(STDERR_FILENO, stop_message, stop_message_size);
  ::_exit(1);
}

[[noreturn]] void run_child(int rank, RankBoard& board, const std::function<int(int, RankBoard&)>& body,
                            pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
  stop_message_size = static_cast<size_t>(std::snprintf(
      stop_message, sizeof stop_message, "pgolf: rank %d: stopped because another rank failed\n", rank));
  ::signal(SIGTERM, stop_on_signal);
  int code = 1;
  try {
    code = body(rank, board);
  } catch (const InputError& e) {
    std::fprintf(stderr, "pgolf: rank %d: error: %s\n", rank, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf: rank %d: internal error: %s\n", rank, e.what());
  }
  std::fflush(nullptr);
  ::_exit(code);  // not exit(): the parent's atexit handlers and static destructors are the parent's
}

std::string describe_end(int status) {
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    return "was killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return "failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
}

}  // namespace

int run_ranks(int ranks, const std::function<int(int, RankBoard&)>& body) {
  require(ranks >= 1, "need at least one rank");
  void* memory = ::mmap(nullptr, sizeof(RankBoard::Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  require(memory != MAP_FAILED, std::string("cannot map memory shared by the ranks: ") + std::strerror(errno));
  RankBoard board;
  board.shared_ = new (memory) RankBoard::Shared();
  std::fflush(nullptr);  // or the children would print the parent's buffered output again
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids;
  std::string failure;
  for (int r = 0; r < ranks && failure.empty(); ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) run_child(r, board, body, parent);
    if (pid < 0)
      failure = "cannot start rank " + std::to_string(r) + ": " + std::strerror(errno);
    else
      pids.push_back(pid);
  }

  // Watch the ranks; on the first failure stop the others (TERM, then KILL after a grace period).
  using Clock = std::chrono::steady_clock;
  std::vector<bool> running(pids.size(), true);
  size_t alive = pids.size();
  Clock::time_point kill_at{};
  auto signal_running = [&](int signal) {
    for (size_t r = 0; r < pids.size(); ++r)
      if (running[r]) ::kill(pids[r], signal);
  };
  if (!failure.empty()) {
    signal_running(SIGTERM);
    kill_at = Clock::now() + std::chrono::seconds(10);
  }
  while (alive > 0) {
    bool reaped = false;
    for (size_t r = 0; r < pids.size(); ++r) {
      int status = 0;
      if (!running[r] || ::waitpid(pids[r], &status, WNOHANG) != pids[r]) continue;
      running[r] = false;
      --alive;
      reaped = true;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (ok || !failure.empty()) continue;
      failure = "rank " + std::to_string(r) + " of " + std::to_string(ranks) + " " + describe_end(status);
      if (alive > 0) {
        failure += "; the other ranks were stopped";
        signal_running(SIGTERM);
        kill_at = Clock::now() + std::chrono::seconds(10);
      }
    }
    if (kill_at != Clock::time_point{} && Clock::now() >= kill_at) {
      signal_running(SIGKILL);
      kill_at = {};
    }
    if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::munmap(memory, sizeof(RankBoard::Shared));
  require(failure.empty(), failure);
  return 0;
}

}  // namespace pgolf
