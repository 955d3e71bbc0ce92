// Data-parallel training at BLIP-2's sizes (issue #10), run under mpirun -np W for W = 1, 2, ...
// (built with -DBLIP2_MPI=ON); rank 0 prints one JSON line per case:
//   allreduce    the gradient exchange of a stage-1 step alone: GradientAverager over the trainable
//                parameters of the stage-1 model at real sizes (BERT-base Q-Former with 32 queries,
//                the embeddings, the ITM and ITG heads, the projections, ln_vision: 187 M float32;
//                the paper's "188M"), and MPI_Allreduce alone on a buffer of that size, median of
//                --steps; with the bytes in the buffer and the bytes a ring all-reduce sends per
//                rank, 2 (W - 1) / W of them
//   stage1_step  one stage-1 step at those sizes (ITC + ITM + ITG on ViT-g/14 features, global batch
//                --global-batch, --global-batch / W rows per rank, 32 text tokens): forward,
//                backward, the gradient exchange and AdamW, median of --steps after a warm-up step
//                The gradients go out in 25 MB buckets as backward completes them (the trainer's
//                way): --overlap on sends them from a communication thread while backward runs,
//                off from the main thread, auto as the trainer decides (a thread when the ranks
//                span machines). allreduce_s is the time in all-reduce calls, exposed_exchange_s
//                what the step spent on the exchange beyond its backward pass, overlap_s the
//                all-reduce time hidden behind backward.
// Each rank runs --threads OpenMP threads.
//
//   mpirun -np W bench_data_parallel [--part allreduce|stage1|all] [--global-batch 4] [--steps 2] [--threads N]
//                                    [--overlap auto|on|off]
#include <blip2/blip2.hpp>
#include <blip2/train/mpi_communicator.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_support.hpp"

using namespace blip2;

namespace {

using bench::Clock;
using bench::seconds_since;

struct Args {
  std::string part = "all";
  int global_batch = 4, steps = 2, threads = 0;
  std::string overlap = "auto";  // on: buckets sent from a thread during backward; off: from the main thread; auto: the trainer's choice
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The slowest rank's time: a step is done when every rank is.
double slowest(double seconds, const Communicator& comm) {
  std::vector<double> all(std::size_t(comm.world_size()));
  comm.all_gather_bytes(&seconds, all.data(), sizeof seconds);
  return *std::max_element(all.begin(), all.end());
}

std::unique_ptr<Blip2Stage1<float>> stage1_model() {
  Blip2Config c = bench::stage1_config(bench::opt27b_config());
  c.vision.num_hidden_layers = 0;  // the ViT's blocks are frozen and not run: features are the input
  Generator gen(0);
  auto model = std::make_unique<Blip2Stage1<float>>(c);
  nn::init_parameters(*model, gen);
  copy_(model->temp, Tensor<float>::full({1}, float(Blip2Stage1<float>::kInitialTemperature)));
  model->set_stage1_trainable();
  return model;
}

// What the gradient exchange moves: the float32 buffer, and what a ring all-reduce sends per rank.
struct Traffic {
  double params = 0, bytes = 0, ring_bytes = 0;
};
Traffic traffic(const Communicator& comm, const std::vector<Tensor<float>>& params) {
  Traffic t;
  for (const auto& p : params) t.params += double(p.numel());
  t.bytes = t.params * sizeof(float);
  t.ring_bytes = 2.0 * (comm.world_size() - 1) / comm.world_size() * t.bytes;
  return t;
}

std::string common_fields(const Communicator& comm, const Traffic& t) {
  char s[256];
  std::snprintf(s, sizeof s,
                "\"ranks\": %d, \"threads_per_rank\": %d, \"trainable_params\": %.0f, \"allreduce_bytes\": %.0f, "
                "\"ring_bytes_sent_per_rank\": %.0f",
                comm.world_size(), num_threads(), t.params, t.bytes, t.ring_bytes);
  return s;
}

void allreduce(const Args& a, const Communicator& comm, const Blip2Stage1<float>& model) {
  const auto params = model.trainable_parameters();
  for (const auto& p : params) p.impl().grad = Tensor<float>::ones(p.shape()).impl_ptr();
  const Traffic t = traffic(comm, params);
  std::vector<float> buffer(std::size_t(t.params), 1.0f);
  GradientAverager<float, cpu> average_gradients;
  std::vector<double> exchange, reduce;
  for (int i = 0; i <= a.steps; ++i) {  // the first is a warm-up
    comm.barrier();
    auto t0 = Clock::now();
    average_gradients(params, comm);
    const double e = slowest(seconds_since(t0), comm);
    comm.barrier();
    t0 = Clock::now();
    comm.all_reduce_sum(buffer.data(), buffer.size());
    const double r = slowest(seconds_since(t0), comm);
    if (i == 0) continue;
    exchange.push_back(e);
    reduce.push_back(r);
  }
  const double s = median(exchange), mpi_s = median(reduce);
  if (comm.rank() == 0)
    std::printf("{\"name\": \"allreduce\", %s, \"seconds\": %.4f, \"mpi_allreduce_s\": %.4f, "
                "\"ring_gb_per_s\": %.2f}\n",
                common_fields(comm, t).c_str(), s, mpi_s, mpi_s > 0 ? t.ring_bytes / mpi_s / 1e9 : 0.0);
}

void stage1_step(const Args& a, const Communicator& comm, const Blip2Stage1<float>& model) {
  const int W = comm.world_size();
  BLIP2_CHECK(a.global_batch % W == 0, ValueError, "--global-batch ", a.global_batch, " does not split over ", W, " ranks");
  const index_t B = a.global_batch / W, T = 32;
  Generator gen(7);  // the global batch, then this rank's rows of it
  const auto features =
      randn<float>({index_t(a.global_batch), 257, 1408}, gen).slice(0, comm.rank() * B, (comm.rank() + 1) * B).contiguous();
  const auto [all_ids, all_mask] = bench::text_batch(a.global_batch, T, 101, 102, 1000, 30522, 0, gen);
  const auto ids = all_ids.slice(0, comm.rank() * B, (comm.rank() + 1) * B).contiguous();
  const auto mask = all_mask.slice(0, comm.rank() * B, (comm.rank() + 1) * B).contiguous();
  const auto params = model.trainable_parameters();
  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  Generator negatives(1);
  Stage1Options o;
  o.generator = &negatives;
  o.comm = &comm;
  using Averager = GradientAverager<float, cpu>;
  Averager average_gradients(std::size_t(25) << 20, Averager::thread_from(a.overlap));
  std::vector<double> step, forward, backward, exchange, exposed, overlap, optimizer;
  long buckets = 0;
  bool threaded = false;
  for (int i = 0; i <= a.steps; ++i) {
    comm.barrier();
    const auto t0 = Clock::now();
    opt.zero_grad();
    const Tensor<float> loss = stage1_losses_from_features(model, features, ids, mask, o).loss;
    const auto t1 = Clock::now();
    average_gradients(params, comm, [&] { loss.backward(); });
    const auto t3 = Clock::now();
    opt.step();
    if (i == 0) continue;
    const auto& t = average_gradients.last_timing();
    const double total_s = std::chrono::duration<double>(t3 - t1).count();  // backward and exchange
    // Without the thread the all-reduces run inside the backward pass, on its thread.
    const double backward_s = W == 1 ? total_s : t.threaded ? t.backward_s : t.backward_s - t.reduce_s;
    forward.push_back(std::chrono::duration<double>(t1 - t0).count());
    backward.push_back(backward_s);
    exchange.push_back(t.reduce_s);
    exposed.push_back(total_s - backward_s);
    overlap.push_back(t.overlap_s());
    optimizer.push_back(seconds_since(t3));
    step.push_back(slowest(seconds_since(t0), comm));
    buckets = t.buckets;
    threaded = t.threaded;
  }
  if (comm.rank() == 0)
    std::printf("{\"name\": \"stage1_step\", %s, \"global_batch\": %d, \"batch_per_rank\": %d, \"overlap\": \"%s\", "
                "\"buckets\": %ld, \"comm_thread\": %s, \"seconds\": %.4f, \"forward_s\": %.4f, \"backward_s\": %.4f, "
                "\"allreduce_s\": %.4f, \"exposed_exchange_s\": %.4f, \"overlap_s\": %.4f, \"optimizer_s\": %.4f, "
                "\"peak_rss_mb\": %.0f}\n",
                common_fields(comm, traffic(comm, params)).c_str(), a.global_batch, int(B), a.overlap.c_str(),
                buckets, threaded ? "true" : "false", median(step), median(forward), median(backward), median(exchange),
                median(exposed), median(overlap), median(optimizer), bench::peak_rss_mb());
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  const MpiCommunicator comm;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each JSON line leaves at once
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--part") a.part = v;
    else if (k == "--global-batch") a.global_batch = std::atoi(v.c_str());
    else if (k == "--steps") a.steps = std::atoi(v.c_str());
    else if (k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--overlap") a.overlap = v;
    else {
      if (comm.rank() == 0) std::fprintf(stderr, "bench_data_parallel: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.threads > 0) set_num_threads(a.threads);
  try {
    const auto model = stage1_model();
    if (a.part == "allreduce" || a.part == "all") allreduce(a, comm, *model);
    if (a.part == "stage1" || a.part == "all") stage1_step(a, comm, *model);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_data_parallel: rank %d: %s\n", comm.rank(), e.what());
    comm.abort(1);
  }
  return 0;
}
