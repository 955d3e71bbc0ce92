#pragma once
// Image-text retrieval with a BLIP-2 stage-1 checkpoint (blip2-itm-vit-g layout), the way LAVIS
// evaluates it (lavis/models/blip2_models/blip2.py, compute_sim_matrix): ITC similarities for all
// pairs (max over the queries of the cosine), then for each image its top-k texts and for each text
// its top-k images re-scored by ITM; a pair's final score is its ITM "match" logit plus its ITC
// similarity.
//
//   blip2::ImageTextRetrieval<> r("blip2-itm-vit-g");
//   auto ranking = r.rank({"a.jpg", "b.jpg"}, {"a dog on a beach", "two cats"}, 5);
//   ranking.per_image[0][0].text   // the best text for a.jpg
#include <algorithm>
#include <numeric>

#include "model_dir.hpp"
#include "processor.hpp"

namespace blip2 {

struct RetrievalMatch {
  index_t image = 0, text = 0;
  float itc = 0;    // cosine similarity, max over the queries
  float itm = 0;    // ITM logit of "match"
  float score = 0;  // itm + itc, what the ranking sorts by
};

struct RetrievalRanking {
  Tensor<float> itc;                                   // [images, texts]
  std::vector<std::vector<RetrievalMatch>> per_image;  // for each image its top-k texts, best first
  std::vector<std::vector<RetrievalMatch>> per_text;   // for each text its top-k images, best first
};

// LAVIS's retrieval ranking (compute_sim_matrix): the ITC similarity of every image with every text,
// then each query's top k candidates by ITC re-scored by ITM (score = ITM match logit + ITC
// similarity), best first. features: image features after post_layernorm [I, S, C] (vision
// last_hidden_state); ids and mask [T, L], right-padded.
template <class Model, class D>
RetrievalRanking rank_image_text(const Model& m, const Tensor<float, D>& features, const Tensor<std::int64_t, D>& ids,
                                 const Tensor<std::int64_t, D>& mask, index_t k) {
  NoGrad no_grad;
  const auto c = Model::similarity(m.image_embeddings_from_features(features), m.text_embeddings(ids, mask));

  RetrievalRanking r;
  r.itc = c.logits_per_image.template to<cpu>().contiguous();
  const index_t I = r.itc.size(0), T = r.itc.size(1);
  const auto sims = r.itc.to_vector();
  // ITM logits of (image, text) pairs, in one batch.
  auto itm = [&](const std::vector<std::int64_t>& images, const std::vector<std::int64_t>& text_rows) {
    const index_t n = index_t(images.size());
    const auto pick = [](const auto& t, const std::vector<std::int64_t>& rows) {
      return index_select(t, 0, Tensor<std::int64_t, D>::from_vector({index_t(rows.size())}, rows));
    };
    const auto logits = m.itm_from_features(pick(features, images), pick(ids, text_rows), pick(mask, text_rows));
    const auto v = logits.template to<cpu>().contiguous().to_vector();
    std::vector<float> match_logits(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) match_logits[std::size_t(i)] = v[std::size_t(2 * i + 1)];
    return match_logits;
  };
  // Top-k of `count` candidates by ITC, re-scored by ITM, best first.
  auto top = [&](index_t query, index_t count, auto sim_of, auto pair_of) {
    std::vector<index_t> order(static_cast<std::size_t>(count));
    std::iota(order.begin(), order.end(), index_t(0));
    const index_t kk = std::min(k, count);
    std::partial_sort(order.begin(), order.begin() + kk, order.end(),
                      [&](index_t a, index_t b) { return sim_of(a) > sim_of(b); });
    std::vector<std::int64_t> images, text_rows;
    std::vector<RetrievalMatch> out;
    for (index_t j = 0; j < kk; ++j) {
      RetrievalMatch x = pair_of(query, order[std::size_t(j)]);
      x.itc = sims[std::size_t(x.image * T + x.text)];
      images.push_back(x.image);
      text_rows.push_back(x.text);
      out.push_back(x);
    }
    const auto match_logits = itm(images, text_rows);
    for (std::size_t j = 0; j < out.size(); ++j) {
      out[j].itm = match_logits[j];
      out[j].score = out[j].itm + out[j].itc;
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    return out;
  };
  for (index_t i = 0; i < I; ++i)
    r.per_image.push_back(top(
        i, T, [&](index_t t) { return sims[std::size_t(i * T + t)]; },
        [](index_t q, index_t t) { return RetrievalMatch{q, t}; }));
  for (index_t t = 0; t < T; ++t)
    r.per_text.push_back(top(
        t, I, [&](index_t i) { return sims[std::size_t(i * T + t)]; },
        [](index_t q, index_t i) { return RetrievalMatch{i, q}; }));
  return r;
}

template <class D = cpu, class W = float>
class ImageTextRetrieval {
 public:
  using Model = Blip2Retrieval<float, D, W>;

  explicit ImageTextRetrieval(const std::string& dir) : config_(load_config(dir)), processor_(dir, check(dir, config_)) {
    model_ = load_model<Model>(dir, config_);
  }

  const Blip2Processor& processor() const { return processor_; }
  const Model& model() const { return *model_; }

  RetrievalRanking rank(const std::vector<std::string>& image_paths, const std::vector<std::string>& texts, index_t k) const {
    return rank(processor_.pixel_values(image_paths), texts, k);
  }

  // pixel_values [I, 3, H, W] against `texts`; k: how many candidates ITM re-scores per query.
  RetrievalRanking rank(const Tensor<float>& pixel_values, const std::vector<std::string>& texts, index_t k) const {
    BLIP2_CHECK(k >= 1, ValueError, "retrieve: top-k must be >= 1, got ", k);
    for (std::size_t t = 0; t < texts.size(); ++t)
      BLIP2_CHECK(texts[t].find_first_not_of(" \t\n\r") != std::string::npos, ValueError, "retrieve: text ", t, " is empty");
    NoGrad no_grad;
    const Model& m = *model_;
    const auto batch = processor_.encode(texts, config_.qformer.pad_token_id, Blip2Processor::Padding::Right);
    const Tensor<std::int64_t, D> ids = batch.input_ids.template to<D>(), mask = batch.attention_mask.template to<D>();
    const Tensor<float, D> features = (*m.vision_model)(pixel_values.to<D>()).last_hidden_state;
    return rank_image_text(m, features, ids, mask, k);
  }

 private:
  static const Blip2Config& check(const std::string& dir, const Blip2Config& c) {
    BLIP2_CHECK(c.is_retrieval(), ValueError, dir, ": not an image-text retrieval model (config.json names a ",
                c.text_model_type, " language model); retrieval needs a blip2-itm-vit-g style checkpoint");
    return c;
  }

  Blip2Config config_;
  Blip2Processor processor_;
  std::unique_ptr<Model> model_;
};

}  // namespace blip2
