#pragma once
// The data-parallel step's gradient exchange: every rank's gradients summed by all-reduce, then
// divided by the world size, so that every rank takes the same optimizer step.
//
// The gradients are packed into buckets of about `bucket_bytes`, in reverse parameter order (the
// order backward produces them). Given the backward pass to run, the averager packs each
// parameter's gradient the moment it is complete (autograd/leaf_hook.hpp) and all-reduces a bucket
// as soon as all of its gradients are in, on a communication thread, while backward goes on, as
// PyTorch's DistributedDataParallel does. The thread needs a communicator that offers one
// (duplicate_for_thread: MPI with MPI_THREAD_MULTIPLE) and, by default, ranks on more than one
// machine: there the all-reduce waits on the network, which the thread hides; on one machine it is
// memory copies on the cores the backward pass uses, and running them alongside slowed a 2-core
// stage-1 step by 10% (bench/README.md), so there the buckets go out from the main thread. Buckets go out strictly in order on every rank, so the collectives
// match whatever order the gradients arrive in. A parameter without a gradient on a rank counts
// as zeros there; a flag per parameter (at its bucket's head) says whether any rank had one, so
// that all ranks step the same parameters. The buffer is kept from one step to the next: at
// BLIP-2's sizes it is 750 MB, whose fresh allocation (page faults) would cost more than the
// all-reduce itself. One process: nothing is exchanged.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../autograd/leaf_hook.hpp"
#include "communicator.hpp"

namespace blip2 {

template <class T, class D>
class GradientAverager {
 public:
  // Where the last exchange's time went (seconds; zeros on one process).
  struct Timing {
    double backward_s = 0;  // the backward pass, with the packing and, without a thread, the exchange in it
    double reduce_s = 0;    // all-reduce calls, summed over the buckets
    double wait_s = 0;      // after backward, until every bucket was reduced and unpacked
    long buckets = 0;
    bool threaded = false;  // the all-reduces ran on the communication thread
    double overlap_s() const { return threaded ? std::max(0.0, reduce_s - wait_s) : 0.0; }
  };

  enum class Thread { automatic, on, off };  // the communication thread: across machines only, always, never
  // "auto", "on" or "off" (RunConfig's grad_exchange_thread, which checks the spelling).
  static Thread thread_from(const std::string& name) {
    return name == "on" ? Thread::on : name == "off" ? Thread::off : Thread::automatic;
  }

  explicit GradientAverager(std::size_t bucket_bytes = std::size_t(25) << 20, Thread thread = Thread::automatic)
      : bucket_bytes_(bucket_bytes), thread_(thread) {}

  // Averages gradients that are already computed (nothing to overlap: no communication thread).
  void operator()(const std::vector<Tensor<T, D>>& params, const Communicator& comm) {
    average(params, comm, [] {}, /*overlap=*/false);
  }

  // Runs backward() (a callable, e.g. [&] { loss.backward(); }) and averages the gradients of
  // `params` over the ranks, exchanging buckets while backward runs.
  template <class Backward>
  void operator()(const std::vector<Tensor<T, D>>& params, const Communicator& comm, Backward&& backward) {
    average(params, comm, backward, /*overlap=*/true);
  }

  const Timing& last_timing() const { return timing_; }

 private:
  template <class Backward>
  void average(const std::vector<Tensor<T, D>>& params, const Communicator& comm, Backward&& backward, bool overlap) {
    using Clock = std::chrono::steady_clock;
    timing_ = {};
    if (comm.world_size() == 1) {
      backward();
      return;
    }
    layout(params);
    if (comm_ != &comm) {  // collective: every rank makes its thread's communicator at the same step
      comm_ = &comm;
      thread_comm_.reset();
      if constexpr (std::is_same_v<D, cpu>)
        if (thread_ == Thread::on || (thread_ == Thread::automatic && !comm.one_machine()))
          thread_comm_ = comm.duplicate_for_thread();
    }
    std::fill(packed_.begin(), packed_.end(), false);
    for (auto& b : buckets_) b.waiting = b.params;
    next_bucket_ = 0;
    Exchange exchange(*this, overlap && thread_comm_);
    timing_.threaded = overlap && thread_comm_;
    const auto t0 = Clock::now();
    {
      autograd::OnLeafGradientReady<T, D> hook([&](const Tensor<T, D>& leaf) {
        if (const auto it = index_.find(&leaf.impl()); it != index_.end()) pack(it->second, params, exchange);
      });
      backward();
    }
    const auto t1 = Clock::now();
    NoGrad no_grad;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (!packed_[i]) pack(i, params, exchange);  // never reported: no gradient, or checkpointed
    exchange.finish();
    Backend<D>::unary(UnaryOp::mul_scalar, flat_.data(), flat_.data(), flat_.numel(), T(1.0 / double(comm.world_size())));
    std::vector<T> flags;
    for (const Bucket& b : buckets_) {  // every parameter's flag, one small copy per bucket
      const auto f = flat_.slice(0, b.begin, b.begin + index_t(b.params)).template to<cpu>().to_vector();
      flags.insert(flags.end(), f.begin(), f.end());
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!(flags[slots_[i].nth] > T(0))) continue;
      const Tensor<T, D>& p = params[i];
      const Tensor<T, D> mean = flat_.slice(0, slots_[i].at, slots_[i].at + p.numel()).reshape(p.shape());
      if (const Tensor<T, D> g = p.grad(); g.defined() && g.is_contiguous()) {
        copy_(g, mean);
      } else {
        p.impl().grad = mean.clone().impl_ptr();
      }
    }
    timing_.backward_s = std::chrono::duration<double>(t1 - t0).count();
    timing_.wait_s = std::chrono::duration<double>(Clock::now() - t1).count();
    timing_.buckets = long(buckets_.size());
  }

  struct Slot {
    index_t flag = 0, at = 0;  // offsets in flat_ of the parameter's flag and of its gradient
    std::size_t bucket = 0, nth = 0;  // its bucket; its flag's place among all flags, bucket by bucket
  };
  struct Bucket {
    index_t begin = 0, end = 0;  // [begin, end) of flat_: the flags, then the gradients
    long params = 0, waiting = 0;
  };

  // Sends buckets in order: on the communication thread, or here where there is none.
  class Exchange {
   public:
    Exchange(GradientAverager& a, bool threaded) : a_(a) {
      if (threaded) worker_ = std::thread([this] { run(); });
    }
    // An exception in backward: buckets not yet started are dropped (this rank's job is ending),
    // and the thread ends before the buffer can go.
    ~Exchange() { stop(/*drain=*/false); }
    void send(const Bucket& b) {
      const Tensor<T, D> part = a_.flat_.slice(0, b.begin, b.end);
      if (!worker_.joinable()) {
        const auto t0 = std::chrono::steady_clock::now();
        all_reduce_sum_(part, *a_.comm_);
        a_.timing_.reduce_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(part);
      }
      ready_.notify_one();
    }
    void finish() {
      stop(/*drain=*/true);
      if (error_) std::rethrow_exception(error_);
    }

   private:
    void run() {
      for (;;) {
        Tensor<T, D> part;
        {
          std::unique_lock<std::mutex> lock(mutex_);
          ready_.wait(lock, [&] { return !queue_.empty() || done_; });
          if (queue_.empty() || (done_ && !drain_)) return;
          part = queue_.front();
          queue_.pop_front();
        }
        if (error_) continue;  // the collectives are out of step now: drain and report the first error
        try {
          const auto t0 = std::chrono::steady_clock::now();
          a_.thread_comm_->all_reduce_sum(part.data(), std::size_t(part.numel()));
          a_.timing_.reduce_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } catch (...) {
          error_ = std::current_exception();
        }
      }
    }
    void stop(bool drain) {
      if (!worker_.joinable()) return;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_ = true;
        drain_ = drain;
      }
      ready_.notify_one();
      worker_.join();
    }

    GradientAverager& a_;
    std::thread worker_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Tensor<T, D>> queue_;
    bool done_ = false, drain_ = true;
    std::exception_ptr error_;
  };

  // Buckets in reverse parameter order; the buffer is laid out again only when the parameters change.
  void layout(const std::vector<Tensor<T, D>>& params) {
    std::vector<const void*> ids;
    for (const auto& p : params) ids.push_back(&p.impl());
    if (ids == ids_ && flat_.defined()) return;
    ids_ = ids;
    index_.clear();
    slots_.assign(params.size(), {});
    packed_.assign(params.size(), false);
    buckets_.clear();
    std::vector<std::vector<std::size_t>> groups(1);
    std::size_t bytes = 0;
    for (std::size_t i = params.size(); i-- > 0;) {
      const std::size_t size = std::size_t(params[i].numel()) * sizeof(T);
      if (!groups.back().empty() && bytes + size > bucket_bytes_) {
        groups.emplace_back();
        bytes = 0;
      }
      groups.back().push_back(i);
      bytes += size;
    }
    index_t at = 0;
    std::size_t nth = 0;
    for (const auto& group : groups) {
      Bucket b;
      b.begin = at;
      b.params = long(group.size());
      index_t data = at + index_t(group.size());
      for (std::size_t i : group) {
        slots_[i] = {at++, data, buckets_.size(), nth++};
        data += params[i].numel();
        index_[ids[i]] = i;
      }
      b.end = at = data;
      buckets_.push_back(b);
    }
    flat_ = Tensor<T, D>::empty({at});
  }

  // Copies parameter i's gradient (or zeros) and its flag into its bucket; sends what is complete.
  void pack(std::size_t i, const std::vector<Tensor<T, D>>& params, Exchange& exchange) {
    if (packed_[i]) return;
    packed_[i] = true;
    const Slot& s = slots_[i];
    const Tensor<T, D> g = params[i].grad();
    copy_(flat_.slice(0, s.flag, s.flag + 1), Tensor<T, D>::full({1}, T(g.defined() ? 1 : 0)));
    const index_t n = params[i].numel();
    if (g.defined()) copy_(flat_.slice(0, s.at, s.at + n), g.contiguous().reshape({n}));
    else copy_(flat_.slice(0, s.at, s.at + n), Tensor<T, D>::zeros({1}));
    --buckets_[s.bucket].waiting;
    while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].waiting == 0) exchange.send(buckets_[next_bucket_++]);
  }

  std::size_t bucket_bytes_;
  Thread thread_;
  const Communicator* comm_ = nullptr;
  std::unique_ptr<Communicator> thread_comm_;
  std::vector<const void*> ids_;
  std::unordered_map<const void*, std::size_t> index_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<bool> packed_;
  std::size_t next_bucket_ = 0;
  Tensor<T, D> flat_;  // the buckets, one after another; kept between steps
  Timing timing_;
};

}  // namespace blip2
