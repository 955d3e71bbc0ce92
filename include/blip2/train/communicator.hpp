#pragma once
// The collectives data-parallel training needs, behind one small interface so that an MPI or NCCL
// engine plugs in without touching the losses or the trainer. `SingleProcess` is the one-process
// engine, where every collective is the identity; mpi_communicator.hpp (host memory) and
// nccl_communicator.hpp (GPU memory) are the others. On top of it: all_reduce_sum_ of a tensor,
// all_gather (no gradient; LAVIS's concat_all_gather) and all_gather_with_grad (LAVIS's
// all_gather_with_grad: the backward sums every rank's gradient of the gathered tensor and keeps
// this rank's rows).
#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

#include "../autograd/node.hpp"
#include "../ops/convert.hpp"
#include "../ops/elementwise.hpp"

namespace blip2 {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // The pointers are host memory, or GPU memory where device_memory() says so (NCCL).
  // recv [world_size * bytes] receives every rank's `bytes` of send, in rank order.
  virtual void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const = 0;
  // Element-wise sum over the ranks, in place.
  virtual void all_reduce_sum(float* data, std::size_t count) const = 0;
  virtual void all_reduce_sum(double* data, std::size_t count) const = 0;
  // Every rank's `bytes` at data become root's.
  virtual void broadcast_bytes(void* data, std::size_t bytes, int root) const = 0;
  // Returns once every rank has called it.
  virtual void barrier() const = 0;
  virtual bool device_memory() const { return false; }
  // A communicator over the same ranks whose collectives may run on another thread at the same
  // time as this one's (the gradient exchange during backward), or nullptr where the engine
  // cannot. Collective: every rank calls it at the same point.
  virtual std::unique_ptr<Communicator> duplicate_for_thread() const { return nullptr; }
  // Whether every rank runs on this machine: collectives are then memory copies on the cores the
  // computation uses, not waits on a network.
  virtual bool one_machine() const { return true; }
};

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const override {
    if (bytes) std::memmove(recv, send, bytes);
  }
  void all_reduce_sum(float*, std::size_t) const override {}
  void all_reduce_sum(double*, std::size_t) const override {}
  void broadcast_bytes(void*, std::size_t, int) const override {}
  void barrier() const override {}
};

namespace detail {
// A host engine (MPI) serves GPU tensors through CPU copies; a GPU engine (NCCL) takes GPU tensors only.
template <class D>
void check_comm_memory(const Communicator& comm, const char* op) {
  BLIP2_CHECK((!comm.device_memory() || !std::is_same_v<D, cpu>), DeviceError, op,
              ": a GPU communicator (NCCL) was given CPU tensors");
}

template <class T, class D>
Tensor<T, D> gather_rows(const Tensor<T, D>& x, const Communicator& comm) {
  if constexpr (!std::is_same_v<D, cpu>)
    if (!comm.device_memory()) return gather_rows(x.template to<cpu>(), comm).template to<D>();
  check_comm_memory<D>(comm, "all_gather");
  const Tensor<T, D> local = x.contiguous();
  Shape shape = x.shape();
  shape[0] *= comm.world_size();
  const Tensor<T, D> all = Tensor<T, D>::empty(shape);
  comm.all_gather_bytes(local.data(), all.data(), std::size_t(local.numel()) * sizeof(T));
  return all;
}
}  // namespace detail

// Sums x (contiguous) over the ranks, in place.
template <class T, class D>
void all_reduce_sum_(const Tensor<T, D>& x, const Communicator& comm) {
  BLIP2_CHECK(x.is_contiguous(), ValueError, "all_reduce_sum_: the tensor of shape ", to_string(x.shape()),
              " must be contiguous (it is reduced in place)");
  if (comm.world_size() == 1) return;
  if constexpr (!std::is_same_v<D, cpu>) {
    if (!comm.device_memory()) {
      const auto host = x.template to<cpu>().contiguous().clone();
      all_reduce_sum_(host, comm);
      copy_(x, host.template to<D>());
      return;
    }
  }
  detail::check_comm_memory<D>(comm, "all_reduce_sum_");
  comm.all_reduce_sum(x.data(), std::size_t(x.numel()));
}

// Host values summed over the ranks (through a D tensor, where the communicator works).
template <class D = cpu>
std::vector<double> sum_over_ranks(const std::vector<double>& values, const Communicator& comm) {
  if (comm.world_size() == 1 || values.empty()) return values;
  const auto t = Tensor<double, cpu>::from_vector({index_t(values.size())}, values).template to<D>();
  all_reduce_sum_(t, comm);
  return t.template to<cpu>().to_vector();
}

// This rank's mean over its `count` items (tokens, say), rescaled so that the average over the
// ranks, which data-parallel training takes, is the mean over every rank's items: the one-process
// loss of the global batch also when the ranks' counts differ.
template <class T, class D>
Tensor<T, D> global_mean(const Tensor<T, D>& local_mean, double count, const Communicator& comm) {
  if (comm.world_size() == 1) return local_mean;
  const double total = sum_over_ranks<D>({count}, comm).front();
  BLIP2_CHECK(total > 0, ValueError, "global_mean: no item to average on any of the ", comm.world_size(), " ranks");
  return local_mean * T(count * double(comm.world_size()) / total);
}

// Every rank's x [n, ...] stacked along axis 0 in rank order -> [world * n, ...]; no gradient.
template <class T, class D>
Tensor<T, D> all_gather(const Tensor<T, D>& x, const Communicator& comm) {
  BLIP2_CHECK(x.dim() >= 1, ShapeError, "all_gather: tensor of shape ", to_string(x.shape()), " has no batch axis");
  if (comm.world_size() == 1) return x.detach();
  return detail::gather_rows(x, comm);
}

// all_gather whose gradient reaches x: d/dx = (sum over ranks of the gradient of the gathered
// tensor)[this rank's rows].
template <class T, class D>
Tensor<T, D> all_gather_with_grad(const Tensor<T, D>& x, const Communicator& comm) {
  BLIP2_CHECK(x.dim() >= 1, ShapeError, "all_gather_with_grad: tensor of shape ", to_string(x.shape()),
              " has no batch axis");
  if (comm.world_size() == 1) return x;
  Tensor<T, D> out = detail::gather_rows(x, comm);
  if (!autograd::needs_grad<T, D>({&x})) return out;
  const index_t n = x.size(0), first = n * comm.rank();
  return autograd::record<T, D>("all_gather_with_grad", out, {x}, [&comm, n, first](const Tensor<T, D>& g) {
    const Tensor<T, D> summed = g.contiguous().clone();
    all_reduce_sum_(summed, comm);
    return std::vector<Tensor<T, D>>{summed.slice(0, first, first + n).contiguous()};
  });
}

}  // namespace blip2
