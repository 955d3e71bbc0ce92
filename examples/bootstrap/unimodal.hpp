#pragma once
// The frozen unimodal models BLIP-2 starts from, grown here because none can be downloaded:
//  - the image encoder, pre-trained with weak supervision from the captions, as VirTex
//    (Desai & Johnson, 2021) pre-trains visual features by captioning: from the pooled [CLS]
//    output it predicts every word of the image's caption at once, one classifier per position
//    (no text goes in; the heads are thrown away afterwards);
//  - the language model, an OPT pre-trained on text alone (captions of the world in all their
//    wordings, and question-answer lines in the "Question: ... Answer: ..." form), three texts
//    about one scene per sequence, each led by OPT's "</s>", like a short document: a text may
//    start at any position (in BLIP-2 it starts after the 8 visual prompts), and what precedes it
//    describes the same scene, so the model learns to use earlier context, which is the role the
//    visual prompts take in stage 2. That skill comes late: the loss falls in two steps, first to
//    what the grammar alone predicts (~0.74 nats a token after 4 epochs), then, after ~15 epochs,
//    to ~0.6 as the model starts to copy the scene's words from the earlier texts. Stopped before
//    the second step, the frozen LM ignored the visual prompts in stage 2 (held-out captions 2%
//    right; 50% with the LM unfrozen, which showed the Q-Former's features were not the problem);
//    after 30 epochs the frozen LM reads them (22%). Half of the later texts repeat an earlier
//    one verbatim (Settings::lm_repeat): exact repeats are what teach copying at every position,
//    the first attribute word included, which paraphrases alone never taught.
// Both then freeze, as BLIP-2's do.
#include "setup.hpp"

namespace bootstrap {

// A ViT with a caption head on its pooled [CLS] output: `positions` word classifiers over `words`.
struct WeaklySupervisedVit : nn::Module<float, cpu> {
  WeaklySupervisedVit(std::shared_ptr<VisionModel<float>> vit, index_t positions, index_t words, Generator& g)
      : vision_model(std::move(vit)) {
    register_module("vision_model", vision_model);
    head = register_module("head", std::make_shared<nn::Linear<float>>(vision_model->config.hidden_size, positions * words, g));
  }
  std::shared_ptr<VisionModel<float>> vision_model;
  std::shared_ptr<nn::Linear<float>> head;
};

inline RunConfig stage_run(const Settings& s, const std::string& stage, long epochs, double lr, long batch) {
  RunConfig r;
  r.init_lr = lr;
  r.min_lr = lr * 0.1;
  r.warmup_lr = lr * 0.01;
  r.warmup_steps = 20;
  r.max_epoch = epochs;
  r.batch_size_train = batch;
  r.seed = s.seed;
  r.log_every = 25;
  r.output_dir = (fs::path(s.out) / "runs" / stage).string();
  return r;
}

// The word indices of the canonical caption of each scene, padded to `positions` with -100 (not scored).
inline Ids caption_word_targets(const World& w, const std::vector<data::Scene>& scenes, index_t positions) {
  const auto vocab = w.shapes.vocabulary();
  std::vector<std::int64_t> targets;
  for (const auto& sc : scenes) {
    const auto words = data::words_of(w.shapes.canonical_caption(sc));
    BLIP2_CHECK(index_t(words.size()) <= positions, ValueError, "bootstrap: a caption longer than ", positions, " words");
    for (index_t k = 0; k < positions; ++k)
      targets.push_back(k < index_t(words.size())
                            ? std::int64_t(std::find(vocab.begin(), vocab.end(), words[std::size_t(k)]) - vocab.begin())
                            : -100);
  }
  return Ids::from_vector({index_t(scenes.size()), positions}, targets);
}

// Pre-trains `vit` on images of the world; returns the trainer's history. Like the web-scale
// corpora of real image encoders, its corpus is larger than BLIP-2's own training set: every
// epoch draws new scenes (indices below the held-out range, so held-out images stay unseen).
inline std::vector<StepRecord> pretrain_vision(std::shared_ptr<VisionModel<float>> vit, const World& w, const Settings& s) {
  const auto vocab = w.shapes.vocabulary();
  Generator g(s.seed + 1);
  nn::init_parameters(*vit, g);
  const index_t positions = 12;
  WeaklySupervisedVit model(vit, positions, index_t(vocab.size()), g);
  model.set_requires_grad(true);
  const RunConfig run = stage_run(s, "vit", s.vit_epochs, 2e-3, 32);
  const long batches = long(w.train.size()) / run.batch_size_train;
  BLIP2_CHECK(std::uint64_t(run.max_epoch * batches * run.batch_size_train) <= data::kFirstHeldOutIndex, ValueError,
              "bootstrap: the image encoder's corpus would reach the held-out scenes");
  Trainer<float, cpu> trainer(model, run, {{"model", "weakly supervised ViT"}, {"vision", vit->config.hidden_size}}, batches,
                              run.batch_size_train);
  std::fprintf(stderr, "[1/4] image encoder: %ld epochs of %ld new images (weakly supervised by their captions)\n",
               run.max_epoch, batches * run.batch_size_train);
  trainer.train([&](long epoch, long b, auto& logged) {
    std::vector<data::Scene> scenes;
    for (long k = 0; k < run.batch_size_train; ++k)
      scenes.push_back(w.shapes.scene(std::uint64_t((epoch * batches + b) * run.batch_size_train + k)));
    const auto pooled = (*vit)(w.render(scenes)).pooler_output;
    const auto logits = (*model.head)(pooled).reshape({index_t(scenes.size()), positions, index_t(vocab.size())});
    const auto loss = cross_entropy(logits, caption_word_targets(w, scenes, positions));
    logged["caption_words"] = loss.item();
    return loss;
  });
  vit->set_requires_grad(false);
  {  // How well the head reads held-out images: a check of the features the later stages build on.
    NoGrad no_grad;
    const auto pooled = (*vit)(w.heldout_pixels).pooler_output;
    const auto logits = (*model.head)(pooled).to_vector();  // [N, positions, words]
    const std::size_t V = vocab.size();
    long exact = 0;
    std::vector<long> right(std::size_t(positions), 0), seen(std::size_t(positions), 0);
    for (std::size_t i = 0; i < w.heldout.size(); ++i) {
      const auto words = data::words_of(w.shapes.canonical_caption(w.heldout[i]));
      bool same = true;
      for (std::size_t k = 0; k < words.size(); ++k) {
        const auto row = logits.begin() + std::ptrdiff_t((i * std::size_t(positions) + k) * V);
        const bool word_right = vocab[std::size_t(std::max_element(row, row + std::ptrdiff_t(V)) - row)] == words[k];
        same = same && word_right;
        right[k] += word_right;
        ++seen[k];
      }
      exact += same;
    }
    std::string per_word;  // which attributes it misses: "a small red circle to the left of a large blue square"
    for (std::size_t k = 0; k < right.size(); ++k)
      if (seen[k]) per_word += " " + std::to_string(100 * right[k] / seen[k]);
    std::fprintf(stderr, "      its caption head reads %.1f%% of the held-out images exactly (per word position, %%:%s)\n",
                 100.0 * double(exact) / double(w.heldout.size()), per_word.c_str());
  }
  return trainer.history();
}

// Text for the language model: mostly captions in random wordings, a quarter question-answer lines.
inline std::string lm_text(const World& w, const data::Scene& sc, Generator& g) {
  if (g.uniform() < 0.75) return w.shapes.caption(sc, g) + "\n";
  const auto qa = w.shapes.question(sc, g);
  return presets::vqa_prompt(qa.question) + " " + qa.answer + "\n";
}

// Pre-trains `lm` on text alone; returns the trainer's history.
inline std::vector<StepRecord> pretrain_language_model(OPTForCausalLM<float>& lm, const World& w, const Settings& s) {
  Generator g(s.seed + 2);
  nn::init_parameters(lm, g);
  lm.set_requires_grad(true);
  const RunConfig run = stage_run(s, "opt", s.lm_epochs, 2e-3, 32);  // 3 texts a row
  const long batches = long(w.train.size()) / run.batch_size_train;
  Trainer<float, cpu> trainer(lm, run, {{"model", "opt"}, {"opt", lm.config.hidden_size}}, batches, run.batch_size_train);
  std::fprintf(stderr, "[2/4] language model: %ld texts per epoch, %ld epochs (text only)\n", long(w.train.size()),
               run.max_epoch);
  trainer.train([&](long epoch, long b, auto& logged) {
    const auto rows = batch_rows(epoch_order(long(w.train.size()), s.seed + 7, epoch), b, run.batch_size_train);
    std::vector<std::vector<std::int64_t>> texts;
    for (auto r : rows) {
      Generator text_g(s.seed * 7919 + std::uint64_t(epoch) * 1000003 + std::uint64_t(r));
      std::vector<std::int64_t> packed;  // three texts about this scene
      std::vector<std::vector<std::int64_t>> said;  // the texts so far, which a later one may repeat
      for (int k = 0; k < 3; ++k) {
        const bool repeat = k > 0 && text_g.uniform() < s.lm_repeat;
        const auto ids = repeat ? said[std::size_t(uniform_int(text_g, 0, k - 1))]
                                : w.opt->encode(lm_text(w, w.train[std::size_t(r)], text_g));
        said.push_back(ids);
        packed.insert(packed.end(), ids.begin(), ids.end());
      }
      texts.push_back(std::move(packed));
    }
    const auto [ids, mask] = pad_rows(texts, lm.config.pad_token_id, std::size_t(lm.config.max_position_embeddings));
    const auto logits = lm(lm.embed(ids), mask);
    const auto targets = opt_caption_targets(ids, lm.config.pad_token_id, 0, 0);
    const auto loss = Blip2OPT<float>::causal_lm_loss(logits, targets);
    logged["lm_loss"] = loss.item();
    return loss;
  });
  lm.set_requires_grad(false);
  return trainer.history();
}

}  // namespace bootstrap
