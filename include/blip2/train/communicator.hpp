#pragma once
// The collectives data-parallel training needs, behind one small interface so that an MPI or NCCL
// engine plugs in without touching the losses. `SingleProcess` is the one-process engine, where
// every collective is the identity. On top of it: all_gather (no gradient; LAVIS's
// concat_all_gather) and all_gather_with_grad (LAVIS's all_gather_with_grad: the backward sums
// every rank's gradient of the gathered tensor and keeps this rank's rows).
#include <cstddef>
#include <cstring>

#include "../autograd/node.hpp"
#include "../ops/convert.hpp"

namespace blip2 {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // recv [world_size * bytes] receives every rank's `bytes` of send, in rank order (host memory).
  virtual void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const = 0;
  // Element-wise sum over the ranks, in place (host memory).
  virtual void all_reduce_sum(float* data, std::size_t count) const = 0;
  virtual void all_reduce_sum(double* data, std::size_t count) const = 0;
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
};

namespace detail {
template <class T, class D>
Tensor<T, D> gather_rows(const Tensor<T, D>& x, const Communicator& comm) {
  const auto local = x.template to<cpu>().to_vector();
  std::vector<T> all(local.size() * std::size_t(comm.world_size()));
  comm.all_gather_bytes(local.data(), all.data(), local.size() * sizeof(T));
  Shape shape = x.shape();
  shape[0] *= comm.world_size();
  return Tensor<T, cpu>::from_vector(shape, all).template to<D>();
}
}  // namespace detail

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
    auto summed = g.template to<cpu>().contiguous().clone();
    comm.all_reduce_sum(summed.data(), std::size_t(summed.numel()));
    return std::vector<Tensor<T, D>>{summed.slice(0, first, first + n).contiguous().template to<D>()};
  });
}

}  // namespace blip2
