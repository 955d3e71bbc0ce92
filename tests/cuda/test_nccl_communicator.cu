// The NCCL communicator on GPU memory, as one rank (MPI started as a singleton): every collective
// and the tensor helpers on top of them. Built with -DBLIP2_MPI=ON -DBLIP2_NCCL=ON (else empty);
// runs only with a GPU. Several ranks need several GPUs: `mpirun -np N` on such a machine.
#include <doctest/doctest.h>

#include <blip2/blip2.hpp>

#ifdef BLIP2_NCCL
#include <blip2/train/mpi_communicator.hpp>
#include <blip2/train/nccl_communicator.hpp>

using namespace blip2;

TEST_CASE("nccl: collectives on GPU memory, one rank") {
  MpiSession mpi(nullptr, nullptr);
  const MpiCommunicator host;
  const NcclCommunicator gpu(host);
  CHECK(gpu.device_memory());
  CHECK(gpu.world_size() == host.world_size());
  const auto x = Tensor<float>::from_vector({2, 2}, {1, 2, 3, 4}).to<cuda>();
  gpu.all_reduce_sum(x.data(), 4);
  CHECK(x.to<cpu>().to_vector() == std::vector<float>{1, 2, 3, 4});
  const auto all = all_gather(x, gpu);
  CHECK(to_string(all.shape()) == "[2,2]");
  gpu.broadcast_bytes(x.data(), 4 * sizeof(float), 0);
  gpu.barrier();
  CHECK_THROWS_AS(detail::gather_rows(Tensor<float>::ones({1, 2}), gpu), DeviceError);
}
#endif
