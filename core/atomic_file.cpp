#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.h"

namespace pgolf {

namespace {
std::string folder_of(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// The temporaries being written, for the signal handler: a slot is free (0), being filled (1) or
// holds a path (2). Only what the handler may touch: fixed buffers, atomics, unlink, sigaction, raise.
constexpr int kSlots = 32;
constexpr size_t kPathBytes = 4096;
char g_temporaries[kSlots][kPathBytes];
std::atomic<int> g_slot_state[kSlots];

// SIGINT, SIGTERM or SIGHUP while writing: the temporaries go, then the signal does what it would
// have done. A command that handles these signals itself (train saves its state) keeps its own.
void remove_temporaries_then_reraise(int signal) {
  for (int i = 0; i < kSlots; ++i)
    if (g_slot_state[i].load() == 2) ::unlink(g_temporaries[i]);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  ::sigemptyset(&fallback.sa_mask);
  ::sigaction(signal, &fallback, nullptr);
  ::raise(signal);
}

void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction current {};
      if (::sigaction(signal, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction cleanup {};
      cleanup.sa_handler = remove_temporaries_then_reraise;
      ::sigemptyset(&cleanup.sa_mask);
      ::sigaction(signal, &cleanup, nullptr);
    }
  });
}

// A slot holding path, or -1 when all are taken or the path is too long (then a signal leaves the
// temporary, as SIGKILL does, for the next write to remove).
int track_temporary(const std::string& path) {
  if (path.size() >= kPathBytes) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int free = 0;
    if (!g_slot_state[i].compare_exchange_strong(free, 1)) continue;
    std::memcpy(g_temporaries[i], path.c_str(), path.size() + 1);
    g_slot_state[i].store(2);
    return i;
  }
  return -1;
}

void untrack_temporary(int slot) {
  if (slot >= 0) g_slot_state[slot].store(0);
}

// Temporaries are TARGET.tmp.PID.XXXXXX. A writer killed before commit (SIGKILL, OOM, power loss)
// cannot remove its own; the next write to the same target removes those whose writer is gone.
std::string temp_prefix(const std::string& target) { return target + ".tmp."; }

void remove_stale_temporaries(const std::string& target) {
  namespace fs = std::filesystem;
  std::string prefix = fs::path(temp_prefix(target)).filename().string();
  std::error_code ec;
  for (fs::directory_iterator it(folder_of(target), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const char* digits = name.c_str() + prefix.size();
    char* rest = nullptr;
    long pid = std::strtol(digits, &rest, 10);
    if (rest == digits || pid <= 0 || std::strlen(rest) != 7 || rest[0] != '.') continue;
    // Alive (or alive under another user: EPERM) means a write in progress: leave it.
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;  // another writer may remove it first
    fs::remove(it->path(), ignored);
  }
}
}  // namespace

AtomicFile::AtomicFile(std::string target, bool overwrite) : target_(std::move(target)) {
  if (!overwrite && std::filesystem::exists(target_))
    throw InputError(target_ + ": exists; pass --force to replace it");
  remove_stale_temporaries(target_);
  temp_ = temp_prefix(target_) + std::to_string(::getpid()) + ".XXXXXX";
  install_cleanup_handlers();
  fd_ = ::mkstemp(temp_.data());
  if (fd_ < 0) throw InputError(target_ + ": cannot create a temporary file: " + std::strerror(errno));
  slot_ = track_temporary(temp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
  untrack_temporary(slot_);
}

void AtomicFile::write(std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    // A full disk or a lost device is the machine's state, not a bug: exit 2, naming the user's path.
    if (n <= 0)
      throw InputError(target_ + ": cannot write (" + std::strerror(errno) + ") with " +
                       std::to_string(bytes.size() - done) + " bytes still to write; nothing was replaced");
    done += static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fchmod(fd_, 0644) != 0 || ::fsync(fd_) != 0)
    throw InputError(target_ + ": cannot flush to disk (" + std::string(std::strerror(errno)) + "); nothing was replaced");
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    int err = errno;
    ::unlink(temp_.c_str());
    throw InputError(target_ + ": cannot put the written file in place (" + std::string(std::strerror(err)) +
                     "); nothing was replaced");
  }
  int dir = ::open(folder_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomic(const std::string& target, std::span<const uint8_t> bytes, bool overwrite) {
  AtomicFile file(target, overwrite);
  file.write(bytes);
  file.commit();
}

}  // namespace pgolf
