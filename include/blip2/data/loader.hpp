#pragma once
// Training batches the way LAVIS feeds BLIP-2's pre-training: image-caption datasets (annotation
// lists in memory, streamed annotation files, webdataset tar shards), mixed batch by batch with
// sampling ratios (LAVIS's MultiIterLoader draws one dataset per batch), sharded over data-parallel
// ranks, images decoded and transformed by worker threads.
//
// Determinism: everything random is a pure function of (seed, epoch, world size, rank): which
// dataset batch b comes from, the order of each dataset's examples (a seeded permutation of an
// in-memory list; a seeded shuffle buffer, as webdataset's, over a stream), and each example's
// crop and flip (seeded by the example itself, so it does not depend on the rank or on which
// thread decodes it). An epoch is reproducible without replaying the ones before it.
//
// Sharding: ranks share the seed, so an in-memory list's permutation is the same everywhere, and
// its positions are dealt out in blocks of batch_size: rank r takes the r-th block of every W. So
// batch j of W ranks, stacked in rank order, is batch j of one process with batch_size * W (the
// data-parallel trainer's equivalence). A stream keeps the blocks that are its rank's before its
// shuffle buffer; tar shards are dealt out whole (after a seeded shuffle of the shard list) when
// there are at least W of them. No two ranks see the same example in a pass, and together they see
// all of them.
//
// Epochs: with batches_per_epoch = 0 (one dataset only) an epoch is one pass over this rank's
// share; with batches_per_epoch = n it is n batches, and a dataset that runs out starts another
// pass (reshuffled) within the epoch, as LAVIS's IterLoader restarts its loader.
//
// Threads: `workers` std::threads take examples in order from a shared plan, decode and transform
// them, and leave them in per-dataset result queues; next() (one consumer thread) assembles the
// batch in plan order. Workers stay at most `prefetch_batches` batches ahead of the consumer, so at
// most prefetch_batches * batch_size transformed images wait (plus replacements for skipped ones;
// a streaming dataset's shuffle buffer holds its own samples). A missing or undecodable image
// (an IoError while reading or decoding) is skipped (counted, reported through `warn`, and
// replaced by the dataset's next example; a whole pass without one readable image is an error) or
// raised, by option; any other error in a worker is raised. Errors surface in next() at the example
// they belong to, with the file named, and the loader stays failed until set_epoch.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../backend/cpu/parallel.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../image/augment.hpp"
#include "../image/decode.hpp"
#include "../image/normalize.hpp"
#include "../image/resize.hpp"
#include "annotations.hpp"
#include "caption_processor.hpp"
#include "tar_shards.hpp"

namespace blip2::data {

namespace detail {

// A seed that depends on every part and on their order.
inline std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t h = 0x243F6A8885A308D3ull;
  for (std::uint64_t p : parts) h = ::blip2::detail::splitmix64(h ^ ::blip2::detail::splitmix64(p));
  return h;
}

// FNV-1a: a hash of a name that is the same on every platform (std::hash is not).
inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

}  // namespace detail

// One example as a dataset yields it, before decoding.
struct Sample {
  std::string name;                 // the image file, or "<shard>:<member>"; named in errors
  std::vector<std::uint8_t> bytes;  // the encoded image when it came from a shard; empty: read `name`
  std::string caption;              // as written in the data
  std::uint64_t id = 0;             // the example's identity in its dataset (seeds its augmentation)
};

// What one pass over a dataset depends on.
struct Pass {
  std::uint64_t seed = 0;  // from (loader seed, epoch, dataset, pass number)
  bool shuffle = true;
  int rank = 0, world_size = 1;
  std::size_t block = 1;  // positions are dealt to the ranks in blocks of this many

  // Whether position i of the pass is this rank's.
  bool mine(std::size_t i) const { return (i / block) % std::size_t(world_size) == std::size_t(rank); }
};

// This rank's examples for one pass, in order.
class SampleStream {
 public:
  virtual ~SampleStream() = default;
  virtual bool next(Sample& sample) = 0;  // false after the last one
};

// An image-caption dataset: opens independent passes (open() must not change the dataset).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<SampleStream> open(const Pass& pass) const = 0;
};

namespace detail {

// webdataset's shuffle: fill a buffer of `capacity` samples, then hand out a random one and put
// the next sample from the stream in its place; at the end, drain the buffer at random.
class ShuffledStream : public SampleStream {
 public:
  ShuffledStream(std::unique_ptr<SampleStream> in, std::size_t capacity, std::uint64_t seed)
      : in_(std::move(in)), capacity_(capacity), gen_(seed) {}

  bool next(Sample& sample) override {
    while (!in_done_ && buffer_.size() < capacity_) {
      Sample s;
      if (!in_->next(s)) {
        in_done_ = true;
        break;
      }
      buffer_.push_back(std::move(s));
    }
    if (buffer_.empty()) return false;
    const std::size_t pick = uniform_below(gen_, buffer_.size());
    sample = std::move(buffer_[pick]);
    Sample replacement;
    if (!in_done_ && in_->next(replacement)) {
      buffer_[pick] = std::move(replacement);
    } else {
      in_done_ = true;
      buffer_[pick] = std::move(buffer_.back());
      buffer_.pop_back();
    }
    return true;
  }

 private:
  std::unique_ptr<SampleStream> in_;
  std::size_t capacity_;
  Generator gen_;
  std::vector<Sample> buffer_;
  bool in_done_ = false;
};

inline std::unique_ptr<SampleStream> shuffle_stream(std::unique_ptr<SampleStream> in, std::size_t capacity,
                                                    const Pass& pass) {
  if (!pass.shuffle || capacity < 2) return in;
  return std::make_unique<ShuffledStream>(std::move(in), capacity, mix_seed({pass.seed, 1}));
}

}  // namespace detail

// An annotation list held in memory; each pass is a seeded permutation.
class CaptionList : public Dataset {
 public:
  explicit CaptionList(std::vector<CaptionRecord> records, std::string name = "caption list")
      : records_(std::make_shared<const std::vector<CaptionRecord>>(std::move(records))), name_(std::move(name)) {
    BLIP2_CHECK(!records_->empty(), ValueError, "CaptionList '", name_, "': no records");
  }
  // Reads a whole LAVIS annotation file (annotations.hpp).
  static std::shared_ptr<CaptionList> load(const std::string& annotation_path, const std::string& image_root) {
    return std::make_shared<CaptionList>(read_annotations(annotation_path, image_root), annotation_path);
  }

  std::size_t size() const { return records_->size(); }
  const CaptionRecord& operator[](std::size_t i) const { return (*records_)[i]; }
  std::string name() const override { return name_; }

  std::unique_ptr<SampleStream> open(const Pass& pass) const override {
    std::vector<std::size_t> order(records_->size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    if (pass.shuffle) {
      Generator gen(pass.seed);
      blip2::shuffle(order, gen);
    }
    std::vector<std::size_t> mine;
    for (std::size_t i = 0; i < order.size(); ++i)
      if (pass.mine(i)) mine.push_back(order[i]);
    return std::make_unique<Stream>(records_, std::move(mine));
  }

 private:
  class Stream : public SampleStream {
   public:
    Stream(std::shared_ptr<const std::vector<CaptionRecord>> records, std::vector<std::size_t> order)
        : records_(std::move(records)), order_(std::move(order)) {}
    bool next(Sample& sample) override {
      if (at_ == order_.size()) return false;
      const std::size_t i = order_[at_++];
      const CaptionRecord& r = (*records_)[i];
      sample = {r.image, {}, r.caption, i};
      return true;
    }

   private:
    std::shared_ptr<const std::vector<CaptionRecord>> records_;
    std::vector<std::size_t> order_;
    std::size_t at_ = 0;
  };

  std::shared_ptr<const std::vector<CaptionRecord>> records_;
  std::string name_;
};

// A LAVIS annotation file read as a stream on every pass (JSON array or JSON lines), shuffled
// through a buffer of `shuffle_buffer` records.
class CaptionFile : public Dataset {
 public:
  CaptionFile(std::string path, std::string image_root, std::size_t shuffle_buffer = 1000)
      : path_(std::move(path)), image_root_(std::move(image_root)), shuffle_buffer_(shuffle_buffer) {
    AnnotationReader check(path_, image_root_);  // opens, reads the first entry, refuses an empty file
  }

  std::string name() const override { return path_; }

  std::unique_ptr<SampleStream> open(const Pass& pass) const override {
    return detail::shuffle_stream(std::make_unique<Stream>(path_, image_root_, pass), shuffle_buffer_, pass);
  }

 private:
  class Stream : public SampleStream {
   public:
    Stream(const std::string& path, const std::string& root, const Pass& pass)
        : reader_(path, root), pass_(pass) {}
    bool next(Sample& sample) override {
      for (CaptionRecord r; reader_.next(r);) {
        const std::size_t i = ordinal_++;
        if (!pass_.mine(i)) continue;
        sample = {std::move(r.image), {}, std::move(r.caption), i};
        return true;
      }
      return false;
    }

   private:
    AnnotationReader reader_;
    Pass pass_;
    std::size_t ordinal_ = 0;
  };

  std::string path_, image_root_;
  std::size_t shuffle_buffer_;
};

// webdataset tar shards (tar_shards.hpp), shuffled through a buffer of `shuffle_buffer` samples.
// With at least as many shards as ranks, each rank reads its own shards (the list shuffled per
// pass); otherwise every rank reads all of them and keeps its blocks of samples.
class CaptionShards : public Dataset {
 public:
  explicit CaptionShards(std::vector<std::string> shards, std::size_t shuffle_buffer = 1000)
      : shards_(std::move(shards)), shuffle_buffer_(shuffle_buffer) {
    BLIP2_CHECK(!shards_.empty(), ValueError, "CaptionShards: no shards");
    for (const auto& s : shards_) BLIP2_CHECK(std::ifstream(s).is_open(), IoError, s, ": cannot open the tar shard");
  }
  // A webdataset pattern such as "cc3m-{00000..00331}.tar".
  explicit CaptionShards(const std::string& pattern, std::size_t shuffle_buffer = 1000)
      : CaptionShards(expand_shard_pattern(pattern), shuffle_buffer) {}

  const std::vector<std::string>& shards() const { return shards_; }
  std::string name() const override {
    return shards_.size() == 1 ? shards_[0] : shards_[0] + " (+" + std::to_string(shards_.size() - 1) + " shards)";
  }

  std::unique_ptr<SampleStream> open(const Pass& pass) const override {
    const auto world = std::size_t(pass.world_size);
    std::vector<std::string> order = shards_;
    if (order.size() < world)
      return detail::shuffle_stream(std::make_unique<Stream>(std::move(order), pass), shuffle_buffer_, pass);
    if (pass.shuffle) {
      Generator gen(detail::mix_seed({pass.seed, 2}));
      blip2::shuffle(order, gen);
    }
    std::vector<std::string> mine;
    for (std::size_t i = std::size_t(pass.rank); i < order.size(); i += world) mine.push_back(order[i]);
    return detail::shuffle_stream(std::make_unique<Stream>(std::move(mine), Pass{}), shuffle_buffer_, pass);
  }

 private:
  // Every sample of `shards` whose position in the stream is the pass's (all of them for Pass{}).
  class Stream : public SampleStream {
   public:
    Stream(std::vector<std::string> shards, const Pass& pass) : reader_(std::move(shards)), pass_(pass) {}
    bool next(Sample& sample) override {
      for (ShardSample s; reader_.next(s);) {
        if (!pass_.mine(ordinal_++)) continue;
        const std::uint64_t id = detail::mix_seed({detail::fnv1a(s.shard), s.ordinal});
        sample = {std::move(s.image_name), std::move(s.image), std::move(s.caption), id};
        return true;
      }
      return false;
    }

   private:
    TarShardReader reader_;
    Pass pass_;
    std::size_t ordinal_ = 0;
  };

  std::vector<std::string> shards_;
  std::size_t shuffle_buffer_;
};

enum class OnBadImage { skip, raise };

// A dataset in the mixture.
struct LoaderSource {
  std::shared_ptr<const Dataset> dataset;
  double ratio = 1.0;           // relative chance that a batch comes from it
  CaptionProcessor captions{};  // LAVIS's text processor for this dataset
};

struct LoaderOptions {
  int batch_size = 32;
  int image_size = 224;                    // output S x S
  bool augment = true;                     // LAVIS's train transform (random resized crop + flip);
                                           // false: the eval transform (bicubic resize to S x S)
  image::RandomResizedCropOptions crop{};  // scale (0.5, 1.0), ratio (3/4, 4/3), as LAVIS
  bool shuffle = true;
  std::uint64_t seed = 0;
  int rank = 0, world_size = 1;
  std::size_t batches_per_epoch = 0;       // 0: one pass over a single dataset
  bool drop_last = true;                   // drop a pass's last, smaller batch
  int workers = 2;
  int prefetch_batches = 2;                // how far the workers may run ahead
  OnBadImage bad_image = OnBadImage::skip;
  std::function<void(const std::string&)> warn;  // skipped images; null: written to std::cerr
  // Without decoding (cached image features, feature_cache.hpp): batches carry the image names and
  // captions, no pixels; an image `has_image` denies is a bad image (skipped, or an error).
  bool decode_images = true;
  std::function<bool(const std::string& image)> has_image;
};

struct Batch {
  Tensor<float> pixel_values;         // [B, 3, S, S], CLIP-normalised (undefined without decode_images)
  std::vector<std::string> captions;  // processed: prompt + pre_caption
  std::vector<std::string> images;    // image paths, or "<shard>:<member>"
  std::size_t source = 0;             // the LoaderSource all of them came from
  std::size_t index = 0;              // the batch's number in its epoch
  std::uint64_t epoch = 0;
};

struct LoaderStats {
  std::size_t skipped = 0;       // bad images skipped so far (all epochs)
  std::size_t buffered = 0;      // examples taken from the datasets and not yet consumed
  std::size_t max_buffered = 0;  // the most there have been
};

class Loader {
 public:
  Loader(std::vector<LoaderSource> sources, LoaderOptions options)
      : sources_(std::move(sources)), opt_(std::move(options)) {
    BLIP2_CHECK(!sources_.empty(), ValueError, "Loader: no datasets");
    BLIP2_CHECK(opt_.batch_size > 0 && opt_.image_size > 0 && opt_.workers > 0 && opt_.prefetch_batches > 0,
                ValueError, "Loader: batch_size (", opt_.batch_size, "), image_size (", opt_.image_size,
                "), workers (", opt_.workers, ") and prefetch_batches (", opt_.prefetch_batches,
                ") must be positive");
    BLIP2_CHECK(opt_.world_size > 0 && opt_.rank >= 0 && opt_.rank < opt_.world_size, ValueError,
                "Loader: rank ", opt_.rank, " is not in [0, world_size ", opt_.world_size, ")");
    BLIP2_CHECK(sources_.size() == 1 || opt_.batches_per_epoch > 0, ValueError,
                "Loader: mixing ", sources_.size(), " datasets needs batches_per_epoch > 0");
    for (const auto& s : sources_) {
      BLIP2_CHECK(s.dataset != nullptr, ValueError, "Loader: a null dataset");
      BLIP2_CHECK(s.ratio > 0 && s.ratio < 1e300, ValueError, "Loader: dataset '", s.dataset->name(), "' has ratio ",
                  s.ratio, "; ratios must be positive");
      total_ratio_ += s.ratio;
    }
    reset();
  }
  explicit Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
      : Loader(std::vector<LoaderSource>{{std::move(dataset)}}, std::move(options)) {}

  ~Loader() { stop(); }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts `epoch` from its first batch (work prefetched for the old one is dropped).
  void set_epoch(std::uint64_t epoch) {
    stop();
    epoch_ = epoch;
    reset();
  }
  std::uint64_t epoch() const { return epoch_; }

  // The next batch of the epoch; false when the epoch is over (until set_epoch).
  bool next(Batch& batch) {
    std::unique_lock<std::mutex> lk(m_);
    if (failure_) std::rethrow_exception(failure_);
    if (epoch_done_) return false;
    if (opt_.batches_per_epoch > 0 && consumed_batches_ == opt_.batches_per_epoch) {
      epoch_done_ = true;
      return false;
    }
    if (threads_.empty())
      for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { work(); });

    const std::size_t s = source_of_batch(consumed_batches_);
    SourceState& st = state_[s];
    std::vector<Slot> taken;
    std::vector<std::string> warnings;
    while (taken.size() < std::size_t(opt_.batch_size)) {
      result_cv_.wait(lk, [&] {
        return (!st.slots.empty() && st.slots.front().ready) || (st.slots.empty() && st.ended);
      });
      if (st.slots.empty()) break;  // the pass is over
      Slot slot = std::move(st.slots.front());
      st.slots.pop_front();
      ++st.consumed;
      --buffered_;
      if (slot.error) {
        if (slot.bad_image && opt_.bad_image == OnBadImage::skip) {
          // A whole pass without a readable image would make a cycling dataset skip forever.
          if (std::int64_t(slot.pass) >= st.last_good_pass + 2) {
            failure_ = std::make_exception_ptr(IoError(blip2::detail::cat(
                "Loader: dataset '", sources_[s].dataset->name(), "': not one image of pass ", slot.pass - 1,
                " could be read (the last error: ", slot.message, ")")));
            std::rethrow_exception(failure_);
          }
          ++skipped_;
          warnings.push_back(std::move(slot.message));
          demand_.push_front({s, 1});  // a replacement, first in line
          work_cv_.notify_one();
          continue;
        }
        failure_ = slot.error;
        std::rethrow_exception(failure_);
      }
      st.last_good_pass = std::int64_t(slot.pass);
      taken.push_back(std::move(slot));
    }
    const std::size_t index = consumed_batches_++;
    if (taken.size() < std::size_t(opt_.batch_size) && (taken.empty() || opt_.drop_last)) epoch_done_ = true;
    const bool done = epoch_done_;
    lk.unlock();
    work_cv_.notify_all();
    for (const auto& w : warnings) {
      if (opt_.warn) {
        opt_.warn(w);
      } else {
        std::cerr << "blip2::data::Loader: skipped an image: " << w << '\n';
      }
    }
    if (done) return false;

    const index_t size = opt_.image_size, per = 3 * size * size;
    batch.pixel_values = opt_.decode_images ? Tensor<float>::empty({index_t(taken.size()), 3, size, size}) : Tensor<float>();
    batch.captions.clear();
    batch.images.clear();
    for (std::size_t i = 0; i < taken.size(); ++i) {
      if (opt_.decode_images)
        std::copy(taken[i].pixels.data(), taken[i].pixels.data() + per, batch.pixel_values.data() + index_t(i) * per);
      batch.captions.push_back(std::move(taken[i].caption));
      batch.images.push_back(std::move(taken[i].name));
    }
    batch.source = s;
    batch.index = index;
    batch.epoch = epoch_;
    return true;
  }

  LoaderStats stats() const {
    std::lock_guard<std::mutex> lk(m_);
    return {skipped_, buffered_, max_buffered_};
  }

 private:
  // One example's way through the workers: a pending slot is filled with pixels or an error.
  struct Slot {
    bool ready = false;
    Tensor<float> pixels;  // [1, 3, S, S]
    std::string caption, name;
    std::exception_ptr error;
    bool bad_image = false;  // the error is the image's (skippable)
    std::string message;
    std::uint64_t pass = 0;
  };
  struct SourceState {
    std::unique_ptr<SampleStream> stream;
    std::uint64_t pass = 0;
    std::size_t pass_samples = 0;
    bool ended = false;          // no more examples this epoch (single pass, or a stream error)
    std::deque<Slot> slots;      // issued, not consumed, in order
    std::size_t consumed = 0;    // examples consumed: the index of slots.front()
    std::int64_t last_good_pass = -1;
  };
  struct Task {
    std::size_t source = 0, index = 0;
    std::uint64_t pass = 0;
    Sample sample;
  };
  struct Demand {
    std::size_t source, count;
  };

  bool cycles() const { return opt_.batches_per_epoch > 0; }

  // The dataset batch `b` of this epoch comes from: the same on every rank.
  std::size_t source_of_batch(std::size_t b) const {
    if (sources_.size() == 1) return 0;
    double u = Generator::uniform(detail::mix_seed({opt_.seed, epoch_, 0x6d6978}), b) * total_ratio_;
    for (std::size_t s = 0; s + 1 < sources_.size(); ++s) {
      if (u < sources_[s].ratio) return s;
      u -= sources_[s].ratio;
    }
    return sources_.size() - 1;
  }

  void reset() {
    state_.clear();
    state_.resize(sources_.size());
    demand_.clear();
    planned_ = consumed_batches_ = buffered_ = 0;
    plan_done_ = epoch_done_ = false;
    failure_ = nullptr;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard<std::mutex> lk(m_);
    stop_ = false;
  }

  void work() {
    set_num_threads(1);  // the resize kernels' OpenMP stays inside this worker
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lk(m_);
        if (!take_task(lk, task)) return;
      }
      Slot slot = process(task);
      {
        std::lock_guard<std::mutex> lk(m_);
        SourceState& st = state_[task.source];
        st.slots[task.index - st.consumed] = std::move(slot);
      }
      result_cv_.notify_all();
    }
  }

  // Takes the next example the plan needs (planning batches within the prefetch window); false
  // when the loader stops. Called with m_ held: datasets are read under the lock, in plan order.
  bool take_task(std::unique_lock<std::mutex>& lk, Task& task) {
    for (;;) {
      if (stop_) return false;
      while (!demand_.empty()) {
        const std::size_t s = demand_.front().source;
        SourceState& st = state_[s];
        Sample sample;
        std::uint64_t pass = 0;
        bool got = false;
        if (!st.ended) {
          try {
            got = pull(s, sample, pass);
          } catch (...) {  // a broken annotation file or shard: raised when the consumer gets here
            Slot failed;
            failed.ready = true;
            failed.error = std::current_exception();
            st.slots.push_back(std::move(failed));
            st.ended = true;
            note_buffered();
          }
        }
        if (!got) {
          demand_.pop_front();
          result_cv_.notify_all();
          continue;
        }
        if (--demand_.front().count == 0) demand_.pop_front();
        st.slots.emplace_back();
        note_buffered();
        task = {s, st.consumed + st.slots.size() - 1, pass, std::move(sample)};
        return true;
      }
      if (!plan_done_ && planned_ < consumed_batches_ + std::size_t(opt_.prefetch_batches)) {
        plan_batch();
        continue;
      }
      work_cv_.wait(lk);
    }
  }

  void plan_batch() {
    if ((cycles() && planned_ == opt_.batches_per_epoch) || (!cycles() && state_[0].ended)) {
      plan_done_ = true;
      return;
    }
    demand_.push_back({source_of_batch(planned_), std::size_t(opt_.batch_size)});
    ++planned_;
  }

  // The next example of dataset s, opening its next pass when it cycles; false at the end.
  bool pull(std::size_t s, Sample& sample, std::uint64_t& pass) {
    SourceState& st = state_[s];
    for (;;) {
      if (!st.stream) {
        st.stream = sources_[s].dataset->open(
            {detail::mix_seed({opt_.seed, epoch_, s, st.pass}), opt_.shuffle, opt_.rank, opt_.world_size,
             std::size_t(opt_.batch_size)});
        st.pass_samples = 0;
      }
      if (st.stream->next(sample)) {
        ++st.pass_samples;
        pass = st.pass;
        return true;
      }
      st.stream.reset();
      if (!cycles()) {
        st.ended = true;
        return false;
      }
      BLIP2_CHECK(st.pass_samples > 0, ValueError, "Loader: dataset '", sources_[s].dataset->name(),
                  "' has no examples for rank ", opt_.rank, " of ", opt_.world_size);
      ++st.pass;
    }
  }

  void note_buffered() { max_buffered_ = std::max(max_buffered_, ++buffered_); }

  // Decode, transform, process the caption. Runs without the lock.
  Slot process(const Task& task) const {
    Slot slot;
    slot.ready = true;
    slot.name = task.sample.name;
    slot.pass = task.pass;
    if (!opt_.decode_images) {
      if (opt_.has_image && !opt_.has_image(task.sample.name)) {
        slot.error = std::make_exception_ptr(IoError(task.sample.name + ": not in the image feature cache"));
        slot.bad_image = true;
        slot.message = task.sample.name + ": not in the image feature cache";
        return slot;
      }
      try {
        slot.caption = sources_[task.source].captions(task.sample.caption);
      } catch (...) {
        slot.error = std::current_exception();
      }
      return slot;
    }
    image::Image img;
    try {
      img = task.sample.bytes.empty() ? image::load_image(task.sample.name)
                                      : image::decode_image(task.sample.bytes, task.sample.name);
    } catch (const IoError& e) {
      slot.error = std::current_exception();
      slot.bad_image = true;
      slot.message = e.what();
      return slot;
    } catch (...) {
      slot.error = std::current_exception();
      return slot;
    }
    try {
      const int size = opt_.image_size;
      if (opt_.augment) {
        Generator gen(detail::mix_seed({opt_.seed, epoch_, task.source, task.pass, task.sample.id}));
        img = image::random_horizontal_flip(image::random_resized_crop(img, size, size, gen, opt_.crop), gen);
      } else {
        img = image::resize_bicubic(img, size, size);
      }
      slot.pixels = image::to_pixel_values(img);
      slot.caption = sources_[task.source].captions(task.sample.caption);
    } catch (...) {
      slot.error = std::current_exception();
    }
    return slot;
  }

  const std::vector<LoaderSource> sources_;
  const LoaderOptions opt_;
  double total_ratio_ = 0;
  std::uint64_t epoch_ = 0;  // changed only while no worker runs

  mutable std::mutex m_;
  std::condition_variable work_cv_;    // workers: new demand, a consumed batch, stop
  std::condition_variable result_cv_;  // consumer: a slot is ready, a dataset ended
  std::vector<SourceState> state_;
  std::deque<Demand> demand_;          // examples to issue, per dataset, in plan order
  std::size_t planned_ = 0, consumed_batches_ = 0;
  bool plan_done_ = false, epoch_done_ = false, stop_ = false;
  std::exception_ptr failure_;
  std::size_t skipped_ = 0, buffered_ = 0, max_buffered_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace blip2::data
