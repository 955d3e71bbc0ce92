#pragma once
// The training loop LAVIS's runner runs (lavis/runners/runner_base.py, tasks/base_task.py
// train_inner_loop), around any loss: epochs of batches, linear_warmup_cosine_lr set before every
// iteration, the loss divided by accum_grad_iters and an AdamW step (LAVIS's weight-decay groups)
// every accum_grad_iters iterations, optional gradient clipping; progress lines with each loss, the
// learning rate, images/s and the ETA (redrawn in place on a terminal), metrics as JSON lines in
// output_dir/metrics.jsonl; checkpoints written atomically (checkpoint_dir.hpp) every
// checkpoint_every optimizer steps (else every epoch) and at the end, holding the trainable weights
// under their checkpoint names, the AdamW moments, the position (epoch, batch, step), the named
// generators' positions and the configs. resume() continues bit for bit: the same batches, negatives
// and updates as a run that never stopped.
//
// The data is given by position: loss(epoch, batch) computes the loss of one batch, so a resumed
// run starts again at the batch after the checkpoint.
//
// Data parallel: given a Communicator of W ranks, every rank runs this loop on its rows of the
// global batch (data/loader.hpp deals them out); the gradients are averaged over the ranks in
// buckets while the step's last backward pass runs (gradient_averager.hpp), so every rank takes
// the same step; the logged losses are averaged too. Rank 0 alone prints progress and writes
// metrics.jsonl and checkpoints; every rank resumes from them, also with another world size, as
// long as the global batch (batch_size_train * W) is the same. With one rank (the default) nothing of this runs.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>

#include "../io/checkpoint.hpp"
#include "adamw.hpp"
#include "checkpoint_dir.hpp"
#include "clip.hpp"
#include "communicator.hpp"
#include "gradient_averager.hpp"
#include "param_groups.hpp"
#include "run_config.hpp"
#include "schedule.hpp"

namespace blip2 {

// One optimizer step as the progress lines and metrics.jsonl report it.
struct StepRecord {
  long epoch = 0, global_step = 0;
  double lr = 0, seconds = 0;
  std::map<std::string, double> losses;  // averaged over the step's micro-batches
};

// A StepRecord as one line of metrics.jsonl, and back.
inline nlohmann::json record_to_json(const StepRecord& r) {
  return {{"epoch", r.epoch}, {"step", r.global_step}, {"lr", r.lr}, {"seconds", r.seconds}, {"losses", r.losses}};
}
inline StepRecord record_from_json(const nlohmann::json& j) {
  StepRecord r;
  r.epoch = j.at("epoch").get<long>();
  r.global_step = j.at("step").get<long>();
  r.lr = j.at("lr").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.losses = j.at("losses").get<std::map<std::string, double>>();
  return r;
}

// The history a run left in its metrics.jsonl (what loss_curves_svg draws).
inline std::vector<StepRecord> read_metrics_jsonl(const std::string& path) {
  std::ifstream in(path);
  BLIP2_CHECK(in.good(), IoError, path, ": cannot open the metrics file");
  std::vector<StepRecord> history;
  std::string line;
  for (long n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j.contains("eval")) continue;  // an evaluation's line (Trainer::evaluate_after_each_epoch)
      history.push_back(record_from_json(j));
    } catch (const nlohmann::json::exception& e) {
      throw IoError(path + ":" + std::to_string(n) + ": not a metrics record: " + e.what());
    }
  }
  return history;
}

template <class T, class D>
class Trainer {
 public:
  // Computes one batch's loss (with the graph) and fills `logged` with the values to report
  // (e.g. {"loss_itc", ...}); the returned loss is what backward() starts from.
  using LossFn = std::function<Tensor<T, D>(long epoch, long batch, std::map<std::string, double>& logged)>;

  // `model_config` identifies the model in checkpoints (a resume into another model is refused);
  // `examples_per_batch` (this rank's) only feeds the images/s figure. `comm` (kept by reference;
  // nullptr: one process) makes the training data parallel.
  Trainer(const nn::Module<T, D>& model, RunConfig run, nlohmann::json model_config, long batches_per_epoch,
          long examples_per_batch, const Communicator* comm = nullptr)
      : run_(std::move(run)), model_config_(std::move(model_config)), batches_(batches_per_epoch),
        examples_per_batch_(examples_per_batch), comm_(comm ? comm : &one_process()),
        optimizer_(lavis_param_groups(model, run_.weight_decay), {run_.init_lr, 0.9, 0.999, 1e-8, 0.0}),
        schedule_{run_.init_lr, run_.min_lr, run_.warmup_lr, run_.warmup_steps, run_.max_epoch} {
    BLIP2_CHECK(batches_ > 0, ValueError, "trainer: the dataset gives no batch of ", run_.batch_size_train,
                " (an empty dataset?)");
    BLIP2_CHECK(!optimizer_.parameters().empty(), ValueError, "trainer: the model has no trainable parameter");
    for (const auto& p : optimizer_.parameters())  // names in the optimizer's (grouped) order
      for (const auto& [name, q] : model.named_parameters())
        if (q.is_same(p)) names_.push_back(name);
  }

  // A generator whose position is saved in checkpoints and restored by resume().
  void track_generator(const std::string& name, Generator& g) { generators_[name] = &g; }

  // Evaluation after every epoch, as LAVIS's runner evaluates its valid_splits: `evaluate(epoch)`
  // runs on every rank once the epoch's last step and checkpoint are done (rank 0's result is kept;
  // other ranks may return null). Rank 0 appends {"epoch", "step", "seconds", "eval": result} to
  // metrics.jsonl and prints it with the progress.
  using EvalFn = std::function<nlohmann::json(long epoch)>;
  void evaluate_after_each_epoch(EvalFn evaluate) { evaluate_ = std::move(evaluate); }
  // The evaluations of this run so far (rank 0), as written to metrics.jsonl.
  const std::vector<nlohmann::json>& evaluations() const { return evaluations_; }

  // Continues from a checkpoint directory (or a run directory's latest checkpoint). A checkpoint of
  // another model or of a run with other math settings is refused, naming the field that differs.
  void resume(const std::string& path) {
    const auto dir = resolve_checkpoint_dir(path);
    const nlohmann::json state = io::read_json_file((dir / "trainer_state.json").string());
    const auto where = (dir / "trainer_state.json").string();
    auto differs = [&](const nlohmann::json& saved, const nlohmann::json& now, const std::string& what) {
      for (auto it = now.begin(); it != now.end(); ++it)
        BLIP2_CHECK(saved.contains(it.key()) && saved[it.key()] == it.value(), ValueError, where, ": cannot resume: ", what,
                    " field '", it.key(), "' is ", saved.contains(it.key()) ? saved[it.key()].dump() : "absent",
                    " there and ", it.value().dump(), " here");
    };
    differs(state.at("model_config"), model_config_, "model config");
    nlohmann::json math = nlohmann::json::object(), run_now = run_.to_json();
    for (const auto& k : RunConfig::math_keys())
      if (k != "batch_size_train") math[k] = run_now[k];
    differs(state.at("run"), math, "run config");
    // The global batch must be the same; how many ranks share it may change.
    const long saved_world = state.value("world_size", 1L), world = comm_->world_size();
    const long saved_batch = state.at("run").at("batch_size_train").get<long>();
    BLIP2_CHECK(saved_batch * saved_world == run_.batch_size_train * world, ValueError, where,
                ": cannot resume: the global batch was ", saved_batch * saved_world, " (batch_size_train ", saved_batch,
                " on ", saved_world, " ranks) and is ", run_.batch_size_train * world, " here (", run_.batch_size_train,
                " on ", world, ")");
    const auto weights = io::Checkpoint::open((dir / "model.safetensors").string());
    const auto moments = io::SafeTensorsFile::open((dir / "optimizer.safetensors").string());
    NoGrad no_grad;
    const auto& params = optimizer_.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string& name = names_[i];
      BLIP2_CHECK(weights.contains(name), IoError, dir.string(), ": the checkpoint has no trained tensor '", name, "'");
      copy_(params[i], weights.template load<T, D>(name));
      copy_(optimizer_.first_moments()[i], moments.template load<T, D>("exp_avg." + name));
      copy_(optimizer_.second_moments()[i], moments.template load<T, D>("exp_avg_sq." + name));
    }
    optimizer_.set_steps(state.at("adamw_steps").get<long>());
    epoch_ = state.at("epoch").get<long>();
    batch_ = state.at("batch").get<long>();
    if (batch_ >= batches_) {  // saved at the end of an epoch: continue with the next one
      ++epoch_;
      batch_ = 0;
    }
    global_step_ = state.at("global_step").get<long>();
    for (auto& [name, g] : generators_) {
      BLIP2_CHECK(state["generators"].contains(name), IoError, where, ": no state for the generator '", name, "'");
      const nlohmann::json& gs = state["generators"][name];
      BLIP2_CHECK(gs.at("seed").get<std::uint64_t>() == g->seed(), ValueError, where, ": generator '", name,
                  "' was seeded with ", gs.at("seed").dump(), ", this run with ", g->seed());
      g->set_offset(gs.at("offset").get<std::uint64_t>());
    }
    for (const auto& r : state.at("history")) history_.push_back(record_from_json(r));
  }

  // Runs until max_epoch. Progress goes to `progress` (nullptr: silent; on rank 0 only).
  void train(const LossFn& loss, std::FILE* progress = stderr) {
    if (comm_->rank() != 0) progress = nullptr;
    const bool tty = progress && ::isatty(::fileno(progress));
    const long total_steps = run_.max_epoch * steps_per_epoch();
    auto start = std::chrono::steady_clock::now();
    const long first_step = global_step_;
    std::map<std::string, double> sums;
    long micro = 0;
    for (; epoch_ < run_.max_epoch; ++epoch_, batch_ = 0) {
      for (; batch_ < batches_;) {
        const double lr = schedule_.lr(epoch_, batch_);
        optimizer_.set_lr(lr);
        std::map<std::string, double> logged;
        Tensor<T, D> l = loss(epoch_, batch_, logged);
        if (run_.accum_grad_iters > 1) l = l * T(1.0 / double(run_.accum_grad_iters));
        for (const auto& [k, v] : logged) sums[k] += v;
        ++micro;
        ++batch_;
        if (batch_ % run_.accum_grad_iters != 0 && batch_ != batches_) {
          l.backward();
          continue;
        }
        // The optimizer step's last backward: the gradient exchange runs alongside it.
        average_gradients_(optimizer_.parameters(), *comm_, [&] { l.backward(); });
        if (run_.max_grad_norm > 0) clip_grad_norm(optimizer_.parameters(), run_.max_grad_norm);
        optimizer_.step();
        optimizer_.zero_grad();
        ++global_step_;
        StepRecord r{epoch_, global_step_, lr, 0, {}};
        for (const auto& [k, v] : sums) r.losses[k] = v / double(micro);
        average_over_ranks(r.losses);
        sums.clear();
        micro = 0;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        r.seconds = elapsed;
        history_.push_back(r);
        append_metrics(record_to_json(r));
        const bool last = global_step_ == total_steps;
        if (progress && (global_step_ % run_.log_every == 0 || last))
          report(progress, tty, r, elapsed, global_step_ - first_step, total_steps);
        if ((run_.checkpoint_every > 0 && global_step_ % run_.checkpoint_every == 0) ||
            (run_.checkpoint_every == 0 && batch_ == batches_) || last)
          save_checkpoint();
      }
      if (evaluate_) run_evaluation(progress, tty);
    }
    if (progress && tty) std::fputc('\n', progress);
  }

  // Writes output_dir/checkpoint-<step> and points output_dir/latest at it (rank 0; every rank
  // calls it and returns once it is written); returns its path.
  std::string save_checkpoint() const {
    const std::string name = "checkpoint-" + std::to_string(global_step_);
    if (comm_->rank() != 0) {
      comm_->barrier();
      return (std::filesystem::path(run_.output_dir) / name).string();
    }
    const auto dir = write_checkpoint_dir(run_.output_dir, name, [&](const std::filesystem::path& tmp) {
      std::vector<io::TensorRecord> weights, moments;
      const auto& params = optimizer_.parameters();
      for (std::size_t i = 0; i < params.size(); ++i) {
        weights.push_back(io::TensorRecord::from(names_[i], params[i]));
        moments.push_back(io::TensorRecord::from("exp_avg." + names_[i], optimizer_.first_moments()[i]));
        moments.push_back(io::TensorRecord::from("exp_avg_sq." + names_[i], optimizer_.second_moments()[i]));
      }
      io::save_safetensors((tmp / "model.safetensors").string(), weights);
      io::save_safetensors((tmp / "optimizer.safetensors").string(), moments);
      nlohmann::json state = {{"epoch", epoch_},         {"batch", batch_},
                              {"global_step", global_step_}, {"adamw_steps", optimizer_.steps()},
                              {"model_config", model_config_}, {"run", run_.to_json()},
                              {"world_size", comm_->world_size()},
                              {"generators", nlohmann::json::object()}, {"history", nlohmann::json::array()}};
      for (const auto& [gname, g] : generators_) state["generators"][gname] = {{"seed", g->seed()}, {"offset", g->offset()}};
      for (const auto& r : history_) state["history"].push_back(record_to_json(r));
      write_file_atomically(tmp / "trainer_state.json", state.dump(1));
    });
    comm_->barrier();
    return dir.string();
  }

  const std::vector<StepRecord>& history() const { return history_; }
  long global_step() const { return global_step_; }
  long steps_per_epoch() const { return (batches_ + run_.accum_grad_iters - 1) / run_.accum_grad_iters; }

 private:
  static const Communicator& one_process() {
    static const SingleProcess one;
    return one;
  }

  // The step's logged values averaged over the ranks (the same keys on every rank).
  void average_over_ranks(std::map<std::string, double>& values) const {
    if (comm_->world_size() == 1) return;
    std::vector<double> v;
    for (const auto& kv : values) v.push_back(kv.second);
    v = sum_over_ranks<D>(v, *comm_);
    auto it = v.begin();
    for (auto& kv : values) kv.second = *it++ / double(comm_->world_size());
  }

  void append_metrics(const nlohmann::json& line) const {
    if (comm_->rank() != 0) return;
    std::filesystem::create_directories(run_.output_dir);
    std::ofstream out(std::filesystem::path(run_.output_dir) / "metrics.jsonl", std::ios::app);
    out << line.dump() << "\n";
  }

  void run_evaluation(std::FILE* progress, bool tty) {
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json result = evaluate_(epoch_);
    comm_->barrier();
    if (comm_->rank() != 0) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json line = {{"epoch", epoch_}, {"step", global_step_}, {"seconds", seconds}, {"eval", std::move(result)}};
    append_metrics(line);
    if (progress) {
      std::fprintf(progress, "%seval epoch %ld (%.1f s): %s\n", tty ? "\n" : "", epoch_, seconds, line["eval"].dump().c_str());
      std::fflush(progress);
    }
    evaluations_.push_back(std::move(line));
  }

  void report(std::FILE* f, bool tty, const StepRecord& r, double elapsed, long done, long total) const {
    const double rate = done > 0 ? elapsed / double(done) : 0;
    const double images_per_s =
        rate > 0 ? double(examples_per_batch_ * run_.accum_grad_iters * comm_->world_size()) / rate : 0;
    const long eta = long(rate * double(total - r.global_step));
    std::string losses;
    for (const auto& [k, v] : r.losses) losses += " " + k + " " + std::to_string(v).substr(0, 6);
    std::fprintf(f, "%sstep %ld/%ld epoch %ld%s lr %.2e %.1f img/s eta %ld:%02ld%s", tty ? "\r" : "", r.global_step, total,
                 r.epoch, losses.c_str(), r.lr, images_per_s, eta / 60, eta % 60, tty ? "   " : "\n");
    std::fflush(f);
  }

  RunConfig run_;
  nlohmann::json model_config_;
  long batches_, examples_per_batch_;
  const Communicator* comm_;
  GradientAverager<T, D> average_gradients_{std::size_t(run_.bucket_cap_mb * double(1 << 20)),
                                            GradientAverager<T, D>::thread_from(run_.grad_exchange_thread)};
  AdamW<T, D> optimizer_;
  LinearWarmupCosineLR schedule_;
  std::vector<std::string> names_;  // the trainable parameters' names, in the optimizer's order
  std::map<std::string, Generator*> generators_;
  std::vector<StepRecord> history_;
  EvalFn evaluate_;
  std::vector<nlohmann::json> evaluations_;
  long epoch_ = 0, batch_ = 0, global_step_ = 0;
};

}  // namespace blip2
