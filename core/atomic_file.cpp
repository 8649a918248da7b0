#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace pgolf {

namespace {
std::string folder_of(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
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
  fd_ = ::mkstemp(temp_.data());
  if (fd_ < 0) throw InputError(target_ + ": cannot create a temporary file: " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
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
