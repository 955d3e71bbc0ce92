#pragma once
// The data-parallel job this process is a rank of: MPI's world when blip2 was built with BLIP2_MPI
// and started by an MPI launcher (mpirun -np N blip2 train ...), else one process. MPI is set up
// on first use and finalised at exit.
#include <blip2/train/communicator.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#ifdef BLIP2_MPI
#include <blip2/train/mpi_communicator.hpp>
#endif

namespace blip2::cli {

#ifdef BLIP2_MPI
struct MpiJob {
  MpiSession session{nullptr, nullptr};
  MpiCommunicator comm;  // destroyed before the session finalises MPI
};
#endif

inline const Communicator& job() {
#ifdef BLIP2_MPI
  if (MpiSession::launched_by_mpirun()) {
    static MpiJob mpi;
    return mpi.comm;
  }
#endif
  static const SingleProcess one;
  return one;
}

// "" on one process, "rank R/W: " in a job of several: the prefix of a rank's own messages.
inline std::string rank_prefix(const Communicator& comm) {
  if (comm.world_size() == 1) return "";
  return "rank " + std::to_string(comm.rank()) + "/" + std::to_string(comm.world_size()) + ": ";
}

// A rank of a job of several that fails alone would leave the others waiting in a collective: it
// names the error and ends the whole job (MPI_Abort).
[[noreturn]] inline void abort_job(const Communicator& comm, const char* command, const char* what) {
  std::fprintf(stderr, "blip2 %s: %serror: %s\n", command, rank_prefix(comm).c_str(), what);
  std::fflush(stderr);
#ifdef BLIP2_MPI
  if (comm.world_size() > 1) static_cast<const MpiCommunicator&>(comm).abort(1);
#endif
  std::exit(1);
}

}  // namespace blip2::cli
