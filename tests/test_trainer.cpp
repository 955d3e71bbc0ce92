// The training loop: LAVIS's schedule and run-config keys (JSON and YAML), gradient accumulation,
// atomic checkpoints, bit-exact resume of a stage-1 run, refusals, and a full disk mid-checkpoint.
#include <signal.h>
#include <sys/resource.h>

#include <blip2/train/stage1_objectives.hpp>
#include <blip2/train/trainer.hpp>
#include <filesystem>

#include "support.hpp"

using namespace blip2;
using namespace blip2::testing;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("blip2-trainer-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

// y = W x + b learned from fixed data: a model small enough to reason about exactly.
struct Regression {
  Generator init{5};
  nn::Linear<double> layer{3, 2, init};
  Tensor<double> x, y;
  Regression() {
    Generator g(9);
    x = randn<double>({8, 3}, g);
    y = randn<double>({8, 2}, g);
  }
  // Batch `b` of `size` rows of the fixed data.
  Tensor<double> loss(long b, long size) const {
    const auto xs = x.slice(0, b * size, (b + 1) * size), ys = y.slice(0, b * size, (b + 1) * size);
    return mean(square(layer(xs) - ys));
  }
};

}  // namespace

TEST_CASE("LAVIS's linear_warmup_cosine_lr") {
  const LinearWarmupCosineLR s{1e-4, 1e-5, 1e-6, 10, 4};
  CHECK(s.lr(0, 0) == doctest::Approx(1e-6));
  CHECK(s.lr(0, 5) == doctest::Approx(1e-6 + (1e-4 - 1e-6) * 0.5));
  CHECK(s.lr(0, 10) == doctest::Approx(1e-4));
  CHECK(s.lr(0, 500) == doctest::Approx(1e-4));  // stays at init_lr for the rest of epoch 0
  CHECK(s.lr(1, 0) == doctest::Approx((1e-4 - 1e-5) * 0.5 * (1 + std::cos(M_PI / 4)) + 1e-5));
  CHECK(s.lr(1, 0) == s.lr(1, 999));  // constant within an epoch
  CHECK(s.lr(4, 0) == doctest::Approx(1e-5));
}

TEST_CASE("run config: a LAVIS project file's run section, flags, and errors") {
  const std::string yaml = R"(model:
  arch: blip2
  load_pretrained: False # trains from scratch
datasets:
  coco_caption:
    vis_processor:
        train:
          name: "blip2_image_train"
          image_size: 224
run:
  task: image_text_pretrain
  # optimizer
  lr_sched: "linear_warmup_cosine_lr"
  init_lr: 1e-4
  min_lr: 1e-5
  warmup_lr: 1e-6
  weight_decay: 0.05
  max_epoch: 10
  batch_size_train: 100
  batch_size_eval: 64
  num_workers: 4
  warmup_steps: 5000
  seed: 42
  output_dir: "output/BLIP2/Pretrain_stage1"
  amp: True
  resume_ckpt_path: null
  evaluate: False
  train_splits: ["train"]
  device: "cuda"
  world_size: 1
  dist_url: "env://"
  distributed: True
)";
  const auto j = io::parse_yaml(yaml, "pretrain_stage1.yaml");
  CHECK(j["model"]["load_pretrained"] == false);
  CHECK(j["datasets"]["coco_caption"]["vis_processor"]["train"]["image_size"] == 224);
  CHECK(j["run"]["train_splits"] == nlohmann::json::array({"train"}));
  CHECK(j["run"]["resume_ckpt_path"].is_null());
  RunConfig c = RunConfig::from_json(j, "pretrain_stage1.yaml");
  CHECK(c.init_lr == 1e-4);
  CHECK(c.warmup_steps == 5000);
  CHECK(c.batch_size_train == 100);
  CHECK(c.output_dir == "output/BLIP2/Pretrain_stage1");
  c.set("batch-size-train", "4");
  c.set("gradient_checkpointing", "true");
  CHECK(c.batch_size_train == 4);
  CHECK(c.gradient_checkpointing);
  CHECK_THROWS_WITH_AS(c.set("init_lrr", "1"), doctest::Contains("unknown run setting 'init_lrr'"), IoError);
  CHECK_THROWS_WITH_AS(c.set("max_epoch", "1.5"), doctest::Contains("whole number"), IoError);
  CHECK_THROWS_WITH_AS(RunConfig::from_json(io::parse_yaml("run:\n  init_lr: fast\n")), doctest::Contains("'init_lr' must be a number"),
                       IoError);
  CHECK_THROWS_WITH_AS(io::parse_yaml("a: 1\n  b: 2\n", "x.yaml"), doctest::Contains("x.yaml:2"), IoError);
  const auto list = io::parse_yaml("items:\n  - a: 1\n    b: two\n  - 3\nempty:\n");
  CHECK(list["items"][0]["b"] == "two");
  CHECK(list["items"][1] == 3);
  CHECK(list["empty"].is_null());
}

TEST_CASE("trainer: gradient accumulation, schedule per iteration, metrics and checkpoints") {
  const auto dir = fresh_dir("accum");
  Regression whole, halves;
  for (auto* r : {&whole, &halves}) r->layer.set_requires_grad(true);
  RunConfig run;
  run.init_lr = 0.1;
  run.warmup_lr = -1;
  run.max_epoch = 1;
  run.weight_decay = 0;
  run.output_dir = (dir / "a").string();
  Trainer<double, cpu> one(whole.layer, run, {{"model", "regression"}}, 1, 8);
  one.train([&](long, long b, auto& logged) {
    auto l = whole.loss(b, 8);
    logged["loss"] = l.item();
    return l;
  }, nullptr);
  run.accum_grad_iters = 2;
  run.output_dir = (dir / "b").string();
  Trainer<double, cpu> two(halves.layer, run, {{"model", "regression"}}, 2, 4);
  CHECK(two.steps_per_epoch() == 1);
  two.train([&](long, long b, auto& logged) {
    auto l = halves.loss(b, 4);
    logged["loss"] = l.item();
    return l;
  }, nullptr);
  // Two accumulated half batches make the same AdamW step as the whole batch.
  CHECK(max_abs_diff(whole.layer.weight, halves.layer.weight) < 1e-12);
  CHECK(two.global_step() == 1);
  CHECK(fs::exists(dir / "b" / "checkpoint-1" / "model.safetensors"));
  CHECK(fs::exists(dir / "b" / "metrics.jsonl"));
  CHECK(resolve_checkpoint_dir(dir / "b") == dir / "b" / "checkpoint-1");
  fs::remove_all(dir);
}

TEST_CASE("trainer: a stage-1 run resumed from a checkpoint is bit-identical to one that never stopped") {
  const std::string fixture = std::string(BLIP2_TEST_DATA) + "/lavis-stage1/model";
  const auto dir = fresh_dir("resume");
  const auto pixels = [] {
    Generator g(3);
    return randn<float>({6, 3, 24, 24}, g);
  }();
  const auto ids = Tensor<std::int64_t>::from_vector({6, 5}, {2, 5, 6, 3, 0, 2, 7, 8, 9, 3, 2, 10, 3, 0, 0, 2, 11, 12, 13, 3,
                                                             2, 14, 3, 0, 0, 2, 15, 16, 3, 0});
  std::vector<std::int64_t> m;
  for (auto v : ids.to_vector()) m.push_back(v != 0);
  const auto mask = Tensor<std::int64_t>::from_vector({6, 5}, m);
  RunConfig run;
  run.max_epoch = 2;
  run.batch_size_train = 2;
  run.warmup_steps = 2;
  run.init_lr = 1e-3;
  run.checkpoint_every = 2;
  // One run: 3 batches per epoch (a seeded permutation per epoch), 6 steps; the other stops after 4
  // steps and a fresh process-like setup resumes from its checkpoint.
  long calls = 0;  // batches the last run computed
  auto run_for = [&](const std::string& out, long stop_after, bool resume) {
    calls = 0;
    auto model = Blip2Stage1<float>::load(fixture);
    model->set_stage1_trainable();
    RunConfig r = run;
    r.output_dir = out;
    Generator negatives(r.seed);
    Trainer<float, cpu> trainer(*model, r, model->config.to_json(), 3, 2);
    trainer.track_generator("negatives", negatives);
    if (resume) trainer.resume(out);
    Stage1Options o;
    o.generator = &negatives;
    struct Stop {};
    try {
      trainer.train([&](long epoch, long b, auto& logged) -> Tensor<float> {
        if (trainer.global_step() == stop_after) throw Stop{};
        ++calls;
        std::vector<std::int64_t> order{0, 1, 2, 3, 4, 5};
        Generator shuffle_gen(r.seed + std::uint64_t(epoch));
        blip2::shuffle(order, shuffle_gen);
        const auto rows = Tensor<std::int64_t>::from_vector({2}, {order[std::size_t(2 * b)], order[std::size_t(2 * b + 1)]});
        const auto out = stage1_losses(*model, index_select(pixels, 0, rows), index_select(ids, 0, rows),
                                       index_select(mask, 0, rows), o);
        logged["loss_itc"] = out.loss_itc.item();
        logged["loss_itm"] = out.loss_itm.item();
        logged["loss_itg"] = out.loss_itg.item();
        return out.loss;
      }, nullptr);
    } catch (const Stop&) {
    }
    return model;
  };
  const auto straight = run_for((dir / "straight").string(), -1, false);
  run_for((dir / "split").string(), 4, false);
  CHECK(resolve_checkpoint_dir(dir / "split") == dir / "split" / "checkpoint-4");
  CHECK(calls == 4);
  const auto resumed = run_for((dir / "split").string(), -1, true);
  CHECK(calls == 2);  // it did continue from step 4
  const auto a = straight->named_parameters(), b = resumed->named_parameters();
  std::size_t compared = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].second.to_vector() == b[i].second.to_vector());  // bit for bit
    ++compared;
  }
  CHECK(compared == a.size());
  const auto history = nlohmann::json::parse(std::ifstream(dir / "split" / "checkpoint-6" / "trainer_state.json"))["history"];
  CHECK(history.size() == 6);

  SUBCASE("a checkpoint of another model or other math settings is refused, naming the field") {
    auto model = Blip2Stage1<float>::load(fixture);
    model->set_stage1_trainable();
    RunConfig r = run;
    r.output_dir = (dir / "split").string();
    nlohmann::json other = model->config.to_json();
    other["num_query_tokens"] = 16;
    Trainer<float, cpu> wrong_model(*model, r, other, 3, 2);
    CHECK_THROWS_WITH_AS(wrong_model.resume(r.output_dir), doctest::Contains("model config field 'num_query_tokens'"),
                         ValueError);
    r.init_lr = 5e-4;
    Trainer<float, cpu> wrong_run(*model, r, model->config.to_json(), 3, 2);
    CHECK_THROWS_WITH_AS(wrong_run.resume(r.output_dir), doctest::Contains("run config field 'init_lr'"), ValueError);
    CHECK_THROWS_WITH_AS(wrong_run.resume((dir / "nothing").string()), doctest::Contains("no such checkpoint"), IoError);
  }
  SUBCASE("a full disk while writing a checkpoint keeps the previous one") {
    auto model = Blip2Stage1<float>::load(fixture);
    model->set_stage1_trainable();
    RunConfig r = run;
    r.output_dir = (dir / "split").string();
    Trainer<float, cpu> trainer(*model, r, model->config.to_json(), 3, 2);
    trainer.resume(r.output_dir);
    rlimit old{};
    getrlimit(RLIMIT_FSIZE, &old);
    const auto previous = signal(SIGXFSZ, SIG_IGN);  // writes past the limit fail with EFBIG instead
    rlimit small = old;
    small.rlim_cur = 4096;
    setrlimit(RLIMIT_FSIZE, &small);
    CHECK_THROWS_WITH_AS(trainer.save_checkpoint(), doctest::Contains("the previous one is kept"), IoError);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, previous);
    CHECK(resolve_checkpoint_dir(dir / "split") == dir / "split" / "checkpoint-6");
    for (const auto& e : fs::directory_iterator(dir / "split")) CHECK(e.path().filename().string().front() != '.');
  }
  fs::remove_all(dir);
}
