#include "gpu/rank_group.h"

#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/error.h"
#include "kernels/cuda_check.h"

namespace pgolf::cuda {

namespace {

void check(ncclResult_t status, const char* call) {
  if (status != ncclSuccess) throw std::runtime_error(std::string(call) + ": " + ncclGetErrorString(status));
}
#define PGOLF_NCCL_CHECK(call) check((call), #call)

void disable_nvls() { ::setenv("NCCL_NVLS_ENABLE", "0", 1); }

}  // namespace

struct RankGroup::Comm {
  ncclComm_t comm = nullptr;
  ~Comm() {
    if (comm) ncclCommDestroy(comm);
  }
};

RankGroup::RankGroup(std::unique_ptr<Comm> comm, int rank, int ranks)
    : comm_(std::move(comm)), rank_(rank), ranks_(ranks) {}
RankGroup::~RankGroup() = default;

std::vector<std::byte> RankGroup::new_id() {
  disable_nvls();
  ncclUniqueId id;
  PGOLF_NCCL_CHECK(ncclGetUniqueId(&id));
  const auto* bytes = reinterpret_cast<const std::byte*>(id.internal);
  return {bytes, bytes + sizeof id.internal};
}

std::unique_ptr<RankGroup> RankGroup::join(std::span<const std::byte> id, int rank, int ranks) {
  ncclUniqueId nccl_id;
  require(id.size() == sizeof nccl_id.internal, "RankGroup::join: a group id has " +
                                                    std::to_string(sizeof nccl_id.internal) + " bytes");
  std::memcpy(nccl_id.internal, id.data(), id.size());
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  require(rank < devices, std::to_string(ranks) + " ranks need " + std::to_string(ranks) + " GPUs; this machine has " +
                              std::to_string(devices));
  PGOLF_CUDA_CHECK(cudaSetDevice(rank));
  disable_nvls();
  auto comm = std::make_unique<Comm>();
  PGOLF_NCCL_CHECK(ncclCommInitRank(&comm->comm, ranks, nccl_id, rank));
  return std::unique_ptr<RankGroup>(new RankGroup(std::move(comm), rank, ranks));
}

std::vector<std::unique_ptr<RankGroup>> RankGroup::local(int devices) {
  disable_nvls();
  std::vector<ncclComm_t> comms(static_cast<size_t>(devices));
  std::vector<int> ids(static_cast<size_t>(devices));
  for (int i = 0; i < devices; ++i) ids[static_cast<size_t>(i)] = i;
  PGOLF_NCCL_CHECK(ncclCommInitAll(comms.data(), devices, ids.data()));
  std::vector<std::unique_ptr<RankGroup>> groups;
  for (int i = 0; i < devices; ++i) {
    auto comm = std::make_unique<Comm>();
    comm->comm = comms[static_cast<size_t>(i)];
    groups.push_back(std::unique_ptr<RankGroup>(new RankGroup(std::move(comm), i, devices)));
  }
  return groups;
}

void RankGroup::sum(float* data, size_t count, cudaStream_t stream) {
  PGOLF_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_->comm, stream));
}

void RankGroup::sum(double* data, size_t count, cudaStream_t stream) {
  PGOLF_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat64, ncclSum, comm_->comm, stream));
}

void RankGroup::broadcast(float* data, size_t count, int root, cudaStream_t stream) {
  PGOLF_NCCL_CHECK(ncclBroadcast(data, data, count, ncclFloat32, root, comm_->comm, stream));
}

void RankGroup::begin_group() { PGOLF_NCCL_CHECK(ncclGroupStart()); }
void RankGroup::end_group() { PGOLF_NCCL_CHECK(ncclGroupEnd()); }

}  // namespace pgolf::cuda
