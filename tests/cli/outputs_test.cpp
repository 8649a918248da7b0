// Outputs are checked before any work (issue: never lose a user's work): an output that is one of
// the inputs is refused even with --force (as zstd refuses src == dst), an output in a folder that
// does not exist or that is a folder is refused at once, and the inputs stay as they were.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "cli/run_pgolf.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

// Runs args: exit 2, one line naming `says`.
void expect_refused(const std::string& args, const std::string& says) {
  auto r = pgolf(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(says), std::string::npos) << args << "\n" << r.out;
}

TEST(CliOutputs, AnInputIsNeverReplacedEvenWithForce) {
  test::TempDir dir;
  const std::string slice = test::base9_subset(dir, {"blocks.0.mlp.fc.weight", "blocks.0.attn.q_gain"}, "m.safetensors");
  const std::vector<uint8_t> before = test::read_bytes(slice);
  expect_refused("compress " + slice + " -o " + slice + " --force", "is also an input");
  // A folder checkpoint: one of its files as the output.
  expect_refused("compress " + dir.path().string() + " -o " + slice + " --force", "is also an input");
  EXPECT_EQ(test::read_bytes(slice), before);
  const std::string artifact = dir.file("a.pgz");
  ASSERT_EQ(pgolf("compress " + slice + " -o " + artifact).exit_code, 0);
  const std::vector<uint8_t> packed = test::read_bytes(artifact);
  expect_refused("decompress " + artifact + " -o " + artifact + " --force", "is also an input");
  EXPECT_EQ(test::read_bytes(artifact), packed);
  // calibrate: a train shard of its data folder.
  std::filesystem::create_directories(dir.path() / "data");
  const std::string shard = dir.file("data/c_train_000000.bin");
  std::filesystem::copy_file(test::sample_path("sp1024/corpus_train_000000.bin"), shard);
  expect_refused("calibrate " + test::sample_path("base9") + " --data " + dir.file("data") + " --device cpu -o " + shard +
                     " --force",
                 "is also an input");
  EXPECT_EQ(std::filesystem::file_size(shard), std::filesystem::file_size(test::sample_path("sp1024/corpus_train_000000.bin")));
}

TEST(CliOutputs, AnOutputThatCannotBeWrittenIsRefusedBeforeAnyWork) {
  test::TempDir dir;
  const std::string base9 = test::sample_path("base9");
  expect_refused("compress " + base9 + " -o " + dir.file("missing/a.pgz"), "does not exist");
  expect_refused("compress " + base9 + " -o " + dir.path().string() + " --force", "is a folder");
  expect_refused("decompress " + dir.file("none.pgz") + " -o " + dir.file("missing/b.safetensors"), "does not exist");
  // train: the README's --out runs/base without runs/ stops at once, not after training.
  const auto start = std::chrono::steady_clock::now();
  expect_refused("train --data " + test::sample_path("sp1024") + " --out " + dir.file("runs/base") +
                     " --steps 1000000 --device cpu",
                 "does not exist");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("runs")));
}

}  // namespace
}  // namespace pgolf
