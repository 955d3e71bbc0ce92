// The main job: BLIP-2's recipe in miniature, in minutes on a CPU. A procedural world of shapes
// (data/shapes_world.hpp) gives images, captions and questions; a small ViT is pre-trained on the
// images and a small OPT on the text, both are frozen, then the Q-Former learns stage 1 (ITC + ITM +
// ITG) and stage 2 (through the frozen OPT), and the result is measured zero-shot on held-out
// images: captioning, image-text retrieval and VQA. It saves ordinary BLIP-2 model directories
// (blip2 caption / vqa / retrieve run on them), an HTML report, and prints the metrics; the last
// line of stdout is one JSON object.
//
//   bootstrap_blip2 [--out DIR] [--frozen-from DIR] [--seed N] [--threads N] [--quick] [--train-images N] [--heldout-images N]
//                   [--image-size N] [--patch N] [--queries N] [--lm-repeat P]
//                   [--vit-epochs N] [--lm-epochs N] [--stage1-epochs N] [--stage2-epochs N]
//                   [--min-caption-accuracy X] [--min-r1 X]      (exit 1 below these)
#include <chrono>
#include <cstdio>
#include <fstream>

#include "report.hpp"

using namespace bootstrap;

namespace {

void copy_files(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
}

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      BLIP2_CHECK(i + 1 < argc, ValueError, "bootstrap_blip2: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--quick") s.quick();
    else if (a == "--out") s.out = next();
    else if (a == "--frozen-from") s.frozen_from = next();
    else if (a == "--seed") s.seed = std::stoull(next());
    else if (a == "--queries") s.queries = std::stoi(next());
    else if (a == "--lm-repeat") s.lm_repeat = std::stod(next());
    else if (a == "--threads") s.threads = std::stoi(next());
    else if (a == "--image-size") s.image_size = std::stoi(next());
    else if (a == "--patch") s.patch = std::stoi(next());
    else if (a == "--train-images") s.train_images = std::stol(next());
    else if (a == "--heldout-images") s.heldout_images = std::stol(next());
    else if (a == "--vit-epochs") s.vit_epochs = std::stol(next());
    else if (a == "--lm-epochs") s.lm_epochs = std::stol(next());
    else if (a == "--stage1-epochs") s.stage1_epochs = std::stol(next());
    else if (a == "--stage2-epochs") s.stage2_epochs = std::stol(next());
    else if (a == "--min-caption-accuracy") s.min_caption_accuracy = std::stod(next());
    else if (a == "--min-r1") s.min_r1 = std::stod(next());
    else throw ValueError("bootstrap_blip2: unknown option " + a);
  }
  BLIP2_CHECK(s.train_images >= 64 && s.heldout_images >= 8, ValueError,
              "bootstrap_blip2: needs at least 64 training and 8 held-out images");
  BLIP2_CHECK(s.patch >= 1 && s.image_size % s.patch == 0, ValueError, "bootstrap_blip2: --image-size ", s.image_size,
              " is not a whole number of --patch ", s.patch, " pixel patches");
  return s;
}

int run(const Settings& s) {
  const auto start = std::chrono::steady_clock::now();
  if (s.threads > 0) set_num_threads(s.threads);
  const fs::path out(s.out);
  fs::create_directories(out);
  World w(s, out / "tokenizers");
  const Blip2Config config = miniature_config(w, s);
  std::fprintf(stderr, "world: %zu training and %zu held-out scenes of %dx%d pixels, %zu words\n", w.train.size(),
               w.heldout.size(), config.vision.image_size, config.vision.image_size, w.shapes.vocabulary().size());

  // The frozen unimodal models: grown here, or reused from an earlier run's models/ (the same world
  // and sizes), as BLIP-2 reuses its frozen encoders.
  Blip2OPT<float> blip2(config);
  std::vector<StepRecord> vit_history, lm_history;
  if (!s.frozen_from.empty()) {
    const fs::path from(s.frozen_from);
    std::fprintf(stderr, "[1/4, 2/4] frozen image encoder and language model from %s\n", from.c_str());
    io::load_parameters(*blip2.vision_model, io::Checkpoint::open((from / "models" / "vit" / "model.safetensors").string()));
    io::load_parameters(*blip2.language_model, io::Checkpoint::open((from / "models" / "opt" / "model.safetensors").string()));
    vit_history = read_metrics_jsonl((from / "runs" / "vit" / "metrics.jsonl").string());
    lm_history = read_metrics_jsonl((from / "runs" / "opt" / "metrics.jsonl").string());
  } else {
    vit_history = pretrain_vision(blip2.vision_model, w, s);
    lm_history = pretrain_language_model(*blip2.language_model, w, s);
  }
  if (s.frozen_from.empty() || fs::absolute(s.frozen_from) != fs::absolute(out)) {
    // Saved alone in transformers' layouts: the ViT and the OPT (OPTForCausalLM, "model.decoder.*").
    fs::create_directories(out / "models" / "vit");
    io::save_parameters(*blip2.vision_model, (out / "models" / "vit" / "model.safetensors").string());
    io::write_json_file((out / "models" / "vit" / "config.json").string(), config.vision.to_json());
    fs::create_directories(out / "models" / "opt");
    io::save_parameters(*blip2.language_model, (out / "models" / "opt" / "model.safetensors").string());
    nlohmann::json lm = config.opt.to_json();
    lm["architectures"] = {"OPTForCausalLM"};
    io::write_json_file((out / "models" / "opt" / "config.json").string(), lm);
    copy_files(out / "tokenizers" / "opt", out / "models" / "opt");
  }
  const Tensor<float> train_features = encode_images(*blip2.vision_model, w.train_pixels);
  const Tensor<float> heldout_features = encode_images(*blip2.vision_model, w.heldout_pixels);

  // Stage 1 on the frozen image encoder.
  Blip2Config stage1_config = config;
  stage1_config.architectures = {"Blip2ForImageTextRetrieval"};
  stage1_config.qformer.use_qformer_text_input = true;
  Blip2Stage1<float> stage1(stage1_config);
  Generator init(s.seed + 5);
  nn::init_parameters(stage1, init);
  copy_(stage1.temp, Tensor<float>::full({1}, float(Blip2Stage1<float>::kInitialTemperature)));
  nn::copy_matching_parameters(*blip2.vision_model, *stage1.vision_model);  // the frozen ViT (and ln_vision to start from)
  const auto stage1_history = train_stage1(stage1, train_features, w, s);
  stage1.save((out / "models" / "blip2-stage1").string());
  copy_files(out / "tokenizers" / "bert", out / "models" / "blip2-stage1");

  // Stage 2: the stage-1 Q-Former, queries and ln_vision, a new projection, the frozen OPT.
  nn::init_parameters(*blip2.language_projection, init);
  nn::copy_matching_parameters(stage1, blip2);
  const auto stage2_history = train_stage2(blip2, train_features, w, s);
  {
    const fs::path dir = out / "models" / "blip2-opt";
    fs::create_directories(dir);
    Blip2Config c = config;
    c.architectures = {"Blip2ForConditionalGeneration"};
    io::write_json_file((dir / "config.json").string(), c.to_json());
    io::save_parameters(blip2, (dir / "model.safetensors").string());
    copy_files(out / "tokenizers" / "opt", dir);
    io::write_json_file((dir / "generation_config.json").string(), {{"bos_token_id", w.opt_vocab.special.bos},
                                                {"eos_token_id", w.newline_id},
                                                {"pad_token_id", w.opt_vocab.special.pad},
                                                {"max_new_tokens", 20}});
  }

  const HeldOutResult r = evaluate(stage1, blip2, heldout_features, w, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char summary[512];
  std::snprintf(summary, sizeof summary,
                "held-out images: %zu\ncaption accuracy (every attribute right): %.3f\nretrieval R@1 image->text: %.3f, "
                "text->image: %.3f\nVQA accuracy: %.3f\nwhole run: %.0f s\n",
                w.heldout.size(), r.caption_accuracy, r.r1_i2t, r.r1_t2i, r.vqa_accuracy, seconds);
  write_report((out / "report.html").string(), w, r,
               {{"image encoder (weak supervision by captions)", vit_history}, {"language model (text only)", lm_history},
                {"stage 1: ITC, ITM, ITG", stage1_history}, {"stage 2: LM through the frozen OPT", stage2_history}},
               summary);
  std::printf("%s", summary);
  for (std::size_t i = 0; i < std::min<std::size_t>(6, r.captions.size()); ++i)
    std::printf("  image %zu: \"%s\" (%s); %s -> %s\n", i, r.captions[i].c_str(), r.caption_right[i] ? "right" : "wrong",
                r.questions[i].question.c_str(), r.answers[i].c_str());
  std::printf("report: %s; models: %s\n", (out / "report.html").c_str(), (out / "models").c_str());
  const nlohmann::json metrics = {{"heldout_caption_accuracy", r.caption_accuracy}, {"heldout_r1_i2t", r.r1_i2t},
                                  {"heldout_r1_t2i", r.r1_t2i},                     {"heldout_vqa_accuracy", r.vqa_accuracy},
                                  {"heldout_images", w.heldout.size()},             {"seconds", seconds}};
  std::printf("%s\n", metrics.dump().c_str());
  const bool ok = r.caption_accuracy >= s.min_caption_accuracy && r.r1_i2t >= s.min_r1 && r.r1_t2i >= s.min_r1;
  if (!ok) std::fprintf(stderr, "bootstrap_blip2: below the required --min-caption-accuracy / --min-r1\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const blip2::Error& e) {
    std::fprintf(stderr, "bootstrap_blip2: error: %s\n", e.what());
    return 1;
  }
}
