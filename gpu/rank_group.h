// One rank's membership of an NCCL communicator: the collectives the data-parallel trainer needs,
// in place, each on a stream. NCCL's NVLink multicast (NVLS) is always turned off
// (NCCL_NVLS_ENABLE=0) before a communicator is made: the GPU machines this runs on must not use it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace pgolf::cuda {

class RankGroup {
 public:
  // A fresh group id: rank 0 makes it and hands it to the others (trainer/ranks.h's RankBoard).
  static std::vector<std::byte> new_id();
  // Makes device `rank` current and joins the group `id` as `rank` of `ranks`; blocks until all
  // have joined. InputError when this machine has no device `rank`.
  static std::unique_ptr<RankGroup> join(std::span<const std::byte> id, int rank, int ranks);
  // Devices 0 .. devices-1 of this process as one group, rank i on device i (tests, one thread per rank).
  static std::vector<std::unique_ptr<RankGroup>> local(int devices);
  ~RankGroup();

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  void sum(float* data, size_t count, cudaStream_t stream);  // every rank gets the sum over ranks
  void sum(double* data, size_t count, cudaStream_t stream);
  void broadcast(float* data, size_t count, int root, cudaStream_t stream);  // root's values to all
  // Collectives issued between these two launch as one (ncclGroupStart / ncclGroupEnd).
  void begin_group();
  void end_group();

 private:
  struct Comm;
  RankGroup(std::unique_ptr<Comm> comm, int rank, int ranks);
  std::unique_ptr<Comm> comm_;
  int rank_, ranks_;
};

}  // namespace pgolf::cuda
