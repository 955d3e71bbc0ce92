#pragma once
// blip2 train: fine-tunes BLIP-2 on the user's image-text data with LAVIS's recipe
// (train/trainer.hpp): stage 1 (the Q-Former with ITC, ITM and ITG on the frozen image encoder)
// from a stage-1 / retrieval model directory, or stage 2 (query tokens, Q-Former, projection and
// ln_vision through the frozen OPT or Flan-T5) from a Blip2ForConditionalGeneration directory.
//
// Every flag, file and dataset is checked before the model loads, so a typo costs no model load.
// Data: LAVIS annotation files (--annotations, optionally with --images) and webdataset tar shards
// (--shards), mixed batch by batch by --ratio (data/loader.hpp). An epoch is --iters-per-epoch
// batches (or the run config's iters_per_inner_epoch), else all examples of all datasets, counted
// by a first pass that reads the annotation lists and shard members without decoding any image,
// divided by batch_size_train (the last, smaller batch dropped). A dataset that runs out within
// an epoch starts another (reshuffled) pass, so a skipped bad image never shortens an epoch.
//
// Text as LAVIS's models tokenize it (truncation keeps the special tokens):
//   stage 1  [CLS] caption [SEP], padded to max_txt_len (Blip2Qformer: padding="max_length");
//   OPT      </s> prompt caption "\n", padded to the longest row; the prompt's tokens and the BOS
//            are not scored (prompt_length; none without --prompt);
//   Flan-T5  each caption split by split_prefix_lm at a point drawn from its position in the run;
//            prefix </s> to the encoder, suffix </s> as the targets, each padded to the longest.
//
// Outputs in output_dir: the trainer's checkpoints and metrics.jsonl, loss_curves.svg, and final/,
// a complete model directory the pipelines load (the trained weights, config.json and the input
// directory's tokenizer and generation files). The last line of stdout is one JSON object.
//
// Cached image features (--cache-image-features DIR): the frozen image encoder runs once over every
// training image (evaluation transform: no crop or flip) and its features are kept in DIR as
// memory-mapped safetensors shards (train/image_feature_cache.hpp); every later epoch and run reads
// them instead of decoding and encoding images. A cache made with another encoder or image size is
// refused; one made from other data lacks images, which are skipped as bad images.
//
// Evaluation (--eval-annotations FILE [--eval-images ROOT] [--eval-max-images N], a LAVIS annotation
// file such as coco_karpathy_val.json): after every epoch, as LAVIS's runner evaluates its valid
// split: stage 1 retrieval recall@1/5/10 both ways (ITC top k_test re-scored by ITM,
// eval/evaluate_retrieval.hpp), stage 2 BLEU-1..4 and CIDEr-D of captions generated with num_beams,
// max_len and min_len (eval/evaluate_captioning.hpp; the captions in output_dir/eval/). The scores
// go to metrics.jsonl as {"eval": ...} lines and the last ones into the summary. Rank 0 evaluates
// alone while the other ranks wait.
//
// Data parallel (job.hpp: mpirun -np W blip2 train ...): batch_size_train is each rank's, as in
// LAVIS, so the global batch is batch_size_train * W; rank r trains on rows [r b, (r + 1) b) of
// each global batch, and W ranks train the same steps as one process with the global batch (to
// float rounding; ITC/ITM over the global batch, stage 2's token mean over the global batch).
// Rank 0 prints the progress and the summary and writes every file; the other ranks print their
// own warnings and errors only, prefixed with "rank r/W: ".
#include <unistd.h>

#include <blip2/data/loader.hpp>
#include <blip2/eval/evaluate_captioning.hpp>
#include <blip2/eval/evaluate_retrieval.hpp>
#include <blip2/io/yaml.hpp>
#include <blip2/pipelines/model_dir.hpp>
#include <blip2/tokenizers/batch.hpp>
#include <blip2/tokenizers/load.hpp>
#include <blip2/train/image_feature_cache.hpp>
#include <blip2/train/loss_curves.hpp>
#include <blip2/train/stage1_objectives.hpp>
#include <blip2/train/stage2_objectives.hpp>
#include <blip2/train/trainer.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.hpp"
#include "job.hpp"

namespace blip2::cli {

namespace train_detail {

namespace fs = std::filesystem;
using Ids = Tensor<std::int64_t>;
using tokenizers::Id;
using tokenizers::framed;
using tokenizers::pad_right;

// The flags of `blip2 train` besides the run settings (RunConfig's keys, also accepted as flags).
inline const std::vector<std::string>& own_flags() {
  static const std::vector<std::string> names{
      "stage",  "model",       "annotations", "images",       "shards",          "ratio",  "config",
      "resume", "init_qformer", "prompt",     "on_bad_image", "iters_per_epoch", "threads",
      "eval_annotations", "eval_images", "eval_max_images", "cache_image_features"};
  return names;
}

// RunConfig's keys, which are flags too.
inline std::vector<std::string> run_keys() {
  const nlohmann::json j = RunConfig{}.to_json();
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  return keys;
}

// A flag may be spelled with '-' or '_' (--output-dir, --output_dir), as RunConfig::set reads it.
inline std::string with(std::string name, char from, char to) {
  for (auto& c : name)
    if (c == from) c = to;
  return name;
}

// The spelling of `name` on the command line; empty when absent. Both spellings at once is an error.
inline std::string spelling(const Args& a, const std::string& name) {
  const std::string under = with(name, '-', '_'), dash = with(name, '_', '-');
  BLIP2_CHECK(!(under != dash && a.has(under) && a.has(dash)), ValueError, "--", dash, " and --", under,
              " are the same flag; give it once");
  return a.has(under) ? under : a.has(dash) ? dash : std::string();
}
inline bool given(const Args& a, const std::string& name) { return !spelling(a, name).empty(); }
inline std::string value(const Args& a, const std::string& name) {
  const std::string s = spelling(a, name);
  return a.get(s.empty() ? with(name, '_', '-') : s);
}
// The values of a flag that takes one or more; none when it is absent.
inline std::vector<std::string> values(const Args& a, const std::string& name) {
  const std::string s = spelling(a, name);
  if (s.empty()) return {};
  BLIP2_CHECK(!a.all(s).empty(), ValueError, "missing --", s, " <value>...");
  return a.all(s);
}

// What a training run needs, gathered and checked before the model loads.
struct TrainSetup {
  int stage = 1;
  std::string model_dir, resume_from, init_qformer, prompt;
  std::string feature_cache;  // --cache-image-features: the folder of the cached frozen image features
  RunConfig run;
  Blip2Config config;
  std::vector<data::LoaderSource> sources;
  long batches_per_epoch = 0;
  index_t prompt_length = 0;  // LAVIS's prompt_length: the prompt's tokens with the BOS (0: no prompt)
  data::OnBadImage bad_image = data::OnBadImage::skip;
  std::unique_ptr<tokenizers::Tokenizer> tokenizer;  // stage 1: the Q-Former's WordPiece; stage 2: the LM's
  const Communicator* comm = nullptr;                 // the job's ranks
  std::shared_ptr<const data::EvalSet> eval_set;      // --eval-annotations: evaluated after every epoch
  long global_batch() const { return run.batch_size_train * comm->world_size(); }
};

// Examples in webdataset shards, read without decoding the images.
inline std::size_t count_shard_samples(const std::vector<std::string>& shards) {
  data::TarShardReader reader(shards);
  std::size_t n = 0;
  for (data::ShardSample s; reader.next(s);) ++n;
  return n;
}

// The datasets of --annotations / --images / --shards / --ratio (annotation files first, then
// shard patterns, each in the order given); returns the number of examples they hold (the shards'
// counted only when `count_shards`: that reads them through).
inline std::size_t add_datasets(const Args& a, bool count_shards, TrainSetup& s) {
  const auto annotations = values(a, "annotations"), roots = values(a, "images"), shards = values(a, "shards");
  BLIP2_CHECK(!annotations.empty() || !shards.empty(), ValueError,
              "missing data: give --annotations FILE [--images ROOT] or --shards PATTERN (or several)");
  BLIP2_CHECK(roots.size() <= 1 || roots.size() == annotations.size(), ValueError, "--images: ", roots.size(),
              " image roots for ", annotations.size(), " annotation files (give one for all, or one per file)");
  BLIP2_CHECK(roots.empty() || !annotations.empty(), ValueError, "--images needs --annotations (shards hold their images)");
  std::size_t examples = 0;
  for (std::size_t i = 0; i < annotations.size(); ++i) {
    // Without --images, image paths are relative to the annotation file's folder.
    std::string root = roots.empty() ? fs::path(annotations[i]).parent_path().string() : roots[roots.size() == 1 ? 0 : i];
    if (root.empty()) root = ".";
    BLIP2_CHECK(fs::is_directory(root), IoError, root, ": no such image folder (for ", annotations[i], ")");
    auto list = data::CaptionList::load(annotations[i], root);
    examples += list->size();
    s.sources.push_back({list});
  }
  for (const auto& pattern : shards) {
    auto set = std::make_shared<data::CaptionShards>(pattern);
    if (count_shards) {
      const std::size_t n = count_shard_samples(set->shards());
      BLIP2_CHECK(n > 0, ValueError, "--shards ", pattern, ": no complete image-caption sample in ", set->name());
      examples += n;
    }
    s.sources.push_back({set});
  }
  const auto ratios = values(a, "ratio");
  BLIP2_CHECK(ratios.empty() || ratios.size() == s.sources.size(), ValueError, "--ratio: ", ratios.size(),
              " ratios for ", s.sources.size(), " datasets (annotation files first, then shards)");
  for (std::size_t i = 0; i < ratios.size(); ++i) {
    s.sources[i].ratio = parse_double("ratio", ratios[i]);
    BLIP2_CHECK(s.sources[i].ratio > 0, ValueError, "--ratio: ratios must be positive, got ", ratios[i]);
  }
  return examples;
}

// The evaluation split of --eval-annotations [--eval-images ROOT] [--eval-max-images N], with every
// image it names checked to be there.
inline void add_eval_set(const Args& a, TrainSetup& s) {
  BLIP2_CHECK(given(a, "eval_annotations") || (!given(a, "eval_images") && !given(a, "eval_max_images")), ValueError,
              "--eval-images and --eval-max-images need --eval-annotations");
  if (!given(a, "eval_annotations")) return;
  const std::string path = value(a, "eval_annotations");
  std::string root = given(a, "eval_images") ? value(a, "eval_images") : fs::path(path).parent_path().string();
  if (root.empty()) root = ".";
  BLIP2_CHECK(fs::is_directory(root), IoError, root, ": no such image folder (for --eval-annotations ", path, ")");
  long long max_images = 0;
  if (given(a, "eval_max_images")) {
    max_images = parse_int("eval-max-images", value(a, "eval_max_images"));
    BLIP2_CHECK(max_images >= 1, ValueError, "--eval-max-images must be >= 1, got ", max_images);
  }
  BLIP2_CHECK(s.run.min_len <= s.run.max_len, ValueError, "min_len ", s.run.min_len, " is above max_len ", s.run.max_len,
              " (the evaluation's caption lengths)");
  auto set = std::make_shared<data::EvalSet>(data::EvalSet::load(path, root, std::size_t(max_images)));
  for (std::size_t i = 0; i < set->size(); ++i)
    BLIP2_CHECK(fs::is_regular_file((*set)[i].path), IoError, path, ": evaluation image ", (*set)[i].path, " is not there");
  s.eval_set = std::move(set);
}

// The output folder, or the nearest existing folder above it, must be a folder we may write to.
inline void check_writable(const std::string& output_dir, const char* flag = "--output_dir") {
  fs::path p = fs::absolute(output_dir);
  while (!fs::exists(p) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  BLIP2_CHECK(fs::is_directory(p) && ::access(p.c_str(), W_OK) == 0, IoError, flag, " ", output_dir, ": ",
              p.string(), fs::is_directory(p) ? " is not writable" : " is not a folder");
}

// The run settings: the config file's (a LAVIS project's "run:" section works), then the flags.
// LAVIS's iters_per_inner_epoch, which RunConfig ignores, is taken from the file too.
inline long read_run_config(const Args& a, RunConfig& run) {
  long iters_per_epoch = 0;
  if (given(a, "config")) {
    const std::string path = value(a, "config");
    BLIP2_CHECK(fs::is_regular_file(path), IoError, path, ": no such config file (--config)");
    const nlohmann::json j = io::read_config_file(path);
    run = RunConfig::from_json(j, path);
    const nlohmann::json& section = RunConfig::run_section(j);
    if (section.contains("iters_per_inner_epoch")) {
      const auto& v = section["iters_per_inner_epoch"];
      BLIP2_CHECK(v.is_number_integer() && v.get<long>() > 0, IoError, path,
                  ": iters_per_inner_epoch must be a positive whole number, got ", v.dump());
      iters_per_epoch = v.get<long>();
    }
  }
  for (const auto& key : run_keys()) {
    if (!given(a, key)) continue;
    if (key == "output_dir") {
      run.output_dir = value(a, key);  // any text, even one that reads as a number
    } else {
      run.set(key, value(a, key));
    }
  }
  if (given(a, "iters_per_epoch")) {
    iters_per_epoch = long(parse_int("iters-per-epoch", value(a, "iters_per_epoch")));
    BLIP2_CHECK(iters_per_epoch > 0, ValueError, "--iters-per-epoch must be positive, got ", iters_per_epoch);
  }
  return iters_per_epoch;
}

// Checks every flag, file and dataset and loads the tokenizer; the model is not loaded.
inline TrainSetup prepare(const Args& a, const Communicator& comm) {
  std::set<std::string> known;
  for (const auto& k : own_flags()) known.insert({with(k, '-', '_'), with(k, '_', '-')});
  for (const auto& k : run_keys()) known.insert({k, with(k, '_', '-')});
  a.allow(known);

  TrainSetup s;
  s.comm = &comm;
  const std::string stage = value(a, "stage");
  BLIP2_CHECK(stage == "1" || stage == "2", ValueError, "--stage: expected 1 or 2, got '", stage, "'");
  s.stage = stage == "1" ? 1 : 2;
  s.model_dir = value(a, "model");
  s.config = load_config(s.model_dir);
  BLIP2_CHECK(given(a, "output_dir"), ValueError, "missing --output_dir <folder> (checkpoints and the trained model)");
  if (given(a, "threads")) {
    const long long n = parse_int("threads", value(a, "threads"));
    BLIP2_CHECK(n >= 1, ValueError, "--threads must be >= 1, got ", n);
    set_num_threads(int(n));
  }
  const long iters_per_epoch = read_run_config(a, s.run);

  if (given(a, "on_bad_image")) {
    const std::string v = value(a, "on_bad_image");
    BLIP2_CHECK(v == "skip" || v == "stop", ValueError, "--on-bad-image: expected skip or stop, got '", v, "'");
    s.bad_image = v == "skip" ? data::OnBadImage::skip : data::OnBadImage::raise;
  }
  if (given(a, "prompt")) s.prompt = value(a, "prompt");
  if (given(a, "cache_image_features")) {
    s.feature_cache = value(a, "cache_image_features");
    check_writable(s.feature_cache, "--cache-image-features");
  }
  if (given(a, "init_qformer")) s.init_qformer = value(a, "init_qformer");
  if (given(a, "resume")) {
    const auto v = a.all(spelling(a, "resume"));  // none: the output folder
    BLIP2_CHECK(v.size() <= 1, ValueError, "--resume takes at most one folder, got ", v.size());
    s.resume_from = v.empty() ? s.run.output_dir : v.front();
    resolve_checkpoint_dir(s.resume_from);  // a checkpoint, or a run folder with one
  } else {
    BLIP2_CHECK(!fs::exists(fs::path(s.run.output_dir) / "latest"), ValueError, s.run.output_dir,
                " holds the checkpoints of an earlier run: continue it with --resume, or choose another --output_dir");
  }

  check_writable(s.run.output_dir);

  const fs::path dir(s.model_dir);
  if (s.stage == 1) {
    BLIP2_CHECK(s.config.is_retrieval(), ValueError, s.model_dir,
                ": stage 1 trains a stage-1 (Blip2ForImageTextRetrieval) model; this directory holds ",
                s.config.architectures.empty() ? std::string("another model") : s.config.architectures.front());
    BLIP2_CHECK(s.run.frozen_dtype == "f32", ValueError, "--frozen_dtype ", s.run.frozen_dtype,
                ": stage 1 keeps the image encoder in f32");
    BLIP2_CHECK(s.prompt.empty(), ValueError, "--prompt is for stage 2 with OPT (stage 1 trains on the captions alone)");
    BLIP2_CHECK(s.init_qformer.empty(), ValueError, "--init-qformer is for stage 2 (stage 1 starts from --model)");
    const fs::path vocab = dir / "vocab.txt";
    BLIP2_CHECK(fs::exists(vocab), IoError, s.model_dir, ": no Q-Former tokenizer: expected ", vocab.string(),
                " (the bert-base-uncased vocabulary)");
    s.tokenizer =
        std::make_unique<tokenizers::WordPieceTokenizer>(tokenizers::WordPieceTokenizer::qformer(vocab.string()));
  } else {
    BLIP2_CHECK(!s.config.is_retrieval(), ValueError, s.model_dir,
                ": stage 2 trains a Blip2ForConditionalGeneration (OPT or Flan-T5) model; this is a retrieval model");
    BLIP2_CHECK(s.prompt.empty() || s.config.text_model_type == "opt", ValueError,
                "--prompt is for OPT (Flan-T5's prefix comes from each caption)");
    BLIP2_CHECK(tokenizers::has_tokenizer_files(s.model_dir), IoError, s.model_dir,
                ": no tokenizer: expected tokenizer.json, spiece.model, or vocab.json and merges.txt");
    s.tokenizer = tokenizers::load_tokenizer(s.model_dir);
    if (!s.init_qformer.empty()) {
      const Blip2Config q = load_config(s.init_qformer);
      BLIP2_CHECK(q.is_retrieval() && q.num_query_tokens == s.config.num_query_tokens &&
                      q.qformer.hidden_size == s.config.qformer.hidden_size,
                  ValueError, "--init-qformer ", s.init_qformer, ": expected a stage-1 model with ", s.config.num_query_tokens,
                  " queries of width ", s.config.qformer.hidden_size, "; it has ", q.num_query_tokens, " of width ",
                  q.qformer.hidden_size, q.is_retrieval() ? "" : " and is no stage-1 model");
    }
  }

  if (!s.prompt.empty()) {
    s.prompt_length = index_t(1 + s.tokenizer->encode(s.prompt, false).size());
    BLIP2_CHECK(s.prompt_length < s.run.max_txt_len, ValueError, "--prompt '", s.prompt, "' is ", s.prompt_length,
                " tokens with the BOS: no room for a caption within max_txt_len ", s.run.max_txt_len);
  }

  add_eval_set(a, s);
  const std::size_t examples = add_datasets(a, iters_per_epoch == 0, s);
  for (auto& source : s.sources) source.captions.prompt = s.prompt;
  if (iters_per_epoch > 0) {
    s.batches_per_epoch = iters_per_epoch;
  } else {
    s.batches_per_epoch = long(examples) / s.global_batch();
    BLIP2_CHECK(s.batches_per_epoch > 0, ValueError, "the data holds ", examples, " examples: not one batch of ",
                s.global_batch(), " (batch_size_train",
                comm.world_size() > 1 ? " " + std::to_string(s.run.batch_size_train) + " on " +
                                            std::to_string(comm.world_size()) + " ranks)"
                                      : std::string(")"));
  }
  return s;
}

// The loader's batches by position, as the trainer asks for them: a new epoch restarts the loader
// (each epoch's batches depend only on the seed and the epoch), and a position past the loader's (a
// resumed run) is reached by drawing and dropping the batches before it. Dropping decodes their
// images: resuming in the middle of an epoch costs the loading up to the checkpoint.
class BatchFeed {
 public:
  // With a feature cache the loader reads no image: batches carry names to look the features up by.
  BatchFeed(const TrainSetup& s, const ImageFeatureCache* cache) : loader_(s.sources, options(s, cache)) {}

  const data::Batch& at(long epoch, long index) {
    if (epoch != epoch_) {
      loader_.set_epoch(std::uint64_t(epoch));
      epoch_ = epoch;
      next_ = 0;
    }
    BLIP2_CHECK(index >= next_, ValueError, "train: batch ", index, " of epoch ", epoch, " was asked for after batch ",
                next_ - 1);
    for (; next_ <= index; ++next_)
      BLIP2_CHECK(loader_.next(batch_), ValueError, "train: the data gave no batch ", next_, " in epoch ", epoch);
    return batch_;
  }
  std::size_t skipped_images() const { return loader_.stats().skipped; }

 private:
  static data::LoaderOptions options(const TrainSetup& s, const ImageFeatureCache* cache) {
    data::LoaderOptions o;
    if (cache) {
      o.decode_images = false;
      o.has_image = [cache](const std::string& image) { return cache->contains(image); };
    }
    o.batch_size = int(s.run.batch_size_train);
    o.image_size = s.config.vision.image_size;
    o.seed = s.run.seed;
    o.batches_per_epoch = std::size_t(s.batches_per_epoch);
    o.workers = std::max(1, s.run.num_workers);
    o.bad_image = s.bad_image;
    o.rank = s.comm->rank();
    o.world_size = s.comm->world_size();
    o.warn = [prefix = rank_prefix(*s.comm)](const std::string& w) {
      std::fprintf(stderr, "blip2 train: %swarning: skipped an image: %s\n", prefix.c_str(), w.c_str());
    };
    return o;
  }

  data::Loader loader_;
  data::Batch batch_;
  long epoch_ = -1, next_ = 0;
};

inline std::size_t word_count(const std::string& text) {
  std::istringstream in(text);
  std::size_t n = 0;
  for (std::string w; in >> w;) ++n;
  return n;
}

// The targets a token-mean loss scores (not -100).
inline double scored_tokens(const Ids& targets) {
  const auto t = targets.contiguous().to_vector();
  return double(std::count_if(t.begin(), t.end(), [](std::int64_t id) { return id != -100; }));
}

inline Id special_or(Id id, int fallback) { return id == tokenizers::kNoId ? Id(fallback) : id; }

// The tokenizer files and generation settings a model directory ships beside its weights.
inline void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                           "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "generation_config.json",
                           "preprocessor_config.json", "processor_config.json"})
    if (fs::exists(from / name)) fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing);
}

// Writes output_dir/final atomically (rank 0; every rank returns once it is there): a complete
// model directory or none is there.
inline std::string write_final(const TrainSetup& s, const std::function<void(const fs::path&)>& fill) {
  const fs::path out = fs::path(s.run.output_dir) / "final";
  if (s.comm->rank() == 0) write_dir_atomically(out, fill);
  s.comm->barrier();
  return out.string();
}

// The frozen image features of the training data, cached in --cache-image-features (built there by
// rank 0 on first use, with batch_size_eval images per encoder call); null without the flag.
template <class Vision>
std::unique_ptr<const ImageFeatureCache> image_feature_cache(const TrainSetup& s, const Vision& vision) {
  if (s.feature_cache.empty()) return nullptr;
  const auto identity = ImageFeatureCache::identity_of(vision, s.config.vision.image_size);
  if (s.comm->rank() == 0 && !ImageFeatureCache::exists(s.feature_cache)) {
    const Stopwatch watch;
    ImageFeatureCache::BuildOptions o;
    o.image_size = s.config.vision.image_size;
    o.batch_size = std::size_t(s.run.batch_size_eval);
    o.bad_image = s.bad_image;
    o.warn = [](const std::string& w) { std::fprintf(stderr, "blip2 train: warning: %s\n", w.c_str()); };
    std::vector<std::shared_ptr<const data::Dataset>> datasets;
    for (const auto& source : s.sources) datasets.push_back(source.dataset);
    const auto cache = ImageFeatureCache::build(s.feature_cache, datasets, identity,
                                                [&](const Tensor<float>& pixels) { return vision.encode(pixels); }, o);
    std::fprintf(stderr, "train: cached the image features of %zu images in %s (%.1f s)\n", cache.size(),
                 s.feature_cache.c_str(), watch.seconds());
  }
  s.comm->barrier();
  auto cache = std::make_unique<const ImageFeatureCache>(ImageFeatureCache::open(s.feature_cache, identity));
  if (s.comm->rank() == 0)
    std::fprintf(stderr, "train: image features of %zu images from %s (no augmentation)\n", cache->size(),
                 s.feature_cache.c_str());
  return cache;
}

// The frozen image encoder's features of a batch: from the cache, or computed from its pixels.
template <class Vision>
Tensor<float> batch_features(const data::Batch& batch, const ImageFeatureCache* cache, const Vision& vision) {
  return cache ? cache->features(batch.images) : vision.encode(batch.pixel_values);
}

struct TrainResult {
  std::vector<StepRecord> history;
  std::string final_dir;
  long steps = 0;
  std::size_t skipped_images = 0;
  nlohmann::json evaluation;  // the last epoch's (--eval-annotations)
};

inline void report_load(const TrainSetup& s, const char* what, const Stopwatch& load) {
  if (s.comm->rank() != 0) return;
  std::fprintf(stderr, "train: loaded %s (%s) in %.2f s; %ld batches of %ld per epoch, %ld epochs\n", s.model_dir.c_str(),
               what, load.seconds(), s.batches_per_epoch, s.global_batch(), s.run.max_epoch);
  if (s.comm->world_size() > 1)
    std::fprintf(stderr, "train: data parallel over %d ranks, %ld examples each per batch\n", s.comm->world_size(),
                 s.run.batch_size_train);
}

// LAVIS's image_id for a batch: one per image file (an FNV-1a hash of its name), gathered over the
// ranks in global-batch order, so two captions of one image are not each other's negatives.
inline std::vector<std::int64_t> global_image_ids(const std::vector<std::string>& images, const Communicator& comm) {
  std::vector<std::int64_t> local;
  for (const auto& name : images) local.push_back(std::int64_t(data::detail::fnv1a(name)));
  std::vector<std::int64_t> global(local.size() * std::size_t(comm.world_size()));
  comm.all_gather_bytes(local.data(), global.data(), local.size() * sizeof(std::int64_t));
  return global;
}

inline TrainResult train_stage1(const TrainSetup& s) {
  const Stopwatch load;
  auto model = Blip2Stage1<float>::load(s.model_dir);
  if (!model->has_itg_head()) {  // a retrieval checkpoint (blip2-itm-vit-g): stage 1 trains ITG too
    Generator init(s.run.seed + 1);
    model->init_itg_head(init);
  }
  model->set_stage1_trainable();
  model->qformer->gradient_checkpointing = s.run.gradient_checkpointing;
  report_load(s, "stage 1: ITC + ITM + ITG", load);

  Trainer<float, cpu> trainer(*model, s.run, model->config.to_json(), s.batches_per_epoch, s.run.batch_size_train,
                              s.comm);
  Generator negatives(s.run.seed + 2);
  trainer.track_generator("negatives", negatives);
  if (!s.resume_from.empty()) trainer.resume(s.resume_from);
  if (s.eval_set)
    trainer.evaluate_after_each_epoch([&](long) -> nlohmann::json {
      if (s.comm->rank() != 0) return nullptr;
      const eval::RetrievalEvalOptions o{s.run.k_test, s.run.batch_size_eval, s.run.max_txt_len};
      return eval::to_json(eval::evaluate_retrieval(*model, *s.eval_set, *s.tokenizer, o));
    });
  Stage1Options options;
  options.generator = &negatives;
  options.comm = s.comm;
  const auto& special = s.tokenizer->special_ids();
  const auto cache = image_feature_cache(s, *model->vision_model);
  BatchFeed feed(s, cache.get());
  trainer.train([&](long epoch, long b, std::map<std::string, double>& logged) {
    const data::Batch& batch = feed.at(epoch, b);
    std::vector<std::vector<Id>> rows;
    for (const auto& caption : batch.captions)
      rows.push_back(framed({special.cls}, s.tokenizer->encode(caption, false), {special.sep}, s.run.max_txt_len));
    const auto [ids, mask] = pad_right(rows, s.config.qformer.pad_token_id, std::size_t(s.run.max_txt_len));
    options.image_ids = global_image_ids(batch.images, *s.comm);
    const auto out =
        stage1_losses_from_features(*model, batch_features(batch, cache.get(), *model->vision_model), ids, mask, options);
    logged["loss_itc"] = out.loss_itc.item();
    logged["loss_itm"] = out.loss_itm.item();
    logged["loss_itg"] = out.loss_itg.item();
    logged["loss"] = out.loss.item();
    return out.loss;
  });
  TrainResult r{trainer.history(), "", trainer.global_step(), feed.skipped_images(),
                trainer.evaluations().empty() ? nlohmann::json() : trainer.evaluations().back()["eval"]};
  r.final_dir = write_final(s, [&](const fs::path& dir) {
    model->save(dir.string());
    copy_tokenizer_files(s.model_dir, dir);
  });
  return r;
}

// Copies query_tokens, qformer.* and vision_model.post_layernorm.* (LAVIS's ln_vision) from a
// stage-1 model directory into `model` where the names and shapes match.
template <class Model>
void init_qformer_from_stage1(const Model& model, const std::string& dir) {
  const auto stage1 = Blip2Stage1<float>::load(dir);
  const auto [copied, skipped] = nn::copy_matching_parameters(*stage1, model, [](const std::string& name) {
    return name == "query_tokens" || name.rfind("qformer.", 0) == 0 || name.rfind("vision_model.post_layernorm.", 0) == 0;
  });
  BLIP2_CHECK(copied > 0, ValueError, "--init-qformer ", dir, ": no Q-Former tensor with a matching name and shape");
  std::fprintf(stderr, "train: %zu tensors from the stage-1 model %s (%zu without a match kept)\n", copied, dir.c_str(),
               skipped);
}

// Captions of the evaluation split with the run's num_beams, max_len and min_len, continuing the
// training prompt (its trailing spaces dropped, as LAVIS's generation prompt "a photo of" has none);
// the captions go to output_dir/eval/captions_epoch<E>.json (LAVIS's result file), the scores back.
template <class Model>
nlohmann::json evaluate_captions(const Model& model, const TrainSetup& s, long epoch) {
  eval::CaptionEvalOptions o;
  o.prompt = s.prompt.substr(0, s.prompt.find_last_not_of(' ') + 1);
  o.batch_size = s.run.batch_size_eval;
  o.generation.num_beams = int(s.run.num_beams);
  o.generation.max_new_tokens = int(s.run.max_len);
  o.generation.min_new_tokens = int(s.run.min_len);
  const auto e = eval::evaluate_captioning(model, *s.eval_set, *s.tokenizer, o);
  nlohmann::json results = nlohmann::json::array();
  for (std::size_t i = 0; i < e.captions.size(); ++i)
    results.push_back({{"image", (*s.eval_set)[i].path}, {"caption", e.captions[i]}});
  const fs::path dir = fs::path(s.run.output_dir) / "eval";
  fs::create_directories(dir);
  io::write_json_file((dir / ("captions_epoch" + std::to_string(epoch) + ".json")).string(), results);
  return eval::to_json(e.scores);
}

template <class Model>
inline constexpr bool is_t5 = false;
template <class T, class D, class W>
inline constexpr bool is_t5<Blip2T5<T, D, W>> = true;

template <class Model>
TrainResult train_stage2(const TrainSetup& s) {
  const Stopwatch load;
  auto model = load_model<Model>(s.model_dir, s.config);
  if (!s.init_qformer.empty()) init_qformer_from_stage1(*model, s.init_qformer);
  model->set_stage2_trainable();
  model->qformer->gradient_checkpointing = s.run.gradient_checkpointing;
  model->language_model->gradient_checkpointing = s.run.gradient_checkpointing;
  if constexpr (is_t5<Model>) use_lavis_t5_activation(*model);
  report_load(s, is_t5<Model> ? "stage 2: prefix LM through the frozen Flan-T5" : "stage 2: LM through the frozen OPT",
              load);

  Trainer<float, cpu> trainer(*model, s.run, model->config.to_json(), s.batches_per_epoch, s.run.batch_size_train,
                              s.comm);
  if (!s.resume_from.empty()) trainer.resume(s.resume_from);
  if (s.eval_set)
    trainer.evaluate_after_each_epoch([&](long epoch) -> nlohmann::json {
      return s.comm->rank() == 0 ? evaluate_captions(*model, s, epoch) : nullptr;
    });
  const tokenizers::Tokenizer& tok = *s.tokenizer;
  const long max_len = s.run.max_txt_len;
  const auto cache = image_feature_cache(s, *model->vision_model);
  BatchFeed feed(s, cache.get());
  trainer.train([&](long epoch, long b, std::map<std::string, double>& logged) {
    const data::Batch& batch = feed.at(epoch, b);
    Tensor<float> loss;
    if constexpr (is_t5<Model>) {
      const Id eos = special_or(tok.eos_id(), model->config.t5.eos_token_id);
      std::vector<std::vector<Id>> prefixes, suffixes;
      for (std::size_t i = 0; i < batch.captions.size(); ++i) {
        // The split point is drawn from the example's position in the run (in the global batch): a
        // resumed run, or one with another number of ranks, draws the same.
        Generator split(s.run.seed + 3);
        split.set_offset((std::uint64_t(epoch) * std::uint64_t(s.batches_per_epoch) + std::uint64_t(b)) *
                             std::uint64_t(s.global_batch()) +
                         std::uint64_t(s.comm->rank()) * std::uint64_t(batch.captions.size()) + i);
        // A one-word caption has no split: the encoder reads the queries alone and the word is the target.
        const std::string& caption = batch.captions[i];
        const PrefixSplit p = word_count(caption) >= 2 ? split_prefix_lm(caption, split) : PrefixSplit{"", caption};
        prefixes.push_back(framed({}, tok.encode(p.prefix, false), {eos}, max_len));
        suffixes.push_back(framed({}, tok.encode(p.suffix, false), {eos}, max_len));
      }
      const Id pad = model->config.t5.pad_token_id;
      const auto [in_ids, in_mask] = pad_right(prefixes, pad);
      const auto [out_ids, out_mask] = pad_right(suffixes, pad);
      const auto out = stage2_t5_loss_from_features(*model, batch_features(batch, cache.get(), *model->vision_model), in_ids,
                                                    in_mask, out_ids, out_mask);
      loss = global_mean(out.loss, scored_tokens(out.targets), *s.comm);
    } else {
      const Id bos = special_or(tok.bos_id(), model->config.opt.bos_token_id);
      std::vector<std::vector<Id>> rows;
      for (const auto& caption : batch.captions)
        rows.push_back(framed({bos}, tok.encode(caption + "\n", false), {}, max_len));
      const auto [ids, mask] = pad_right(rows, model->config.opt.pad_token_id);
      const auto out = stage2_opt_loss_from_features(*model, batch_features(batch, cache.get(), *model->vision_model), ids,
                                                     mask, s.prompt_length);
      loss = global_mean(out.loss, scored_tokens(out.targets.slice(1, 1, out.targets.size(1))), *s.comm);
    }
    logged["loss"] = loss.item();
    return loss;
  });
  TrainResult r{trainer.history(), "", trainer.global_step(), feed.skipped_images(),
                trainer.evaluations().empty() ? nlohmann::json() : trainer.evaluations().back()["eval"]};
  r.final_dir = write_final(s, [&](const fs::path& dir) {
    Blip2Config c = model->config;
    c.architectures = {"Blip2ForConditionalGeneration"};
    io::write_json_file((dir / "config.json").string(), c.to_json());
    io::save_parameters(*model, (dir / "model.safetensors").string());
    copy_tokenizer_files(s.model_dir, dir);
  });
  return r;
}

// Calls f(W{}) for the storage type of the frozen weights the run config names.
template <class F>
TrainResult with_frozen_type(const std::string& dtype, F&& f) {
  if (dtype == "bf16") return f(bf16{});
  if (dtype == "f16") return f(f16{});
  return f(float{});
}

// blip2 train --stage 1|2 --model DIR --output_dir OUT (--annotations FILE [--images ROOT] | --shards PATTERN)...
//             [--ratio R...] [--config FILE] [--resume [DIR]] [--init-qformer DIR] [--prompt TEXT]
//             [--on-bad-image skip|stop] [--iters-per-epoch N] [--threads N] [--<run setting> VALUE]...
//             [--eval-annotations FILE [--eval-images ROOT] [--eval-max-images N]] [--cache-image-features DIR]
inline int train_on(const Args& a, const Communicator& comm) {
  const Stopwatch watch;
  const TrainSetup s = prepare(a, comm);
  TrainResult r;
  try {
    if (s.stage == 1) {
      r = train_stage1(s);
    } else {
      r = with_frozen_type(s.run.frozen_dtype, [&](auto w) {
        using W = decltype(w);
        return s.config.text_model_type == "t5" ? train_stage2<Blip2T5<float, cpu, W>>(s)
                                                : train_stage2<Blip2OPT<float, cpu, W>>(s);
      });
    }
  } catch (const fs::filesystem_error& e) {  // writing the outputs: reported as the other errors are
    throw IoError(e.what());
  }
  if (comm.rank() != 0) return 0;
  const fs::path curves = fs::path(s.run.output_dir) / "loss_curves.svg";
  io::write_file(curves.string(), loss_curves_svg("blip2 train --stage " + std::to_string(s.stage) + ": " + s.model_dir,
                                                  r.history));
  const double seconds = watch.seconds();
  std::fprintf(stderr, "train: %ld steps in %.1f s; the trained model is in %s, the loss curves in %s\n", r.steps, seconds,
               r.final_dir.c_str(), curves.c_str());
  nlohmann::json summary = {{"stage", s.stage},     {"steps", r.steps},       {"seconds", seconds},
                            {"output", r.final_dir}, {"losses", nlohmann::json::object()},
                            {"skipped_images", r.skipped_images}};
  if (!r.history.empty()) summary["losses"] = r.history.back().losses;
  if (!r.evaluation.is_null()) summary["eval"] = r.evaluation;
  if (comm.world_size() > 1) summary["ranks"] = comm.world_size();
  std::printf("%s\n", json_text(summary).c_str());
  return 0;
}

}  // namespace train_detail

// blip2 train, also as a rank of an MPI job (job.hpp), where an error on one rank ends the job.
inline int train(const Args& a) {
  const Communicator& comm = job();
  if (comm.world_size() == 1) return train_detail::train_on(a, comm);
  try {
    return train_detail::train_on(a, comm);
  } catch (const std::exception& e) {
    abort_job(comm, "train", e.what());
  }
}

}  // namespace blip2::cli
