#pragma once
// Zero-shot evaluation on held-out images (scene indices no stage saw):
//  - captioning: greedy generation from the image alone; right when the caption names every
//    object with its size, colour and shape and, for two objects, their relation (any wording);
//  - retrieval: every held-out image against every held-out canonical caption, ITC similarities
//    re-ranked by ITM over the top k as LAVIS does (score = ITM match logit + ITC similarity); a
//    retrieved caption is right when it describes the image (several scenes can share a caption);
//  - VQA: "Question: {} Answer:" prompts, greedy, right when the answer is the one word expected.
#include "stages.hpp"

namespace bootstrap {

struct HeldOutResult {
  std::vector<std::string> captions;               // generated, per image
  std::vector<bool> caption_right;
  std::vector<data::QA> questions;                 // one per image
  std::vector<std::string> answers;                // generated
  std::vector<bool> answer_right;
  std::vector<std::int64_t> top_text, top_image;  // retrieval: best caption per image, best image per caption
  std::vector<std::string> texts;                  // the canonical captions retrieved among
  double caption_accuracy = 0, vqa_accuracy = 0, r1_i2t = 0, r1_t2i = 0;
};

inline std::string decode_generated(const World& w, const GenerateOutput& out, index_t row) {
  const auto seq = out.sequences.to_vector();
  const index_t L = out.sequences.size(1);
  std::vector<std::int64_t> ids;
  for (index_t t = out.prompt_length; t < L; ++t) {
    const std::int64_t id = seq[std::size_t(row * L + t)];
    if (id == w.newline_id || id == w.opt_vocab.special.pad || id == w.opt_vocab.special.eos) break;
    ids.push_back(id);
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
  Generator qg(s.seed + 17);
  std::vector<std::vector<std::int64_t>> prompts;
  for (index_t i = 0; i < N; ++i) {
    const auto& sc = w.heldout[std::size_t(i)];
    r.captions.push_back(decode_generated(w, captions, i));
    r.caption_right.push_back(w.shapes.caption_matches(r.captions.back(), sc));
    r.questions.push_back(w.shapes.question(sc, qg));
    prompts.push_back(w.opt->encode("Question: " + r.questions.back().question + " Answer:"));
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
  for (index_t i = 0; i < N; ++i) {
    r.answers.push_back(decode_generated(w, answers, i));
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
  const auto sim = Blip2Stage1<float>::similarity(stage1.image_embeddings_from_features(image),
                                                  stage1.text_embeddings(tids, tmask)).logits_per_image.to_vector();
  const index_t k = std::min<index_t>(8, N);
  auto rerank = [&](index_t query, bool image_query) {
    std::vector<std::pair<float, index_t>> cand;
    for (index_t j = 0; j < N; ++j) cand.push_back({image_query ? sim[std::size_t(query * N + j)] : sim[std::size_t(j * N + query)], j});
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), [](auto a, auto b) { return a.first > b.first; });
    std::vector<std::int64_t> imgs, txts;
    for (index_t c = 0; c < k; ++c) {
      imgs.push_back(image_query ? query : cand[std::size_t(c)].second);
      txts.push_back(image_query ? cand[std::size_t(c)].second : query);
    }
    const auto itm = stage1.itm_from_features(index_select(image, 0, index_tensor(imgs)), index_select(tids, 0, index_tensor(txts)),
                                              index_select(tmask, 0, index_tensor(txts)))
                         .to_vector();
    index_t best = 0;
    for (index_t c = 1; c < k; ++c)
      if (itm[std::size_t(2 * c + 1)] + cand[std::size_t(c)].first > itm[std::size_t(2 * best + 1)] + cand[std::size_t(best)].first)
        best = c;
    return cand[std::size_t(best)].second;
  };
  long i2t = 0, t2i = 0;
  for (index_t i = 0; i < N; ++i) {
    r.top_text.push_back(rerank(i, true));
    r.top_image.push_back(rerank(i, false));
    i2t += w.shapes.caption_matches(r.texts[std::size_t(r.top_text.back())], w.heldout[std::size_t(i)]);
    t2i += w.shapes.caption_matches(r.texts[std::size_t(i)], w.heldout[std::size_t(r.top_image.back())]);
  }
  auto fraction = [N](const std::vector<bool>& v) { return double(std::count(v.begin(), v.end(), true)) / double(N); };
  r.caption_accuracy = fraction(r.caption_right);
  r.vqa_accuracy = fraction(r.answer_right);
  r.r1_i2t = double(i2t) / double(N);
  r.r1_t2i = double(t2i) / double(N);
  return r;
}

}  // namespace bootstrap
