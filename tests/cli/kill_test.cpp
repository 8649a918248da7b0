// The kill test: every file pgolf writes goes through core/atomic_file, so a SIGKILL at any moment
// leaves the old output or the complete new one, never part of one; the temporary a killed writer
// leaves behind goes on the next write to that target. Kills land at uniformly random times over a
// whole run. 5 kills per writer here (about 10 s in all); scripts/kill-test.sh runs 200 (PGOLF_KILLS).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "support/test_support.h"

namespace pgolf {
namespace {

using Args = std::vector<std::string>;

pid_t spawn(const Args& args) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv = {const_cast<char*>(PGOLF_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (std::freopen("/dev/null", "w", stdout) == nullptr || std::freopen("/dev/null", "w", stderr) == nullptr) ::_exit(126);
    ::execv(PGOLF_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

// Runs pgolf to the end; returns its wall time in seconds.
double run_to_end(const Args& args) {
  auto start = std::chrono::steady_clock::now();
  int status = 0;
  ::waitpid(spawn(args), &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "pgolf " << args[0] << " failed";
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int temporaries_of(const std::string& output) {
  std::string prefix = std::filesystem::path(output).filename().string() + ".tmp.";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(output).parent_path()))
    n += e.path().filename().string().starts_with(prefix);
  return n;
}

// old_args writes the file the kills must not damage; new_args (killed with `signal`) writes
// different bytes. SIGINT, SIGTERM and SIGHUP must leave no temporary; SIGKILL cannot help it.
void kill_writer(const Args& old_args, const Args& new_args, const std::string& output, int signal = SIGKILL) {
  int kills = std::getenv("PGOLF_KILLS") ? std::atoi(std::getenv("PGOLF_KILLS")) : 5;
  double seconds = run_to_end(new_args);
  auto new_bytes = test::read_bytes(output);
  run_to_end(old_args);
  auto old_bytes = test::read_bytes(output);
  ASSERT_NE(old_bytes, new_bytes);

  std::mt19937 rng(20240520);
  std::uniform_real_distribution<double> when(0, 1.2 * seconds);
  int kept_old = 0, wrote_new = 0, left_temporary = 0;
  for (int k = 0; k < kills; ++k) {
    pid_t pid = spawn(new_args);
    std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
    ::kill(pid, signal);
    ::waitpid(pid, nullptr, 0);
    auto bytes = test::read_bytes(output);
    bool is_old = bytes == old_bytes, is_new = bytes == new_bytes;
    ASSERT_TRUE(is_old || is_new) << "kill " << k << ": " << output << " is neither the old file nor the new one";
    kept_old += is_old;
    wrote_new += is_new;
    left_temporary += temporaries_of(output) > 0;
    if (signal != SIGKILL) EXPECT_EQ(temporaries_of(output), 0) << "kill " << k << " by " << strsignal(signal);
    if (is_new) test::write_bytes(output, old_bytes);  // the next kill again has an old file to lose
  }
  // A complete run removes what killed writers left and writes the new file.
  run_to_end(new_args);
  EXPECT_EQ(test::read_bytes(output), new_bytes);
  EXPECT_EQ(temporaries_of(output), 0);
  std::printf("kill test, pgolf %s, %s: %d kills over %.2f s runs: %d left the old file, %d the new one, "
              "%d a temporary (removed by the next write); never anything else\n",
              new_args[0].c_str(), strsignal(signal), kills, seconds, kept_old, wrote_new, left_temporary);
}

// Base9 with a fast compressor: a whole run takes about a second, most of it writing.
void kill_compress(int signal) {
  test::TempDir dir;
  std::string out = dir.file("out.pgz");
  Args common = {"--compressor", "zstd:1", "-o", out, "--force", test::sample_path("base9")};
  Args old_args = {"compress", "--codec", "int8"}, new_args = {"compress", "--codec", "int6"};
  old_args.insert(old_args.end(), common.begin(), common.end());
  new_args.insert(new_args.end(), common.begin(), common.end());
  kill_writer(old_args, new_args, out, signal);
}

// Checkpoint saving: decompress writes a whole safetensors checkpoint.
void kill_decompress(int signal) {
  test::TempDir dir;
  std::string artifact = dir.file("in.pgz"), out = dir.file("out.safetensors");
  run_to_end({"compress", "--compressor", "zstd:1", "-o", artifact, test::sample_path("base9")});
  kill_writer({"decompress", "--dtype", "bf16", "-o", out, "--force", artifact},
              {"decompress", "--dtype", "fp32", "-o", out, "--force", artifact}, out, signal);
}

TEST(KillTest, CompressLeavesTheOldArtifactOrTheNewOne) { kill_compress(SIGKILL); }
TEST(KillTest, DecompressLeavesTheOldCheckpointOrTheNewOne) { kill_decompress(SIGKILL); }
TEST(KillTest, InterruptedCompressLeavesNoTemporary) { kill_compress(SIGINT); }
TEST(KillTest, TerminatedDecompressLeavesNoTemporary) { kill_decompress(SIGTERM); }

}  // namespace
}  // namespace pgolf
