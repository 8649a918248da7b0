// run_ranks: every rank runs, rank 0's bytes reach the others, and a rank that fails or is killed
// stops the rest promptly with a message naming it, even when they would otherwise wait forever
// (as ranks blocked in a collective on a dead peer do).
#include "trainer/ranks.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void wait_forever() {
  while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(Ranks, EveryRankRunsAndRankZerosBytesReachTheOthers) {
  test::TempDir dir;
  const int code = run_ranks(3, [&](int rank, RankBoard& board) {
    const std::string message = "group id 1234";
    if (rank == 0) board.publish(std::as_bytes(std::span(message)));
    const std::vector<std::byte> got = board.wait(30);
    std::ofstream(dir.file("rank" + std::to_string(rank))) << std::string(reinterpret_cast<const char*>(got.data()), got.size());
    return 0;
  });
  EXPECT_EQ(code, 0);
  for (int rank = 0; rank < 3; ++rank) {
    std::ifstream in(dir.file("rank" + std::to_string(rank)));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "group id 1234") << "rank " << rank;
  }
}

TEST(Ranks, AKilledRankStopsTheWaitingOthersWithItsName) {
  const auto start = Clock::now();
  const std::string message = test::input_error([] {
    run_ranks(3, [](int rank, RankBoard&) -> int {
      if (rank == 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ::kill(::getpid(), SIGKILL);
      }
      wait_forever();
    });
  });
  EXPECT_NE(message.find("rank 1 of 3 was killed by signal 9"), std::string::npos) << message;
  EXPECT_NE(message.find("the other ranks were stopped"), std::string::npos) << message;
  EXPECT_LT(seconds_since(start), 8.0) << "the others were stopped by TERM, not left to the KILL fallback";
}

TEST(Ranks, AFailingRankIsNamedWithItsExitStatus) {
  const std::string message = test::input_error([] {
    run_ranks(2, [](int rank, RankBoard&) -> int {
      if (rank == 0) return 3;
      wait_forever();
    });
  });
  EXPECT_NE(message.find("rank 0 of 2 failed (exit status 3)"), std::string::npos) << message;
}

TEST(Ranks, AnErrorInsideARankEndsItWithStatusOne) {
  const std::string message = test::input_error([] {
    run_ranks(1, [](int, RankBoard& board) -> int {
      board.wait(0.05);  // nobody publishes: InputError
      return 0;
    });
  });
  EXPECT_NE(message.find("rank 0 of 1 failed (exit status 1)"), std::string::npos) << message;
  EXPECT_EQ(message.find("other ranks"), std::string::npos) << "there were none: " << message;
}

TEST(Ranks, ARankThatIgnoresTermIsKilled) {
  const auto start = Clock::now();
  const std::string message = test::input_error([] {
    run_ranks(2, [](int rank, RankBoard&) -> int {
      if (rank == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // after rank 1 ignores TERM
        return 1;
      }
      ::signal(SIGTERM, SIG_IGN);
      wait_forever();
    });
  });
  EXPECT_NE(message.find("rank 0 of 2 failed"), std::string::npos) << message;
  const double seconds = seconds_since(start);
  EXPECT_GE(seconds, 9.0);
  EXPECT_LT(seconds, 20.0);
}

}  // namespace
}  // namespace pgolf
