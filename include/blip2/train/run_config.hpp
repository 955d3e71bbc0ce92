#pragma once
// A training run's settings under LAVIS's run-config names (lavis/projects/blip2/train/*.yaml,
// section "run:"), read from JSON or YAML (a whole LAVIS project file works: its "run" section is
// taken) and from command-line flags of the same names. LAVIS keys that do not apply here (task,
// amp, device, distributed, ...) are accepted and ignored; any other key is an error naming it, so
// a typo never silently trains with a default.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "../io/json.hpp"
#include "../io/yaml.hpp"

namespace blip2 {

struct RunConfig {
  std::string lr_sched = "linear_warmup_cosine_lr";
  double init_lr = 1e-4, min_lr = 1e-5, warmup_lr = 1e-6, weight_decay = 0.05;
  long warmup_steps = 0, max_epoch = 1, batch_size_train = 8, batch_size_eval = 16, accum_grad_iters = 1;
  long max_txt_len = 32;  // LAVIS's model config key, needed by the tokenization
  std::uint64_t seed = 42;
  int num_workers = 2;
  std::string output_dir = "output";
  // blip2's additions.
  double max_grad_norm = 0;             // clip the gradient norm to this (0: no clipping)
  long checkpoint_every = 0;            // optimizer steps between checkpoints (0: at the end of each epoch)
  long log_every = 10;                  // optimizer steps between progress lines
  bool gradient_checkpointing = false;  // recompute layers in the backward pass
  std::string frozen_dtype = "f32";     // storage of the frozen image encoder / language model
  double bucket_cap_mb = 25;            // data parallel: gradients exchanged in buckets of this size (PyTorch DDP's name)
  std::string grad_exchange_thread = "auto";  // buckets sent from a thread during backward: auto (ranks on several machines), on, off
  // Evaluation (LAVIS's evaluation run keys): retrieval re-scores each query's k_test best by ITM;
  // captioning generates with num_beams beams, min_len to max_len new tokens.
  long k_test = 128, num_beams = 5, max_len = 30, min_len = 8;

  // Reads `j` (a LAVIS project with a "run" section, or the run section itself) over the defaults.
  static RunConfig from_json(const nlohmann::json& j, const std::string& where = "run config") {
    BLIP2_CHECK(j.is_object(), IoError, where, ": not a map of run settings");
    const nlohmann::json& run = run_section(j);
    RunConfig c;
    for (auto it = run.begin(); it != run.end(); ++it) c.set_json(it.key(), it.value(), where);
    c.check(where);
    return c;
  }
  // A LAVIS project's "run" section, or `j` itself when it has none.
  static const nlohmann::json& run_section(const nlohmann::json& j) {
    return j.contains("run") && j["run"].is_object() ? j["run"] : j;
  }
  // A .yaml/.yml or .json file.
  static RunConfig load(const std::string& path) { return from_json(io::read_config_file(path), path); }

  // One setting from text (a command-line flag; '-' in the name reads as '_').
  void set(std::string key, const std::string& text) {
    for (auto& ch : key)
      if (ch == '-') ch = '_';
    nlohmann::json value = text;
    if (text == "true" || text == "false") {
      value = text == "true";
    } else {
      try {
        std::size_t used = 0;
        const double d = std::stod(text, &used);
        if (used == text.size()) value = d;
      } catch (const std::exception&) {
      }
    }
    set_json(key, value, "--" + key);
    check("--" + key);
  }

  nlohmann::json to_json() const {
    return {{"lr_sched", lr_sched}, {"init_lr", init_lr}, {"min_lr", min_lr}, {"warmup_lr", warmup_lr},
            {"weight_decay", weight_decay}, {"warmup_steps", warmup_steps}, {"max_epoch", max_epoch},
            {"batch_size_train", batch_size_train}, {"batch_size_eval", batch_size_eval},
            {"accum_grad_iters", accum_grad_iters}, {"max_txt_len", max_txt_len}, {"seed", seed},
            {"num_workers", num_workers}, {"output_dir", output_dir}, {"max_grad_norm", max_grad_norm},
            {"checkpoint_every", checkpoint_every}, {"log_every", log_every},
            {"gradient_checkpointing", gradient_checkpointing}, {"frozen_dtype", frozen_dtype},
            {"bucket_cap_mb", bucket_cap_mb}, {"grad_exchange_thread", grad_exchange_thread},
            {"k_test", k_test}, {"num_beams", num_beams}, {"max_len", max_len}, {"min_len", min_len}};
  }

  // The settings that change the numbers a run computes: a resumed run must keep them.
  static const std::set<std::string>& math_keys() {
    static const std::set<std::string> keys{"lr_sched", "init_lr", "min_lr", "warmup_lr", "weight_decay", "warmup_steps",
                                            "max_epoch", "batch_size_train", "accum_grad_iters", "max_txt_len", "seed",
                                            "max_grad_norm", "frozen_dtype"};
    return keys;
  }

 private:
  void set_json(const std::string& key, const nlohmann::json& v, const std::string& where) {
    static const std::set<std::string> lavis_only{
        "task", "amp", "device", "world_size", "dist_url", "distributed", "evaluate", "train_splits", "valid_splits",
        "test_splits", "resume_ckpt_path", "use_dist_eval_sampler",
        "report_metric", "prompt", "lr_layer_decay", "iters_per_inner_epoch", "max_iters", "inference_method",
        "num_ans_candidates", "answer_list"};
    auto get = [&](auto& field) {
      using F = std::decay_t<decltype(field)>;
      try {
        if constexpr (std::is_same_v<F, std::string>) {
          BLIP2_CHECK(v.is_string(), IoError, where, ": '", key, "' must be a string, got ", v.dump());
          field = v.get<std::string>();
        } else if constexpr (std::is_same_v<F, bool>) {
          BLIP2_CHECK(v.is_boolean(), IoError, where, ": '", key, "' must be true or false, got ", v.dump());
          field = v.get<bool>();
        } else {
          BLIP2_CHECK(v.is_number(), IoError, where, ": '", key, "' must be a number, got ", v.dump());
          const double d = v.get<double>();
          if constexpr (std::is_integral_v<F>)
            BLIP2_CHECK(d == std::floor(d) && std::abs(d) < 9e15 && (std::is_signed_v<F> || d >= 0), IoError, where, ": '",
                        key, "' must be a whole number, got ", v.dump());
          field = F(d);
        }
      } catch (const nlohmann::json::exception& e) {
        throw IoError(where + ": '" + key + "': " + e.what());
      }
    };
    if (key == "lr_sched") get(lr_sched);
    else if (key == "init_lr") get(init_lr);
    else if (key == "min_lr") get(min_lr);
    else if (key == "warmup_lr") get(warmup_lr);
    else if (key == "weight_decay") get(weight_decay);
    else if (key == "warmup_steps") get(warmup_steps);
    else if (key == "max_epoch") get(max_epoch);
    else if (key == "batch_size_train") get(batch_size_train);
    else if (key == "batch_size_eval") get(batch_size_eval);
    else if (key == "accum_grad_iters") get(accum_grad_iters);
    else if (key == "max_txt_len") get(max_txt_len);
    else if (key == "seed") get(seed);
    else if (key == "num_workers") get(num_workers);
    else if (key == "output_dir") get(output_dir);
    else if (key == "max_grad_norm") get(max_grad_norm);
    else if (key == "checkpoint_every") get(checkpoint_every);
    else if (key == "log_every") get(log_every);
    else if (key == "gradient_checkpointing") get(gradient_checkpointing);
    else if (key == "frozen_dtype") get(frozen_dtype);
    else if (key == "bucket_cap_mb") get(bucket_cap_mb);
    else if (key == "grad_exchange_thread") get(grad_exchange_thread);
    else if (key == "k_test") get(k_test);
    else if (key == "num_beams") get(num_beams);
    else if (key == "max_len") get(max_len);
    else if (key == "min_len") get(min_len);
    else BLIP2_CHECK(lavis_only.count(key), IoError, where, ": unknown run setting '", key, "'");
  }

  void check(const std::string& where) const {
    BLIP2_CHECK(lr_sched == "linear_warmup_cosine_lr", IoError, where, ": lr_sched '", lr_sched,
                "' is not supported (linear_warmup_cosine_lr)");
    BLIP2_CHECK(init_lr > 0 && min_lr >= 0 && weight_decay >= 0 && warmup_steps >= 0 && max_epoch >= 1 &&
                    batch_size_train >= 1 && batch_size_eval >= 1 && accum_grad_iters >= 1 && max_txt_len >= 2 &&
                    num_workers >= 0 && max_grad_norm >= 0 && checkpoint_every >= 0 && log_every >= 1 &&
                    bucket_cap_mb > 0 && k_test >= 1 && num_beams >= 1 && max_len >= 1 && min_len >= 0,
                IoError, where, ": a setting is out of range: ", to_json().dump());
    BLIP2_CHECK(frozen_dtype == "f32" || frozen_dtype == "bf16" || frozen_dtype == "f16", IoError, where,
                ": frozen_dtype '", frozen_dtype, "' (f32, bf16 or f16)");
    BLIP2_CHECK(grad_exchange_thread == "auto" || grad_exchange_thread == "on" || grad_exchange_thread == "off", IoError,
                where, ": grad_exchange_thread '", grad_exchange_thread, "' (auto, on or off)");
  }
};

}  // namespace blip2
