#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>

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

}  // namespace
}  // namespace pgolf
