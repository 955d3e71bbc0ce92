#pragma once
// The Communicator over NCCL, for GPU tensors (one GPU per rank): built when BLIP2_NCCL is defined
// in a CUDA translation unit (CMake: -DBLIP2_CUDA=ON -DBLIP2_NCCL=ON, which links NCCL). NCCL needs
// every rank to start from the same ncclUniqueId: rank 0 makes it and a host communicator (MPI)
// broadcasts it, so a job is launched with mpirun as on the CPU.
//
// The collectives take GPU memory (device_memory() is true) and run on the default stream, which
// the CUDA back end's kernels use too; each call waits for its result, so a caller may read it at
// once. Select the rank's GPU (cudaSetDevice) before constructing.
#ifndef BLIP2_NCCL
#error "blip2/train/nccl_communicator.hpp needs NCCL: build with -DBLIP2_CUDA=ON -DBLIP2_NCCL=ON"
#endif
#include <cuda_runtime.h>
#include <nccl.h>

#include "communicator.hpp"

namespace blip2 {

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const Communicator& bootstrap) : rank_(bootstrap.rank()), size_(bootstrap.world_size()) {
    BLIP2_CHECK(!bootstrap.device_memory(), CommunicatorError, "NCCL: the bootstrap communicator must be a host one (MPI)");
    ncclUniqueId id{};
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    bootstrap.broadcast_bytes(&id, sizeof id, 0);
    check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  bool device_memory() const override { return true; }

  void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const override {
    check(ncclAllGather(send, recv, bytes, ncclUint8, comm_, kStream), "ncclAllGather");
    wait("ncclAllGather");
  }
  void all_reduce_sum(float* data, std::size_t count) const override { reduce(data, count, ncclFloat32); }
  void all_reduce_sum(double* data, std::size_t count) const override { reduce(data, count, ncclFloat64); }
  void broadcast_bytes(void* data, std::size_t bytes, int root) const override {
    check(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, kStream), "ncclBroadcast");
    wait("ncclBroadcast");
  }
  // NCCL has no barrier: an all-reduce of one element every rank must join stands in for it.
  void barrier() const override {
    float* one = nullptr;
    BLIP2_CHECK(cudaMalloc(&one, sizeof(float)) == cudaSuccess, CommunicatorError, "NCCL barrier: cudaMalloc failed");
    const ncclResult_t rc = ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, comm_, kStream);
    wait("NCCL barrier");
    cudaFree(one);
    check(rc, "NCCL barrier");
  }

 private:
  static constexpr cudaStream_t kStream = nullptr;  // the default stream

  void reduce(void* data, std::size_t count, ncclDataType_t type) const {
    check(ncclAllReduce(data, data, count, type, ncclSum, comm_, kStream), "ncclAllReduce");
    wait("ncclAllReduce");
  }
  void wait(const char* op) const {
    const cudaError_t rc = cudaStreamSynchronize(kStream);
    BLIP2_CHECK(rc == cudaSuccess, CommunicatorError, op, " on rank ", rank_, ": ", cudaGetErrorString(rc));
  }
  void check(ncclResult_t rc, const char* op) const {
    BLIP2_CHECK(rc == ncclSuccess, CommunicatorError, op, " failed on rank ", rank_, " of ", size_, ": ",
                ncclGetErrorString(rc));
  }

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace blip2
