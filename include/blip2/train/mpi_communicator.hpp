#pragma once
// The Communicator over MPI, for processes on one machine or many (host memory): built when
// BLIP2_MPI is defined (CMake: -DBLIP2_MPI=ON, which links MPI::MPI_CXX into blip2::blip2).
//
// MpiSession initialises MPI for the program's lifetime (unless the program already did) and
// finalises what it initialised. MpiCommunicator works on a duplicate of the given communicator,
// so its collectives never match the program's own messages, with errors returned rather than
// fatal: a failed collective throws CommunicatorError naming the operation and MPI's reason.
// A rank that fails on its own should call abort(): the others may be waiting in a collective that
// will never complete, and MPI_Abort ends the whole job (mpirun also ends it when a rank exits
// without finalising).
#ifndef BLIP2_MPI
#error "blip2/train/mpi_communicator.hpp needs MPI: build with -DBLIP2_MPI=ON (or define BLIP2_MPI and link MPI)"
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#include "communicator.hpp"

namespace blip2 {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    // MPI_THREAD_MULTIPLE lets the gradient exchange run on its own thread during backward; with
    // less, the exchange runs on the main thread (MpiCommunicator::duplicate_for_thread).
    int provided = 0;
    BLIP2_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) == MPI_SUCCESS, CommunicatorError,
                "MPI_Init_thread failed");
    owned_ = true;
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  // Whether an MPI launcher (mpirun / mpiexec of Open MPI or MPICH, srun with PMI) started this
  // process: a plain run then stays a single process without touching MPI.
  static bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
      if (std::getenv(v)) return true;
    return false;
  }

 private:
  bool owned_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  // yielding: all-reduce by MPI_Iallreduce, testing for completion with a short sleep in between,
  // so that a thread waiting for its peers leaves the core to the compute threads (MPI's blocking
  // calls spin); duplicate_for_thread() makes the communication thread's communicator this way.
  explicit MpiCommunicator(MPI_Comm parent = MPI_COMM_WORLD, bool yielding = false) : yielding_(yielding) {
    check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm local = MPI_COMM_NULL;  // the ranks that share this machine's memory
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    int local_size = 0;
    check(MPI_Comm_size(local, &local_size), "MPI_Comm_size");
    MPI_Comm_free(&local);
    one_machine_ = local_size == size_;
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  bool one_machine() const override { return one_machine_; }

  std::unique_ptr<Communicator> duplicate_for_thread() const override {
    int level = MPI_THREAD_SINGLE;
    check(MPI_Query_thread(&level), "MPI_Query_thread");
    if (level != MPI_THREAD_MULTIPLE) return nullptr;
    return std::make_unique<MpiCommunicator>(comm_, /*yielding=*/true);
  }

  void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const override {
    BLIP2_CHECK(bytes <= std::size_t(INT_MAX), CommunicatorError, "MPI all_gather: ", bytes,
                " bytes per rank is more than one MPI call moves (", INT_MAX, ")");
    check(MPI_Allgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_), "MPI_Allgather");
  }
  void all_reduce_sum(float* data, std::size_t count) const override { reduce(data, count, MPI_FLOAT); }
  void all_reduce_sum(double* data, std::size_t count) const override { reduce(data, count, MPI_DOUBLE); }
  void broadcast_bytes(void* data, std::size_t bytes, int root) const override {
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes; done += kChunk)
      check(MPI_Bcast(p + done, int(std::min(kChunk, bytes - done)), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  void barrier() const override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  // Ends every rank of the job with `code`.
  [[noreturn]] void abort(int code) const {
    MPI_Abort(comm_, code);
    std::exit(code);  // MPI_Abort does not return; this keeps the compiler's [[noreturn]] promise
  }

 private:
  static constexpr std::size_t kChunk = std::size_t(1) << 30;  // elements per MPI call (counts are int)

  template <class T>
  void reduce(T* data, std::size_t count, MPI_Datatype type) const {
    for (std::size_t done = 0; done < count; done += kChunk) {
      const int n = int(std::min(kChunk, count - done));
      if (!yielding_) {
        check(MPI_Allreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_), "MPI_Allreduce");
        continue;
      }
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Iallreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_, &request), "MPI_Iallreduce");
      for (int finished = 0;;) {
        check(MPI_Test(&request, &finished, MPI_STATUS_IGNORE), "MPI_Test");
        if (finished) break;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  void check(int rc, const char* op) const {
    if (rc == MPI_SUCCESS) return;
    char reason[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, reason, &length);
    throw CommunicatorError(detail::cat(op, " failed on rank ", rank_, " of ", size_, ": ", std::string(reason, length)));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool yielding_ = false, one_machine_ = true;
};

}  // namespace blip2
