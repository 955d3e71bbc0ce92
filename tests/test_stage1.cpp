// Stage-1 pre-training (ITC, ITM, ITG) against LAVIS's own Blip2Qformer.forward
// (tests/data/lavis-stage1, see its README for what each file holds and the tolerances), the
// Q-Former masks, gradient checks of the new losses, bad input, and a short training run.
#include <blip2/train/stage1_objectives.hpp>
#include <blip2/train/adamw.hpp>
#include <blip2/train/param_groups.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

const std::string kStage1 = std::string(BLIP2_TEST_DATA) + "/lavis-stage1/";

template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (auto v : t.to_vector()) m = std::max(m, std::abs(double(v)));
  return m;
}

std::vector<std::int64_t> ids_of(const Tensor<std::int64_t>& t) { return t.to_vector(); }

void check_loss(const char* what, const Tensor<float>& ours, const Tensor<float>& ref) {
  const double a = ours.item(), b = ref.to_vector()[0];
  CHECK_MESSAGE(std::abs(a - b) <= 1e-5 * std::abs(b), what << ": " << a << " vs LAVIS " << b);
}

struct Stage1Fixture {
  std::unique_ptr<Blip2Stage1<float>> model = Blip2Stage1<float>::load(kStage1 + "model");
  io::SafeTensorsFile io = io::SafeTensorsFile::open(kStage1 + "io.safetensors");
  Stage1Options injected() const {
    Stage1Options opt;
    opt.neg_image_idx_per_text = ids_of(io.load<std::int64_t>("neg_image_idx_per_text"));
    opt.neg_text_idx_per_image = ids_of(io.load<std::int64_t>("neg_text_idx_per_image"));
    return opt;
  }
  Stage1Output<float> run(const Stage1Options& opt) const {
    return stage1_losses(*model, io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids"),
                         io.load<std::int64_t>("attention_mask"), opt);
  }
};

}  // namespace

TEST_CASE("stage 1: every LAVIS intermediate and loss") {
  Stage1Fixture f;
  CHECK(f.model->has_itg_head());
  CHECK(f.model->decoder_bos_id() == 61);
  NoGrad no_grad;
  const auto o = f.run(f.injected());
  const auto& io = f.io;
  check_activation("vit_features", f.model->vision_model->encode(io.load<float>("pixel_values")), io.load<float>("vit_features"));
  check_activation("image_embeds", o.image_embeds, io.load<float>("image_embeds"));
  check_activation("query_output", o.query_output, io.load<float>("query_output"));
  check_activation("image_feats", o.image_feats, io.load<float>("image_feats"));
  check_activation("text_last_hidden_state", o.text_last_hidden_state, io.load<float>("text_last_hidden_state"));
  check_activation("text_feat", o.text_feat, io.load<float>("text_feat"));
  check_activation("sim_i2t", o.sim_i2t, io.load<float>("sim_i2t"));
  check_activation("sim_t2i", o.sim_t2i, io.load<float>("sim_t2i"));
  check_activation("weights_t2i", o.weights_t2i, io.load<float>("weights_t2i"));
  check_activation("weights_i2t", o.weights_i2t, io.load<float>("weights_i2t"));
  check_activation("itm_logits", o.itm_logits, io.load<float>("itm_logits"));
  CHECK(ids_of(o.itm_labels) == ids_of(io.load<std::int64_t>("itm_labels")));
  CHECK(ids_of(o.itg_decoder_input_ids) == ids_of(io.load<std::int64_t>("itg_decoder_input_ids")));
  CHECK(ids_of(o.itg_labels) == ids_of(io.load<std::int64_t>("itg_labels")));
  check_activation("itg_logits", o.itg_logits, io.load<float>("itg_logits"));
  check_loss("loss_i2t", o.loss_i2t, io.load<float>("loss_i2t"));
  check_loss("loss_t2i", o.loss_t2i, io.load<float>("loss_t2i"));
  check_loss("loss_itc", o.loss_itc, io.load<float>("loss_itc"));
  check_loss("loss_itm", o.loss_itm, io.load<float>("loss_itm"));
  check_loss("loss_itg", o.loss_itg, io.load<float>("loss_itg"));
  check_loss("loss", o.loss, io.load<float>("loss"));

  SUBCASE("each loss alone equals its part of the sum") {
    for (int which = 0; which < 3; ++which) {
      Stage1Options opt = f.injected();
      opt.itc = which == 0;
      opt.itm = which == 1;
      opt.itg = which == 2;
      const auto part = f.run(opt);
      const char* names[] = {"loss_itc", "loss_itm", "loss_itg"};
      check_loss(names[which], part.loss, io.load<float>(names[which]));
    }
  }
  SUBCASE("seeded negatives: reproducible, never the positive, drawn from the weights' support") {
    Generator g1(7), g2(7);
    Stage1Options a, b;
    a.generator = &g1;
    b.generator = &g2;
    const auto ra = f.run(a), rb = f.run(b);
    CHECK(ra.neg_image_idx_per_text == rb.neg_image_idx_per_text);
    CHECK(ra.neg_text_idx_per_image == rb.neg_text_idx_per_image);
    CHECK(ra.loss.item() == rb.loss.item());
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(ra.neg_image_idx_per_text[i] != std::int64_t(i));
      CHECK(ra.neg_text_idx_per_image[i] != std::int64_t(i));
    }
  }
}

TEST_CASE("stage 1: image_ids, LAVIS's branch for several texts of one image") {
  Stage1Fixture f;
  NoGrad no_grad;
  SUBCASE("distinct ids change nothing") {
    Stage1Options with_ids = f.injected();
    with_ids.image_ids = {10, 11, 12, 13};
    const auto a = f.run(f.injected()), b = f.run(with_ids);
    CHECK(a.loss_itc.item() == b.loss_itc.item());
    CHECK(a.loss.item() == b.loss.item());
    CHECK(max_abs(a.weights_i2t - b.weights_i2t) == 0);
  }
  SUBCASE("shared ids: spread ITC targets, never each other's ITM negative") {
    const std::vector<std::int64_t> ids = {5, 5, 9, 9};
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
      Generator g(seed);
      Stage1Options opt;
      opt.generator = &g;
      opt.image_ids = ids;
      const auto o = f.run(opt);
      for (std::size_t i = 0; i < 4; ++i) {
        CHECK(ids[std::size_t(o.neg_image_idx_per_text[i])] != ids[i]);
        CHECK(ids[std::size_t(o.neg_text_idx_per_image[i])] != ids[i]);
      }
      if (seed > 0) continue;
      // LAVIS: targets 0.1 / 4 + 0.9 * [same id] / 2 against log_softmax of each row.
      auto itc = [&](const Tensor<float>& sim) {
        const auto v = sim.to_vector();
        double loss = 0;
        for (int b = 0; b < 4; ++b) {
          double m = -1e30, z = 0;
          for (int j = 0; j < 4; ++j) m = std::max(m, double(v[std::size_t(b * 4 + j)]));
          for (int j = 0; j < 4; ++j) z += std::exp(double(v[std::size_t(b * 4 + j)]) - m);
          for (int j = 0; j < 4; ++j)
            loss -= (0.1 / 4 + (ids[std::size_t(b)] == ids[std::size_t(j)] ? 0.45 : 0.0)) *
                    (double(v[std::size_t(b * 4 + j)]) - m - std::log(z));
        }
        return loss / 4;
      };
      CHECK(std::abs(o.loss_i2t.item() - itc(o.sim_i2t)) <= 1e-5 * itc(o.sim_i2t));
      CHECK(std::abs(o.loss_t2i.item() - itc(o.sim_t2i)) <= 1e-5 * itc(o.sim_t2i));
      const auto w = o.weights_t2i.to_vector();
      CHECK(w[1] == 0);  // example 0's columns 0 and 1 show its image
      CHECK(w[4] == 0);
    }
  }
  SUBCASE("one id per example of the global batch") {
    Stage1Options opt = f.injected();
    opt.image_ids = {1, 2, 3};
    CHECK_THROWS_AS(f.run(opt), ShapeError);
  }
}

TEST_CASE("stage 1: gradients of every trainable tensor and one AdamW step with LAVIS's groups") {
  Stage1Fixture f;
  auto& model = *f.model;
  model.set_stage1_trainable();
  // The frozen encoder's forward records no graph; its final LayerNorm (ln_vision) trains.
  CHECK(!model.vision_model->encode(f.io.load<float>("pixel_values")).requires_grad());
  CHECK(model.vision_model->trainable_parameters().size() == 2);
  const auto o = f.run(f.injected());
  o.loss.backward();
  CHECK(check_trained_gradients(model, kStage1 + "grads.safetensors") == 127);

  // LAVIS's weight-decay groups: no decay for 1-d tensors (temp aside: 0-d there) and biases.
  const nlohmann::json meta = io::read_json_file(kStage1 + "meta.json");
  const auto expected = meta["adamw"]["decayed"].get<std::vector<std::string>>();
  std::vector<std::string> decayed;
  for (const auto& [name, p] : model.named_parameters())
    if (p.impl().requires_grad && lavis_weight_decay(name, p)) decayed.push_back(name);
  std::sort(decayed.begin(), decayed.end());
  CHECK(decayed == std::vector<std::string>(expected.begin(), expected.end()));

  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-4, 0.9, 0.999, 1e-8, 0.0});
  opt.step();
  const auto after = io::SafeTensorsFile::open(kStage1 + "adamw_step.safetensors");
  const auto grads = io::SafeTensorsFile::open(kStage1 + "grads.safetensors");
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p.impl().requires_grad) continue;
    const auto ref = after.load<float>(name).to_vector();
    const auto ours = p.to_vector();
    const auto g = grads.load<float>("grad." + name).to_vector();
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double limit = std::abs(g[i]) > 1e-4 ? 1e-6 : 2.1e-4;
      worst = std::max(worst, std::abs(double(ours[i]) - double(ref[i])) / limit);
    }
    CHECK_MESSAGE(worst <= 1.0, name << ": AdamW step off by " << worst << " of the tolerance");
  }
}

TEST_CASE("stage 1: gradient checkpointing gives the same gradients") {
  Stage1Fixture plain, ckpt;
  plain.model->set_stage1_trainable();
  ckpt.model->set_stage1_trainable();
  ckpt.model->qformer->gradient_checkpointing = true;
  const auto a = plain.run(plain.injected()), b = ckpt.run(ckpt.injected());
  CHECK(a.loss.item() == doctest::Approx(b.loss.item()).epsilon(1e-6));
  a.loss.backward();
  b.loss.backward();
  const auto pa = plain.model->named_parameters(), pb = ckpt.model->named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    if (!pa[i].second.impl().requires_grad) continue;
    INFO(pa[i].first);
    REQUIRE(pb[i].second.grad().defined());
    CHECK(max_abs_diff(pa[i].second.grad(), pb[i].second.grad()) <= 1e-5 * std::max(1.0, max_abs(pa[i].second.grad())));
  }
}

TEST_CASE("Q-Former masks: unimodal, bidirectional, multimodal causal") {
  const auto mask = Tensor<std::int64_t>::from_vector({1, 3}, {1, 1, 0});
  auto seen = [](const Tensor<float>& m) {
    std::string s;
    for (float v : m.to_vector()) s += v == 0 ? '1' : '.';
    return s;
  };
  // 2 queries + 3 text positions (the last padded); rows by 5 keys.
  CHECK(seen(qformer_attention_mask<float, cpu>(QFormerMask::unimodal, 2, mask)) == "11..." "11..." "..11." "..11." "..11.");
  CHECK(seen(qformer_attention_mask<float, cpu>(QFormerMask::bidirectional, 2, mask)) == "1111." "1111." "1111." "1111." "1111.");
  CHECK(seen(qformer_attention_mask<float, cpu>(QFormerMask::multimodal_causal, 2, mask)) ==
        "11..." "11..." "111.." "1111." "1111.");
  CHECK(seen(qformer_attention_mask<float, cpu>(QFormerMask::multimodal_causal, 2, mask, true)) == "111.." "1111." "1111.");
}

TEST_CASE("Q-Former: one joint pass under the unimodal mask equals the separate query and text passes") {
  Stage1Fixture f;
  NoGrad no_grad;
  const auto& m = *f.model;
  const auto ids = f.io.load<std::int64_t>("input_ids"), mask = f.io.load<std::int64_t>("attention_mask");
  const auto image = f.io.load<float>("image_embeds");
  const index_t B = ids.size(0), Q = m.query_tokens.size(1);
  const auto queries = m.query_tokens.expand({B, Q, m.query_tokens.size(2)});
  typename QFormerModel<float>::Pass pass;
  pass.mask = qformer_attention_mask<float, cpu>(QFormerMask::unimodal, Q, mask);
  const auto joint = m.qformer->forward(concat<float, cpu>({queries, m.embed_text(ids)}, 1), image, Q, pass);
  check_activation("queries", joint.slice(1, 0, Q).contiguous(), f.io.load<float>("query_output"));
  check_activation("text", joint.slice(1, Q, joint.size(1)).contiguous(), f.io.load<float>("text_last_hidden_state"));
  // ITG through a joint pass under the multimodal causal mask equals the key/value prefix pass.
  Stage1Options opt = f.injected();
  opt.itc = opt.itm = false;
  const auto o = f.run(opt);
  auto dec = ids.to_vector();
  for (index_t b = 0; b < B; ++b) dec[std::size_t(b * ids.size(1))] = m.decoder_bos_id();
  pass.mask = qformer_attention_mask<float, cpu>(QFormerMask::multimodal_causal, Q, mask);
  const auto itg = m.qformer->forward(concat<float, cpu>({queries, m.embed_text(Tensor<std::int64_t>::from_vector(ids.shape(), dec))}, 1),
                                      image, Q, pass);
  check_activation("itg_logits", m.itg_logits(itg.slice(1, Q, itg.size(1)).contiguous()), o.itg_logits);
}

TEST_CASE("stage 1: the losses' gradients agree with finite differences (float64)") {
  // A small model of another shape than the fixture: 3 layers, cross-attention every layer, batch 3.
  auto config = Blip2Config::load(kStage1 + "model/config.json");
  config.qformer.num_hidden_layers = 3;
  config.qformer.cross_attention_frequency = 1;
  config.qformer.hidden_size = 8;
  config.qformer.num_attention_heads = 2;
  config.qformer.intermediate_size = 6;
  config.qformer.encoder_hidden_size = 4;
  config.qformer.vocab_size = 12;
  config.num_query_tokens = 2;
  config.image_text_hidden_size = 4;
  config.vision.hidden_size = 4;
  Blip2Stage1<double> model(config);
  Generator gen(3);
  for (auto& [name, p] : model.named_parameters())  // LayerNorm gains near 1, everything else around 0
    io::assign_parameter(p, randn<double>(p.shape(), gen, name.find("orm.weight") != std::string::npos ? 1.0 : 0.0, 0.5));
  io::assign_parameter(model.temp, Tensor<double>::full({1}, 0.5));
  const auto features = randn<double>({3, 5, 4}, gen);
  const auto ids = Tensor<std::int64_t>::from_vector({3, 4}, {2, 5, 7, 3, 2, 6, 3, 0, 2, 9, 8, 3});
  const auto mask = Tensor<std::int64_t>::from_vector({3, 4}, {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1});
  Stage1Options opt;
  opt.neg_image_idx_per_text = {2, 0, 1};
  opt.neg_text_idx_per_image = {1, 2, 0};
  // ITM and ITG are plain gradients: the query tokens, the ITM head and a self-attention weight
  // inside the Q-Former (through both masks). ITC's gradient stops at the gathered side of each
  // similarity (as LAVIS's), so finite differences check it through the temperature alone.
  opt.itc = false;
  gradcheck("ITM + ITG",
            {model.query_tokens, model.itm_head->weight, model.qformer->layers[1]->attention->query->weight},
            [&](const std::vector<Tensor<double>>&) {  // the inputs are the model's own parameters
              return stage1_losses_from_features(model, features, ids, mask, opt).loss.reshape({1});
            },
            1e-6, 1e-5);
  opt.itc = true;
  opt.itm = opt.itg = false;
  model.set_requires_grad(false);
  gradcheck("ITC", {model.temp},
            [&](const std::vector<Tensor<double>>&) {
              return stage1_losses_from_features(model, features, ids, mask, opt).loss.reshape({1});
            },
            1e-6, 1e-5);
}

TEST_CASE("stage 1: bad input gets a clear error") {
  Stage1Fixture f;
  const auto pixels = f.io.load<float>("pixel_values");
  const auto ids = f.io.load<std::int64_t>("input_ids"), mask = f.io.load<std::int64_t>("attention_mask");
  Generator gen(1);
  Stage1Options opt;
  opt.generator = &gen;
  NoGrad no_grad;
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels.slice(0, 0, 3).contiguous(), ids, mask, opt),
                       doctest::Contains("3 images"), ShapeError);
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels.slice(0, 0, 1).contiguous(), ids.slice(0, 0, 1).contiguous(),
                                     mask.slice(0, 0, 1).contiguous(), opt),
                       doctest::Contains("a batch of one has no negatives"), ValueError);
  auto bad = ids.to_vector();
  bad[3] = 99;
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels, Tensor<std::int64_t>::from_vector(ids.shape(), bad), mask, opt),
                       doctest::Contains("token id 99"), ValueError);
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels, ids, mask.slice(1, 0, 5).contiguous(), opt),
                       doctest::Contains("attention_mask"), ShapeError);
  Stage1Options no_gen;
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels, ids, mask, no_gen), doctest::Contains("generator"), ValueError);
  Stage1Options self_negative = f.injected();
  self_negative.neg_text_idx_per_image[2] = 2;
  CHECK_THROWS_WITH_AS(stage1_losses(*f.model, pixels, ids, mask, self_negative), doctest::Contains("own positive"),
                       ValueError);

  // A retrieval checkpoint (no ITG head, no temperature) loads; ITG is then refused by name.
  const auto dir = std::filesystem::temp_directory_path() / "blip2-stage1-no-itg";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kStage1 + "model/config.json", dir / "config.json", std::filesystem::copy_options::overwrite_existing);
  {
    const auto ckpt = io::SafeTensorsFile::open(kStage1 + "model/model.safetensors");
    std::vector<io::TensorRecord> kept;
    for (const auto& e : ckpt.entries())
      if (e.name.rfind("cls.", 0) != 0 && e.name != "temp") kept.push_back(io::TensorRecord::from(e.name, ckpt.load<float>(e.name)));
    io::save_safetensors((dir / "model.safetensors").string(), kept);
  }
  const auto retrieval = Blip2Stage1<float>::load(dir.string());
  CHECK(!retrieval->has_itg_head());
  CHECK(retrieval->temp.item() == doctest::Approx(0.07));
  CHECK_THROWS_WITH_AS(stage1_losses(*retrieval, pixels, ids, mask, opt), doctest::Contains("no ITG head"), ValueError);
  Stage1Options itc_itm = opt;
  itc_itm.itg = false;
  CHECK(std::isfinite(stage1_losses(*retrieval, pixels, ids, mask, itc_itm).loss.item()));
  // A new ITG head makes the model a complete stage-1 model.
  Generator init(2);
  retrieval->init_itg_head(init);
  CHECK(retrieval->itg_norm->weight.to_vector()[0] == 1.0f);
  const auto with_itg = stage1_losses(*retrieval, pixels, ids, mask, opt);
  CHECK(std::isfinite(with_itg.loss_itg.item()));
  CHECK(with_itg.loss_itg.item() > 0);
  CHECK_THROWS_WITH_AS(retrieval->init_itg_head(init), doctest::Contains("already has"), ValueError);
}

TEST_CASE("stage 1: save and load round trip in the fixture's layout") {
  Stage1Fixture f;
  const auto dir = (std::filesystem::temp_directory_path() / "blip2-stage1-saved").string();
  f.model->save(dir);
  const auto saved = io::SafeTensorsFile::open(dir + "/model.safetensors");
  const auto original = io::SafeTensorsFile::open(kStage1 + "model/model.safetensors");
  CHECK(saved.entries().size() == original.entries().size());
  for (const auto& e : original.entries()) {
    INFO(e.name);
    REQUIRE(saved.contains(e.name));
    CHECK(max_abs_diff(saved.load<float>(e.name), original.load<float>(e.name)) == 0);
  }
  const auto back = Blip2Stage1<float>::load(dir);
  CHECK(back->config.qformer.cross_attention_frequency == 2);
  CHECK(back->config.is_retrieval());
  // The retrieval model (transformers' layout) loads it too, reporting the stage-1 extras as unexpected.
  Blip2Retrieval<float> retrieval(back->config);
  const auto unexpected = io::load_parameters(retrieval, io::Checkpoint::open(dir));
  CHECK(unexpected.size() == 6);
}

TEST_CASE("stage 1: 200 steps on a small synthetic set bring all three losses down") {
  // Eight random images, each with its own random caption ([CLS] words [SEP], padded to 10);
  // every step trains on four of them drawn at random. The fixture-sized model, fixture weights.
  Stage1Fixture f;
  auto& model = *f.model;
  model.set_stage1_trainable();
  Generator data(21);
  const index_t N = 8, L = 10;
  const auto images = randn<float>({N, 3, 24, 24}, data);
  std::vector<std::int64_t> ids(std::size_t(N * L), 0), mask(std::size_t(N * L), 0);
  for (index_t n = 0; n < N; ++n) {
    const index_t words = 3 + index_t(data.uniform() * 6);  // 3..8 words
    for (index_t t = 0; t < words + 2; ++t) {
      ids[std::size_t(n * L + t)] = t == 0 ? 2 : t == words + 1 ? 3 : 5 + std::int64_t(data.uniform() * 56);
      mask[std::size_t(n * L + t)] = 1;
    }
  }
  const auto all_ids = Tensor<std::int64_t>::from_vector({N, L}, ids), all_mask = Tensor<std::int64_t>::from_vector({N, L}, mask);
  AdamW<float, cpu> opt(lavis_param_groups(model, 0.05), {1e-3, 0.9, 0.999, 1e-8, 0.0});
  Generator gen(11);
  Stage1Options o;
  o.generator = &gen;
  double first[3] = {0, 0, 0}, last[3] = {0, 0, 0};
  const int steps = 200, window = 20;
  for (int step = 0; step < steps; ++step) {
    std::vector<std::int64_t> pick;  // four distinct examples
    while (pick.size() < 4) {
      const std::int64_t i = std::int64_t(gen.uniform() * double(N));
      if (std::find(pick.begin(), pick.end(), i) == pick.end()) pick.push_back(i);
    }
    const auto rows = Tensor<std::int64_t>::from_vector({4}, pick);
    opt.zero_grad();
    const auto out = stage1_losses(model, index_select(images, 0, rows), index_select(all_ids, 0, rows),
                                   index_select(all_mask, 0, rows), o);
    out.loss.backward();
    opt.step();
    const double l[3] = {out.loss_itc.item(), out.loss_itm.item(), out.loss_itg.item()};
    for (int k = 0; k < 3; ++k) {
      if (step < window) first[k] += l[k] / window;
      if (step >= steps - window) last[k] += l[k] / window;
    }
  }
  MESSAGE("ITC " << first[0] << " -> " << last[0] << ", ITM " << first[1] << " -> " << last[1] << ", ITG " << first[2]
                 << " -> " << last[2]);
  CHECK(last[0] < 0.6 * first[0]);
  CHECK(last[1] < 0.6 * first[1]);
  CHECK(last[2] < 0.6 * first[2]);
}

namespace {
// Rank 0 of two ranks that hold the same examples: every gather duplicates this rank's rows, and
// the all-reduce of a gradient doubles it.
class MirroredPair final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  void all_gather_bytes(const void* send, void* recv, std::size_t bytes) const override {
    std::memcpy(recv, send, bytes);
    std::memcpy(static_cast<char*>(recv) + bytes, send, bytes);
  }
  void all_reduce_sum(float* data, std::size_t n) const override {
    for (std::size_t i = 0; i < n; ++i) data[i] *= 2;
  }
  void all_reduce_sum(double* data, std::size_t n) const override {
    for (std::size_t i = 0; i < n; ++i) data[i] *= 2;
  }
  void broadcast_bytes(void*, std::size_t, int) const override {}  // both ranks hold the same
  void barrier() const override {}
  std::unique_ptr<Communicator> duplicate_for_thread() const override {
    if (!threads) return nullptr;
    ++threads_made;
    return std::make_unique<MirroredPair>();
  }
  bool threads = false;
  mutable int threads_made = 0;
};
}  // namespace

TEST_CASE("stage 1 across ranks: the global batch through a Communicator") {
  Stage1Fixture f;
  NoGrad no_grad;
  const auto pixels = f.io.load<float>("pixel_values");
  const auto ids = f.io.load<std::int64_t>("input_ids"), mask = f.io.load<std::int64_t>("attention_mask");
  const MirroredPair pair;
  Stage1Options ranked;
  ranked.comm = &pair;
  ranked.neg_image_idx_per_text = {5, 6, 1, 2};  // indices into the global batch of 8
  ranked.neg_text_idx_per_image = {2, 7, 4, 0};
  const auto r = f.run(ranked);
  CHECK(to_string(r.sim_i2t.shape()) == "[4,8]");
  // One process over the same 8 examples, rows 4..7 with the mirrored negatives, gives the same losses.
  Stage1Options single;
  for (auto [from, to] : {std::pair{&ranked.neg_image_idx_per_text, &single.neg_image_idx_per_text},
                          {&ranked.neg_text_idx_per_image, &single.neg_text_idx_per_image}}) {
    *to = *from;
    for (auto i : *from) to->push_back((i + 4) % 8);
  }
  const auto s = stage1_losses(*f.model, concat<float, cpu>({pixels, pixels}, 0), concat<std::int64_t, cpu>({ids, ids}, 0),
                               concat<std::int64_t, cpu>({mask, mask}, 0), single);
  CHECK(r.loss_itc.item() == doctest::Approx(s.loss_itc.item()).epsilon(1e-5));
  CHECK(r.loss_itm.item() == doctest::Approx(s.loss_itm.item()).epsilon(1e-5));
  CHECK(r.loss_itg.item() == doctest::Approx(s.loss_itg.item()).epsilon(1e-5));
  ranked.neg_text_idx_per_image[1] = 8;
  CHECK_THROWS_WITH_AS(f.run(ranked), doctest::Contains("outside the global batch [0, 8)"), ValueError);
}

TEST_CASE("stage 1 across ranks: drawn negatives and the ITG mean are those of one process") {
  Stage1Fixture f;
  NoGrad no_grad;
  const auto pixels = f.io.load<float>("pixel_values");
  const auto ids = f.io.load<std::int64_t>("input_ids"), mask = f.io.load<std::int64_t>("attention_mask");
  const MirroredPair pair;  // rank 0 of two that hold the same 4 examples: a global batch of 8
  Generator ranked_gen(5), single_gen(5);
  Stage1Options ranked, single;
  ranked.comm = &pair;
  ranked.generator = &ranked_gen;
  single.generator = &single_gen;
  const auto r = f.run(ranked);
  const auto s = stage1_losses(*f.model, concat<float, cpu>({pixels, pixels}, 0), concat<std::int64_t, cpu>({ids, ids}, 0),
                               concat<std::int64_t, cpu>({mask, mask}, 0), single);
  // Rank 0's rows are the global batch's rows 0..3: the same draws, and both generators moved alike.
  const std::vector<std::int64_t> first_images(s.neg_image_idx_per_text.begin(), s.neg_image_idx_per_text.begin() + 4);
  const std::vector<std::int64_t> first_texts(s.neg_text_idx_per_image.begin(), s.neg_text_idx_per_image.begin() + 4);
  CHECK(r.neg_image_idx_per_text == first_images);
  CHECK(r.neg_text_idx_per_image == first_texts);
  CHECK(ranked_gen.offset() == single_gen.offset());
  CHECK(r.loss_itg.item() == doctest::Approx(s.loss_itg.item()).epsilon(1e-5));
  // Injected lists for the global batch serve every rank (this one takes its rows).
  Stage1Options global = ranked;
  global.neg_image_idx_per_text = s.neg_image_idx_per_text;
  global.neg_text_idx_per_image = s.neg_text_idx_per_image;
  CHECK(f.run(global).neg_image_idx_per_text == first_images);
}

TEST_CASE("GradientAverager: the ranks' mean gradient; a parameter no rank has a gradient for keeps none") {
  const MirroredPair pair;  // two ranks with the same gradients: the mean is the gradient itself
  auto a = Tensor<float>::from_vector({2, 2}, {1, 2, 3, 4}).requires_grad_();
  auto b = Tensor<float>::from_vector({3}, {5, 6, 7}).requires_grad_();
  sum(a * a).backward();
  GradientAverager<float, cpu> average;
  for (int step = 0; step < 2; ++step) {  // the second reuses the buffer
    average({a, b}, pair);
    CHECK(a.grad().to_vector() == std::vector<float>{2, 4, 6, 8});
    CHECK_FALSE(b.grad().defined());
  }
}

TEST_CASE("GradientAverager: buckets exchanged during backward, on a communication thread or not") {
  // A model's worth of parameters with distinct values, so that a gradient unpacked into another
  // parameter's place shows; buckets of 64 bytes hold one or a few of them.
  Generator gen(3);
  std::vector<Tensor<float>> params;
  for (index_t n : {5, 17, 3, 40, 1, 9, 16}) params.push_back(randn<float>({n}, gen).requires_grad_());
  const auto unused = Tensor<float>::zeros({4}).requires_grad_();
  params.insert(params.begin() + 2, unused);
  auto loss = [&] {
    Tensor<float> l = Tensor<float>::zeros({1});
    for (std::size_t i = 0; i < params.size(); ++i)
      if (i != 2) l = l + sum(params[i] * params[i]) * float(i + 1);
    return l;
  };
  for (bool threads : {false, true}) {
    INFO("threads " << threads);
    MirroredPair pair;
    pair.threads = threads;
    using Averager = GradientAverager<float, cpu>;
    // automatic: no thread, all ranks being on one machine (MirroredPair's one_machine()).
    Averager average(64, threads ? Averager::Thread::on : Averager::Thread::automatic);
    for (int step = 0; step < 2; ++step) {  // the second reuses the layout, buffer and thread communicator
      for (const auto& p : params) p.zero_grad();
      average(params, pair, [&] { loss().backward(); });
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (i == 2) {
          CHECK_FALSE(params[i].grad().defined());
          continue;
        }
        const auto g = params[i].grad().to_vector(), p = params[i].to_vector();
        for (std::size_t k = 0; k < p.size(); ++k) CHECK(g[k] == doctest::Approx(2.0 * double(i + 1) * p[k]));
      }
      CHECK(average.last_timing().buckets >= 5);
      CHECK(average.last_timing().threaded == threads);
    }
    CHECK(pair.threads_made == (threads ? 1 : 0));
  }
}

TEST_CASE("all_gather_with_grad: the gradient is the all-reduced gradient's own rows") {
  const MirroredPair pair;
  auto x = Tensor<double>::from_vector({2, 1}, {1.0, 2.0}).requires_grad_();
  const auto gathered = all_gather_with_grad(x, pair);
  CHECK(gathered.to_vector() == std::vector<double>{1, 2, 1, 2});
  sum(gathered * Tensor<double>::from_vector({4, 1}, {1, 10, 100, 1000})).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, 20});  // rank 0's rows of 2 x the local gradient
  CHECK(!all_gather(x, pair).requires_grad());
}
