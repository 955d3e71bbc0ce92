// Evaluation during and after training: an evaluation split read from a LAVIS annotation file,
// retrieval recall as LAVIS computes it from ITC top-k re-scored by ITM, captioning scored with
// BLEU and CIDEr-D, and the trainer's evaluation after every epoch.
#include <blip2/eval/evaluate_captioning.hpp>
#include <blip2/eval/evaluate_retrieval.hpp>
#include <blip2/pipelines/image_to_text.hpp>
#include <blip2/pipelines/model_dir.hpp>
#include <blip2/tokenizers/load.hpp>
#include <blip2/train/trainer.hpp>
#include <filesystem>
#include <fstream>

#include "support.hpp"

using namespace blip2;
using namespace blip2::testing;
namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(BLIP2_CLI_MODELS) + "/";
const std::string kImages = std::string(BLIP2_TEST_DATA) + "/images/";

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("blip2-evaluate-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A split of four images and six captions: chelsea.png named by two entries (one caption each),
// rocket.jpg by one entry with a list of two.
std::string write_split(const fs::path& dir) {
  const auto path = dir / "val.json";
  std::ofstream(path) << R"([
    {"image": "chelsea.png", "caption": "A cat on a red sofa.", "image_id": 0},
    {"image": "coffee.png", "caption": "A cup of coffee.", "image_id": 1},
    {"image": "chelsea.png", "caption": "a cat", "image_id": 0},
    {"image": "rocket.jpg", "caption": ["A rocket on its pad", "a space rocket"], "image_id": 2},
    {"image": "astronaut.png", "caption": "An astronaut in a white suit.", "image_id": 3}
  ])";
  return path.string();
}

}  // namespace

TEST_CASE("evaluation split: captions grouped by image in file order, a subset, a missing image named") {
  const auto dir = fresh_dir("split");
  const auto set = data::EvalSet::load(write_split(dir), kImages);
  REQUIRE(set.size() == 4);
  CHECK(set[0].path == kImages + "chelsea.png");
  CHECK(set[0].captions == std::vector<std::string>{"A cat on a red sofa.", "a cat"});
  CHECK(set[2].captions.size() == 2);
  CHECK(set.texts().size() == 6);
  CHECK(set.img2txt()[2] == std::vector<std::size_t>{3, 4});
  CHECK(set.txt2img() == std::vector<std::size_t>{0, 0, 1, 2, 2, 3});
  const auto pixels = set.pixel_values(1, 3, 16);
  CHECK(pixels.shape() == Shape{2, 3, 16, 16});
  const auto two = data::EvalSet::load(write_split(dir), kImages, 2);
  CHECK(two.size() == 2);
  CHECK(two[0].captions.size() == 2);  // a later entry of a kept image still adds its caption
  const auto missing = data::EvalSet::load(write_split(dir), dir.string());
  CHECK_THROWS_WITH_AS(missing.pixel_values(0, 1, 16), doctest::Contains("val.json: evaluation image 0"), IoError);
  CHECK_THROWS_WITH_AS(missing.pixel_values(0, 1, 16), doctest::Contains("chelsea.png"), IoError);
  fs::remove_all(dir);
}

TEST_CASE("retrieval evaluation: LAVIS's recall from ITC top-k re-scored by ITM") {
  const auto dir = fresh_dir("retrieval");
  const auto set = data::EvalSet::load(write_split(dir), kImages);
  const auto model = load_model<Blip2Retrieval<float>>(kModels + "itm", load_config(kModels + "itm"));
  const auto tok = tokenizers::WordPieceTokenizer::qformer(kModels + "itm/vocab.txt");
  eval::RetrievalEvalOptions o;
  o.batch_size = 3;  // two image batches
  o.max_txt_len = 16;

  // Every pair scored by ITM + ITC, as k_test >= the candidates makes it.
  NoGrad no_grad;
  std::vector<std::vector<tokenizers::Id>> rows;
  for (const auto& t : set.texts())
    rows.push_back(tokenizers::framed({tok.special_ids().cls}, tok.encode(data::pre_caption(t), false),
                                      {tok.special_ids().sep}, o.max_txt_len));
  const auto [ids, mask] = tokenizers::pad_right(rows, model->config.qformer.pad_token_id);
  const auto features =
      (*model->vision_model)(set.pixel_values(0, set.size(), model->config.vision.image_size)).last_hidden_state;
  const auto itc = Blip2Retrieval<float>::similarity(model->image_embeddings_from_features(features),
                                                     model->text_embeddings(ids, mask))
                       .logits_per_image.to_vector();
  const std::size_t I = set.size(), T = rows.size();
  std::vector<float> all(I * T);
  for (std::size_t i = 0; i < I; ++i)
    for (std::size_t t = 0; t < T; ++t) {
      const auto one = [&](const Tensor<std::int64_t>& x) { return x.slice(0, index_t(t), index_t(t) + 1).contiguous(); };
      const auto itm = model->itm_from_features(features.slice(0, index_t(i), index_t(i) + 1).contiguous(), one(ids), one(mask));
      all[i * T + t] = itm.to_vector()[1] + itc[i * T + t];
    }
  const auto want = eval::retrieval_recall(all, I, T, set.img2txt(), set.txt2img());
  o.k_test = 100;
  const auto got = eval::evaluate_retrieval(*model, set, tok, o);
  CHECK(got.txt_r1 == want.txt_r1);
  CHECK(got.txt_r5 == want.txt_r5);
  CHECK(got.img_r1 == want.img_r1);
  CHECK(got.img_r5 == want.img_r5);
  CHECK(got.r_mean == doctest::Approx(want.r_mean));

  // k_test 1: only ITC's best candidate is re-scored, so recall@1 is ITC's.
  o.k_test = 1;
  const auto top1 = eval::evaluate_retrieval(*model, set, tok, o);
  double txt_hits = 0, img_hits = 0;
  const auto img2txt = set.img2txt();
  for (std::size_t i = 0; i < I; ++i) {
    const std::size_t best = std::size_t(std::max_element(itc.begin() + long(i * T), itc.begin() + long((i + 1) * T)) -
                                         (itc.begin() + long(i * T)));
    txt_hits += std::count(img2txt[i].begin(), img2txt[i].end(), best) > 0;
  }
  for (std::size_t t = 0; t < T; ++t) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < I; ++i)
      if (itc[i * T + t] > itc[best * T + t]) best = i;
    img_hits += best == set.txt2img()[t];
  }
  CHECK(top1.txt_r1 == doctest::Approx(txt_hits / double(I)));
  CHECK(top1.img_r1 == doctest::Approx(img_hits / double(T)));
  CHECK(eval::to_json(top1)["txt_r1"] == doctest::Approx(100 * top1.txt_r1));
  fs::remove_all(dir);
}

TEST_CASE("captioning evaluation: the pipeline's captions, scored as the COCO caption evaluation") {
  const auto dir = fresh_dir("captioning");
  const auto set = data::EvalSet::load(write_split(dir), kImages);
  const ImageToText<> pipe(kModels + "opt");
  Blip2OPT<float> model(pipe.config());
  REQUIRE(io::load_parameters(model, io::Checkpoint::open(kModels + "opt")).empty());
  const auto tok = tokenizers::load_tokenizer(kModels + "opt");
  eval::CaptionEvalOptions o;
  o.batch_size = 3;
  o.generation.max_new_tokens = 5;
  o.generation.min_new_tokens = 2;
  o.generation.num_beams = 2;
  o.generation.eos_token_id = {pipe.config().opt.eos_token_id};
  const auto e = eval::evaluate_captioning(model, set, *tok, o);
  REQUIRE(e.captions.size() == 4);
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < set.size(); ++i) paths.push_back(set[i].path);
  const auto g = pipe.caption(paths, "", o.generation);
  std::vector<std::string> candidates;
  std::vector<std::vector<std::string>> references;
  for (std::size_t i = 0; i < set.size(); ++i) {
    std::string want = g.texts[i];
    want.erase(0, want.find_first_not_of(" \n"));
    want.erase(want.find_last_not_of(" \n") + 1);
    CHECK(e.captions[i] == want);
    candidates.push_back(eval::coco_tokenize(e.captions[i]));
    references.emplace_back();
    for (const auto& c : set[i].captions) references.back().push_back(eval::coco_tokenize(c));
  }
  const auto want = eval::score_captions(candidates, references);
  CHECK(e.scores.cider == want.cider);
  CHECK(e.scores.bleu == want.bleu);
  CHECK(eval::to_json(e.scores)["agg_metrics"] == doctest::Approx(want.cider + want.bleu[3]));

  // Flan-T5: the encoder reads the queries, the prompt and </s>, as LAVIS's Blip2T5.generate.
  const auto t5 = load_model<Blip2T5<float>>(kModels + "t5", load_config(kModels + "t5"));
  const auto t5_tok = tokenizers::load_tokenizer(kModels + "t5");
  o.prompt = "a photo of";
  o.generation.eos_token_id.clear();
  const auto t5e = eval::evaluate_captioning(*t5, set, *t5_tok, o);
  CHECK(t5e.captions.size() == 4);
  CHECK(t5e.scores.per_image_cider.size() == 4);
  fs::remove_all(dir);
}

TEST_CASE("trainer: evaluation after every epoch, in metrics.jsonl beside the steps") {
  const auto dir = fresh_dir("trainer");
  Generator init(3);
  nn::Linear<double> layer(2, 1, init);
  layer.set_requires_grad(true);
  RunConfig run;
  run.max_epoch = 3;
  run.output_dir = dir.string();
  Trainer<double, cpu> trainer(layer, run, {{"model", "linear"}}, 2, 4);
  std::vector<long> epochs;
  trainer.evaluate_after_each_epoch([&](long epoch) -> nlohmann::json {
    epochs.push_back(epoch);
    return {{"weight", layer.weight.to_vector()[0]}};
  });
  Generator data(4);
  const auto x = randn<double>({4, 2}, data);
  trainer.train([&](long, long, auto& logged) {
    auto l = mean(square(layer(x)));
    logged["loss"] = l.item();
    return l;
  }, nullptr);
  CHECK(epochs == std::vector<long>{0, 1, 2});
  REQUIRE(trainer.evaluations().size() == 3);
  CHECK(trainer.evaluations().back()["step"] == 6);
  CHECK(trainer.evaluations().back()["eval"]["weight"] == layer.weight.to_vector()[0]);
  std::ifstream in(dir / "metrics.jsonl");
  int lines = 0, evals = 0;
  for (std::string line; std::getline(in, line); ++lines) evals += nlohmann::json::parse(line).contains("eval");
  CHECK(lines == 9);
  CHECK(evals == 3);
  CHECK(read_metrics_jsonl((dir / "metrics.jsonl").string()).size() == 6);  // the steps alone
  fs::remove_all(dir);
}
