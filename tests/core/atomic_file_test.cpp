#include "core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

TEST(AtomicFile, WritesReplacesOnlyWhenAskedAndLeavesNoTemporaries) {
  test::TempDir dir;
  std::string path = dir.file("out.bin");
  std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5};
  write_file_atomic(path, a, false);
  EXPECT_EQ(test::read_bytes(path), a);
  EXPECT_THROW(write_file_atomic(path, b, false), InputError);
  EXPECT_EQ(test::read_bytes(path), a);
  write_file_atomic(path, b, true);
  EXPECT_EQ(test::read_bytes(path), b);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(AtomicFile, AbandonedWriteLeavesTheOldFile) {
  test::TempDir dir;
  std::string path = dir.file("out.bin");
  std::vector<uint8_t> a = {9, 9};
  write_file_atomic(path, a, false);
  {
    AtomicFile f(path, true);
    std::vector<uint8_t> partial = {1};
    f.write(partial);
    // no commit: as if the writer died
  }
  EXPECT_EQ(test::read_bytes(path), a);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(AtomicFile, NextWriteRemovesTemporariesOfDeadWritersOnly) {
  test::TempDir dir;
  std::string path = dir.file("out.bin");
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // a writer that is gone, as after SIGKILL
  std::string dead = path + ".tmp." + std::to_string(child) + ".abcdef";
  std::string alive = path + ".tmp." + std::to_string(::getppid()) + ".abcdef";
  std::string other = dir.file("other.bin.tmp." + std::to_string(child) + ".abcdef");
  std::string unrelated = path + ".tmp.notapid";
  for (const auto& p : {dead, alive, other, unrelated}) std::ofstream(p) << "partial";

  write_file_atomic(path, std::vector<uint8_t>{1, 2}, false);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive));      // a write in progress
  EXPECT_TRUE(std::filesystem::exists(other));      // another target's
  EXPECT_TRUE(std::filesystem::exists(unrelated));  // not a name pgolf makes
  EXPECT_EQ(test::read_bytes(path), (std::vector<uint8_t>{1, 2}));
}

}  // namespace
}  // namespace pgolf
