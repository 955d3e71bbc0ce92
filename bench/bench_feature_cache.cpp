// A stage-1 epoch with and without cached image features (blip2 train --cache-image-features), at
// the real sizes with random weights: the frozen ViT-g/14 (39 layers of 1408, 224 pixels) and the
// BERT-base Q-Former with 32 queries, batch 4, 32 text tokens. Without the cache every batch is
// decoded and augmented by the loader (LAVIS's train transform) and encoded by the ViT before the
// step; with it the loader reads no image and the step reads the features from the memory-mapped
// shards, after a one-time build that encodes every image once. The images are shapes-world
// scenes written as PNG files (224 px). Each figure is the median over the timed batches after a
// warm-up batch, extrapolated to an epoch of --epoch-images (10 000) images.
//
//   bench_feature_cache [--threads N] [--batch 4] [--batches 2] [--epoch-images 10000] [--quick]
// --quick: a 2-layer ViT and Q-Former (checks the program, not the figures).
#include <blip2/blip2.hpp>
#include <blip2/train/image_feature_cache.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "bench_support.hpp"

using namespace blip2;
namespace fs = std::filesystem;

namespace {

using bench::Clock;
using bench::seconds_since;

struct Args {
  int threads = 0, batch = 4, batches = 2;
  long epoch_images = 10000;
  bool quick = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds per batch (median after one warm-up) of `step(batch)` over the loader's batches.
template <class Step>
double time_batches(data::Loader& loader, int batches, Step&& step) {
  std::vector<double> s;
  data::Batch b;
  for (int i = 0; i <= batches; ++i) {
    const auto t0 = Clock::now();
    if (!loader.next(b)) throw ValueError("bench_feature_cache: the data ran out");
    step(b);
    if (i > 0) s.push_back(seconds_since(t0));
  }
  return median(s);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw ValueError("bench_feature_cache: " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") a.threads = std::stoi(value());
    else if (arg == "--batch") a.batch = std::stoi(value());
    else if (arg == "--batches") a.batches = std::stoi(value());
    else if (arg == "--epoch-images") a.epoch_images = std::stol(value());
    else if (arg == "--quick") a.quick = true;
    else {
      std::fprintf(stderr, "bench_feature_cache: unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  if (a.threads > 0) set_num_threads(a.threads);
  Blip2Config c = bench::stage1_config(bench::opt27b_config());
  if (a.quick) c.vision.num_hidden_layers = c.qformer.num_hidden_layers = 2;

  // The images: (batches + 1) batches' worth of 224-pixel scenes.
  const fs::path dir = fs::temp_directory_path() / ("blip2-bench-feature-cache-" + std::to_string(::getpid()));
  fs::create_directories(dir / "images");
  data::ShapesWorldOptions wo;
  wo.image_size = c.vision.image_size;
  const data::ShapesWorld world(wo, 0);
  std::vector<data::CaptionRecord> records;
  for (int i = 0; i < (a.batches + 1) * a.batch; ++i) {
    const auto scene = world.scene(std::uint64_t(i));
    const std::string path = (dir / "images" / (std::to_string(i) + ".png")).string();
    io::write_file(path, image::encode_png(world.render(scene)));
    records.push_back({path, world.canonical_caption(scene), nlohmann::json::object()});
  }
  const auto list = std::make_shared<data::CaptionList>(records);

  const auto t_init = Clock::now();
  Generator gen(0);
  Blip2Stage1<float> model(c);
  nn::init_parameters(model, gen);
  copy_(model.temp, Tensor<float>::full({1}, float(Blip2Stage1<float>::kInitialTemperature)));
  model.set_stage1_trainable();
  std::fprintf(stderr, "bench_feature_cache: %.0f M parameters initialised in %.1f s\n",
               double(model.parameter_count()) / 1e6, seconds_since(t_init));
  const auto [ids, mask] = bench::text_batch(a.batch, 32, 101, 102, 1000, 30522, 0, gen);
  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  Generator negatives(1);
  Stage1Options o;
  o.generator = &negatives;
  auto step = [&](const Tensor<float>& features) {
    opt.zero_grad();
    stage1_losses_from_features(model, features, ids, mask, o).loss.backward();
    opt.step();
  };

  data::LoaderOptions lo;
  lo.batch_size = a.batch;
  lo.image_size = c.vision.image_size;
  lo.shuffle = false;
  data::Loader pixels_loader(list, lo);  // LAVIS's train transform: random resized crop + flip
  const double without = time_batches(pixels_loader, a.batches, [&](const data::Batch& b) {
    Tensor<float> features;
    {
      NoGrad no_grad;  // the frozen encoder records no graph
      features = model.vision_model->encode(b.pixel_values);
    }
    step(features);
  });

  ImageFeatureCache::BuildOptions bo;
  bo.image_size = c.vision.image_size;
  bo.batch_size = std::size_t(a.batch);
  const auto t_build = Clock::now();
  const auto cache = ImageFeatureCache::build((dir / "cache").string(), {list}, ImageFeatureCache::identity_of(*model.vision_model, lo.image_size),
                                              [&](const Tensor<float>& p) { return model.vision_model->encode(p); }, bo);
  const double build_per_image = seconds_since(t_build) / double(records.size());
  lo.decode_images = false;
  lo.has_image = [&](const std::string& image) { return cache.contains(image); };
  data::Loader names_loader(list, lo);
  const double with = time_batches(names_loader, a.batches, [&](const data::Batch& b) { step(cache.features(b.images)); });

  const double row_mb = double(257 * 1408 * sizeof(float)) / 1e6;
  const double per_epoch = double(a.epoch_images) / double(a.batch);
  std::printf("{\"name\": \"stage1_epoch_feature_cache\", \"threads\": %d, \"batch\": %d, \"timed_batches\": %d, "
              "\"vision_layers\": %d, \"epoch_images\": %ld, \"without_cache_batch_s\": %.3f, \"with_cache_batch_s\": %.3f, "
              "\"speedup\": %.2f, \"epoch_without_cache_h\": %.2f, \"epoch_with_cache_h\": %.2f, \"cache_build_per_image_s\": %.3f, "
              "\"cache_build_h\": %.2f, \"cache_gb\": %.1f}\n",
              num_threads(), a.batch, a.batches, c.vision.num_hidden_layers, a.epoch_images, without, with, without / with,
              without * per_epoch / 3600, with * per_epoch / 3600, build_per_image,
              build_per_image * double(a.epoch_images) / 3600, row_mb * double(a.epoch_images) / 1e3);
  fs::remove_all(dir);
  return 0;
}
