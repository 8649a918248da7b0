// Every file pgolf writes goes through here: the bytes land in a temporary file in the
// same folder, are fsync'd, then renamed over the target, so a crash at any point leaves
// either the old file or the new one, never half of one. A writer killed before its rename
// leaves its temporary (TARGET.tmp.PID.XXXXXX) behind; the next write to that target removes
// the temporaries of writers that are no longer running. SIGINT, SIGTERM and SIGHUP remove the
// temporaries being written before they end the process (unless the command handles them itself).
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace pgolf {

class AtomicFile {
 public:
  // Refuses (InputError) an existing target unless overwrite is set.
  AtomicFile(std::string target, bool overwrite);
  ~AtomicFile();  // discards the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::span<const uint8_t> bytes);
  void commit();  // fsync, rename over the target, fsync the folder

 private:
  std::string target_;
  std::string temp_;
  int fd_ = -1;
  int slot_ = -1;  // where a signal handler finds temp_ to remove it
};

// Writes a whole file atomically.
void write_file_atomic(const std::string& target, std::span<const uint8_t> bytes, bool overwrite);

}  // namespace pgolf
