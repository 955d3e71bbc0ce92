#pragma once
// Zero-shot evaluation on held-out images (scene indices no stage saw):
//  - captioning: greedy generation from the image alone; right when the caption names every
//    object with its size, colour and shape and, for two objects, their relation (any wording);
//  - retrieval: every held-out image against every held-out canonical caption, ITC similarities
//    re-ranked by ITM over the top k as LAVIS does (score = ITM match logit + ITC similarity); a
//    retrieved caption is right when it describes the image (several scenes can share a caption);
//  - VQA: "Question: {} Answer:" prompts, greedy, right when the answer is the one word expected.
#include <blip2/pipelines/retrieval.hpp>

#include "stages.hpp"

namespace bootstrap {

struct HeldOutResult {
  std::vector<std::string> captions;               // generated, per image
  std::vector<bool> caption_right;
  std::vector<data::QA> questions;                 // one per image
  std::vector<std::string> answers;                // generated
  std::vector<bool> answer_right;
  std::vector<std::int64_t> top_text;              // retrieval: the best caption for each image
  std::vector<std::string> texts;                  // the canonical captions retrieved among
  double caption_accuracy = 0, vqa_accuracy = 0, r1_i2t = 0, r1_t2i = 0;
};

// The generated part of one row of GenerateOutput::rows(), up to the first "\n", pad or </s>.
inline std::string decode_generated(const World& w, const std::vector<std::int64_t>& row, index_t prompt_length) {
  std::vector<std::int64_t> ids;
  for (auto it = row.begin() + prompt_length; it != row.end(); ++it) {
    if (*it == w.newline_id || *it == w.opt_vocab.special.pad || *it == w.opt_vocab.special.eos) break;
    ids.push_back(*it);
  }
  std::string text = w.opt->decode(ids, true);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  return text;
}

inline HeldOutResult evaluate(const Blip2Stage1<float>& stage1, const Blip2OPT<float>& model, const Tensor<float>& features,
                              const World& w, const Settings& s) {
  NoGrad no_grad;
  HeldOutResult r;
  const index_t N = index_t(w.heldout.size());
  GenerationOptions greedy;
  greedy.max_new_tokens = 20;
  greedy.eos_token_id = {w.newline_id};
  const auto lm_inputs = model.project(model.query_features((*model.vision_model->post_layernorm)(features)));
  const auto captions = generate_from_image(model, lm_inputs, Ids(), Ids(), greedy);
  const auto caption_rows = captions.rows();
  Generator qg(s.seed + 17);
  std::vector<std::vector<std::int64_t>> prompts;
  for (index_t i = 0; i < N; ++i) {
    const auto& sc = w.heldout[std::size_t(i)];
    r.captions.push_back(decode_generated(w, caption_rows[std::size_t(i)], captions.prompt_length));
    r.caption_right.push_back(w.shapes.caption_matches(r.captions.back(), sc));
    r.questions.push_back(w.shapes.question(sc, qg));
    prompts.push_back(w.opt->encode(presets::vqa_prompt(r.questions.back().question)));
  }
  // Prompts left-padded, as generation wants them.
  std::size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  std::vector<std::int64_t> ids, mask;
  for (const auto& p : prompts) {
    for (std::size_t k = p.size(); k < longest; ++k) ids.push_back(model.config.opt.pad_token_id), mask.push_back(0);
    for (auto id : p) ids.push_back(id), mask.push_back(1);
  }
  GenerationOptions short_answer = greedy;
  short_answer.max_new_tokens = 3;
  const auto answers = generate_from_image(model, lm_inputs, Ids::from_vector({N, index_t(longest)}, ids),
                                           Ids::from_vector({N, index_t(longest)}, mask), short_answer);
  const auto answer_rows = answers.rows();
  for (index_t i = 0; i < N; ++i) {
    r.answers.push_back(decode_generated(w, answer_rows[std::size_t(i)], answers.prompt_length));
    r.answer_right.push_back(data::answer_matches(r.answers.back(), r.questions[std::size_t(i)].answer));
  }
  // Retrieval with the stage-1 model.
  std::vector<std::vector<std::int64_t>> texts;
  for (const auto& sc : w.heldout) {
    r.texts.push_back(w.shapes.canonical_caption(sc));
    texts.push_back(w.bert->encode(r.texts.back()));
  }
  const auto [tids, tmask] = pad_rows(texts, w.bert_vocab.special.pad, 32);
  const auto image = (*stage1.vision_model->post_layernorm)(features);
  const auto ranking = rank_image_text(stage1, image, tids, tmask, std::min<index_t>(8, N));
  long i2t = 0, t2i = 0;
  for (index_t i = 0; i < N; ++i) {
    r.top_text.push_back(ranking.per_image[std::size_t(i)][0].text);
    const auto top_image = ranking.per_text[std::size_t(i)][0].image;
    i2t += w.shapes.caption_matches(r.texts[std::size_t(r.top_text.back())], w.heldout[std::size_t(i)]);
    t2i += w.shapes.caption_matches(r.texts[std::size_t(i)], w.heldout[std::size_t(top_image)]);
  }
  auto fraction = [N](const std::vector<bool>& v) { return double(std::count(v.begin(), v.end(), true)) / double(N); };
  r.caption_accuracy = fraction(r.caption_right);
  r.vqa_accuracy = fraction(r.answer_right);
  r.r1_i2t = double(i2t) / double(N);
  r.r1_t2i = double(t2i) / double(N);
  return r;
}

}  // namespace bootstrap
