#pragma once
// Image-text retrieval evaluated as LAVIS's RetrievalTask evaluates a stage-1 model
// (lavis/tasks/retrieval.py, compute_sim_matrix in lavis/models/blip2_models/blip2.py): the image
// encoder's features of every image of the split, every caption cleaned by the evaluation text
// processor (pre_caption) and tokenized [CLS] text [SEP] within max_txt_len, ITC similarities of all
// pairs, each query's top k_test candidates re-scored by ITM (score = ITM match logit + ITC), every
// other entry -100, and recall@1/5/10 both ways from the two matrices (retrieval_metrics.hpp).
//
// Cost: the features of every image are held at once, and ITM runs k_test x (images + texts)
// times; on a CPU keep the split small (EvalSet's max_images) and k_test modest.
#include "../data/caption_processor.hpp"
#include "../data/eval_set.hpp"
#include "../pipelines/retrieval.hpp"
#include "../tokenizers/batch.hpp"
#include "retrieval_metrics.hpp"

namespace blip2::eval {

struct RetrievalEvalOptions {
  index_t k_test = 128;     // candidates re-scored by ITM per query (LAVIS's k_test)
  index_t batch_size = 16;  // images per image-encoder batch (LAVIS's batch_size_eval)
  long max_txt_len = 35;    // compute_sim_matrix tokenizes with max_length 35
};

// `model`: a Blip2Retrieval or Blip2Stage1; `tokenizer`: its Q-Former WordPiece.
template <class T, class D, class W>
RetrievalRecall evaluate_retrieval(const Blip2Retrieval<T, D, W>& model, const data::EvalSet& set, const tokenizers::Tokenizer& tokenizer,
                                   const RetrievalEvalOptions& o = {}) {
  BLIP2_CHECK(set.size() > 0, ValueError, set.name(), ": no images to evaluate retrieval on");
  BLIP2_CHECK(o.k_test >= 1 && o.batch_size >= 1 && o.max_txt_len >= 2, ValueError,
              "evaluate_retrieval: k_test (", o.k_test, ") and batch_size (", o.batch_size, ") must be >= 1, max_txt_len (",
              o.max_txt_len, ") >= 2");
  NoGrad no_grad;
  const auto& special = tokenizer.special_ids();
  std::vector<std::vector<tokenizers::Id>> rows;
  for (const auto& text : set.texts())
    rows.push_back(tokenizers::framed({special.cls}, tokenizer.encode(data::pre_caption(text), false), {special.sep},
                                      o.max_txt_len));
  const auto [ids, mask] = tokenizers::pad_right(rows, model.config.qformer.pad_token_id);

  std::vector<Tensor<T, D>> parts;
  const int size = model.config.vision.image_size;
  for (std::size_t i = 0; i < set.size(); i += std::size_t(o.batch_size)) {
    const auto pixels = set.pixel_values(i, std::min(set.size(), i + std::size_t(o.batch_size)), size);
    parts.push_back((*model.vision_model)(pixels.template to<D>()).last_hidden_state);
  }
  const auto ranking = rank_image_text(model, concat(parts, 0), ids.template to<D>(), mask.template to<D>(), o.k_test);

  const std::size_t images = set.size(), texts = rows.size();
  std::vector<float> i2t(images * texts, -100.0f), t2i(texts * images, -100.0f);
  for (const auto& matches : ranking.per_image)
    for (const auto& m : matches) i2t[std::size_t(m.image) * texts + std::size_t(m.text)] = m.score;
  for (const auto& matches : ranking.per_text)
    for (const auto& m : matches) t2i[std::size_t(m.text) * images + std::size_t(m.image)] = m.score;
  return retrieval_recall(i2t, t2i, images, texts, set.img2txt(), set.txt2img());
}

// LAVIS's names and scale (percentages), as its evaluate.txt holds them.
inline nlohmann::json to_json(const RetrievalRecall& r) {
  return {{"txt_r1", 100 * r.txt_r1},         {"txt_r5", 100 * r.txt_r5},         {"txt_r10", 100 * r.txt_r10},
          {"txt_r_mean", 100 * r.txt_r_mean}, {"img_r1", 100 * r.img_r1},         {"img_r5", 100 * r.img_r5},
          {"img_r10", 100 * r.img_r10},       {"img_r_mean", 100 * r.img_r_mean}, {"r_mean", 100 * r.r_mean},
          {"agg_metrics", 100 * r.txt_r_mean}};
}

}  // namespace blip2::eval
