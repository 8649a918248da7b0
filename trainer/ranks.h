// Data-parallel training runs one process per GPU (a "rank"), as torchrun does: a rank that
// crashes or is killed must not leave the others hanging in a collective forever, which NCCL alone
// cannot promise (over NVLink or shared memory a dead peer is simply silent). run_ranks forks the
// ranks, watches them, and stops the rest as soon as one fails. No CUDA here: the parent must not
// touch the GPU before fork, or the children could not.
#pragma once
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

namespace pgolf {

// A few bytes rank 0 publishes for the others before they can start (NCCL's group id), in memory
// shared by the ranks.
class RankBoard {
 public:
  static constexpr size_t kCapacity = 1024;
  void publish(std::span<const std::byte> bytes);  // rank 0, once
  // The published bytes; InputError after timeout_seconds without them.
  std::vector<std::byte> wait(double timeout_seconds) const;

 private:
  friend int run_ranks(int, const std::function<int(int, RankBoard&)>&);
  struct Shared;
  Shared* shared_ = nullptr;
};

// Runs body(rank, board) in `ranks` child processes, ranks 0 .. ranks-1, and waits for them. A rank
// ends with body's return value; an InputError or other exception there prints
// "pgolf: rank R: ..." and ends it with 1. When a rank fails (non-zero exit or a signal) while
// others run, they are sent SIGTERM (each prints that it stops because another rank failed), and
// SIGKILL if still there 10 s later; then InputError names the rank that failed and how.
// Returns 0 when every rank returned 0. Children die with the parent (PR_SET_PDEATHSIG).
int run_ranks(int ranks, const std::function<int(int rank, RankBoard& board)>& body);

}  // namespace pgolf
