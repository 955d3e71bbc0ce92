#pragma once
// BLIP-2's stage-1 pre-training losses on the frozen image encoder, as LAVIS's Blip2Qformer.forward
// computes them (lavis/models/blip2_models/blip2_qformer.py):
//   ITC  image-text contrastive: max over the queries of the cosine similarity of each query's
//        projection with the text's [CLS] projection, divided by the learned temperature (not
//        clamped), cross-entropy with label smoothing 0.1 in both directions, averaged;
//   ITM  image-text matching: one hard negative text per image and one negative image per text,
//        drawn from the softmax of the ITC similarities with the positive excluded; queries and text
//        share bidirectional self-attention; binary head averaged over the queries; cross-entropy;
//   ITG  image-grounded text generation: [DEC] replaces the first text token; the text attends to
//        the query pass's keys/values and causally to itself; label smoothing 0.1, padding ignored.
// ITC's query pass and text pass run separately (the unimodal mask's two halves), and the ITG pass
// reuses the query pass's keys and values, as LAVIS does. Features, texts and image embeddings are
// gathered across ranks through a Communicator (the identity on one process), so ITC scores the
// global batch and ITM draws negatives from it: ITC's features without gradient (LAVIS's
// concat_all_gather: each similarity matrix trains only its local side), ITM's image embeddings
// with gradient (all_gather_with_grad). ITG is rescaled to the mean over the global batch's tokens
// (communicator.hpp global_mean), so that W ranks train exactly as one process with the global batch.
#include <algorithm>
#include <numeric>

#include "../models/blip2_stage1.hpp"
#include "../models/qformer_masks.hpp"
#include "../ops/loss.hpp"
#include "communicator.hpp"

namespace blip2 {

struct Stage1Options {
  bool itc = true, itm = true, itg = true;  // which losses to compute (ITM also needs the ITC similarities)
  double label_smoothing = 0.1;             // of ITC and ITG (LAVIS)
  Generator* generator = nullptr;           // draws the ITM negatives; required unless they are injected
  const Communicator* comm = nullptr;       // nullptr: one process
  // Injected ITM negatives (indices into the global batch, one per local example or one per global
  // example), e.g. to replay a LAVIS run; empty: drawn from `generator` (the same draws for an
  // example at every world size).
  std::vector<std::int64_t> neg_image_idx_per_text, neg_text_idx_per_image;
  // LAVIS's `image_id` (the branch its Q-Former takes when samples carry one, as in COCO retrieval
  // fine-tuning): examples with the same id show the same image, so ITC spreads each row's target
  // over all of them and ITM never draws one as another's negative. One id per example of the global
  // batch (the same list on every rank); empty: every example is its own image.
  std::vector<std::int64_t> image_ids;
};

template <class T, class D = cpu>
struct Stage1Output {
  Tensor<T, D> loss;                             // sum of the losses asked for
  Tensor<T, D> loss_itc, loss_itm, loss_itg;     // scalars; undefined when not asked for
  Tensor<T, D> loss_i2t, loss_t2i;               // ITC's two directions
  Tensor<T, D> image_embeds;                     // [B, S, C] post_layernorm (LAVIS ln_vision) output
  Tensor<T, D> query_output;                     // [B, Q, H] Q-Former on the queries alone
  Tensor<T, D> image_feats;                      // [B, Q, E] normalised vision projections
  Tensor<T, D> text_last_hidden_state;           // [B, L, H] Q-Former on the text alone
  Tensor<T, D> text_feat;                        // [B, E] normalised text projection of [CLS]
  Tensor<T, D> sim_i2t, sim_t2i;                 // [B, global B], divided by the temperature
  Tensor<T, D> weights_t2i, weights_i2t;         // [B, global B] negative sampling distributions
  std::vector<std::int64_t> neg_image_idx_per_text, neg_text_idx_per_image;
  Tensor<T, D> itm_logits;                       // [3B, 2]: positives, negative images, negative texts
  Tensor<std::int64_t, D> itm_labels;            // [3B]
  Tensor<std::int64_t, D> itg_decoder_input_ids, itg_labels;  // [B, L]
  Tensor<T, D> itg_logits;                       // [B, L, vocab]
};

namespace detail {
// Whether global examples i and j show the same image: the same index, or equal image_ids.
inline bool same_image(const std::vector<std::int64_t>& image_ids, index_t i, index_t j) {
  return i == j || (!image_ids.empty() && image_ids[std::size_t(i)] == image_ids[std::size_t(j)]);
}

// Whether two examples share an image id (distinct ids train exactly as no ids).
inline bool shares_an_image(std::vector<std::int64_t> image_ids) {
  std::sort(image_ids.begin(), image_ids.end());
  return std::adjacent_find(image_ids.begin(), image_ids.end()) != image_ids.end();
}

// Rows of softmax(sim) with each row's positives (column first + row, and columns of the same
// image id) set to -10000 first.
template <class T, class D>
Tensor<T, D> negative_weights(const Tensor<T, D>& sim, index_t first, const std::vector<std::int64_t>& image_ids) {
  std::vector<T> v = sim.detach().template to<cpu>().to_vector();
  const index_t rows = sim.size(0), cols = sim.size(1);
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c)
      if (same_image(image_ids, first + r, c)) v[std::size_t(r * cols + c)] = T(-10000);
  NoGrad no_grad;
  return softmax(Tensor<T, cpu>::from_vector(sim.shape(), v)).template to<D>();
}

// One draw per row of `weights` (torch.multinomial(row, 1)), by inverse CDF from `gen`. The rows
// are rows [first, first + rows) of the global batch of `global_rows`; a block of global_rows
// counters is reserved in `gen` and global row i takes counter i, so every world size draws the
// same negative for the same example.
template <class T, class D>
std::vector<std::int64_t> draw_rows(const Tensor<T, D>& weights, Generator& gen, index_t first, index_t global_rows) {
  const auto w = weights.template to<cpu>().to_vector();
  const index_t rows = weights.size(0), cols = weights.size(1);
  const std::uint64_t block = gen.next_block(std::uint64_t(global_rows));
  std::vector<std::int64_t> out;
  for (index_t r = 0; r < rows; ++r) {
    const T* row = w.data() + r * cols;
    const double total = std::accumulate(row, row + cols, 0.0),
                 u = Generator::uniform(gen.seed(), block + std::uint64_t(first + r)) * total;
    double run = 0;
    index_t pick = -1;
    for (index_t c = 0; c < cols; ++c) {
      if (row[c] <= 0) continue;
      pick = c;  // the last positive column, should rounding leave u past the total
      run += double(row[c]);
      if (u < run) break;
    }
    out.push_back(pick);
  }
  return out;
}

// Injected negatives for this rank: one per local example, or one per example of the global batch
// (the same lists on every rank, whatever the world size), of which this rank takes its rows.
inline std::vector<std::int64_t> local_negatives(const std::vector<std::int64_t>& idx, index_t local, index_t global,
                                                 index_t first, const char* name) {
  BLIP2_CHECK(index_t(idx.size()) == local || index_t(idx.size()) == global, ShapeError, "stage 1: ", name, " holds ",
              idx.size(), " indices: expected one per local example (", local, ") or per global example (", global, ")");
  if (index_t(idx.size()) == local) return idx;
  return {idx.begin() + first, idx.begin() + first + local};
}

inline void check_negatives(const std::vector<std::int64_t>& idx, index_t local, index_t global, index_t first,
                            const char* name) {
  BLIP2_CHECK(index_t(idx.size()) == local, ShapeError, "stage 1: ", name, " holds ", idx.size(), " indices for a batch of ",
              local);
  for (index_t b = 0; b < local; ++b) {
    const std::int64_t i = idx[std::size_t(b)];
    BLIP2_CHECK(i >= 0 && i < global, ValueError, "stage 1: ", name, "[", b, "] = ", i, " is outside the global batch [0, ",
                global, ")");
    BLIP2_CHECK(i != first + b, ValueError, "stage 1: ", name, "[", b, "] = ", i, " is the example's own positive");
  }
}
}  // namespace detail

// The stage-1 losses from image features before post_layernorm (the frozen encoder's blocks'
// output, VisionModel::encode) [B, S, C], input_ids and attention_mask [B, L] (every row starting
// with [CLS], right-padded).
template <class T, class D, class W>
Stage1Output<T, D> stage1_losses_from_features(const Blip2Stage1<T, D, W>& model, const Tensor<T, D>& vit_features,
                                               const Tensor<std::int64_t, D>& input_ids,
                                               const Tensor<std::int64_t, D>& attention_mask, const Stage1Options& opt = {}) {
  const SingleProcess one;
  const Communicator& comm = opt.comm ? *opt.comm : one;
  BLIP2_CHECK(opt.itc || opt.itm || opt.itg, ValueError, "stage 1: no loss asked for (itc, itm and itg are all off)");
  BLIP2_CHECK(input_ids.dim() == 2 && attention_mask.shape() == input_ids.shape(), ShapeError, "stage 1: input_ids ",
              to_string(input_ids.shape()), " and attention_mask ", to_string(attention_mask.shape()),
              " must be the same [batch, length]");
  BLIP2_CHECK(vit_features.dim() == 3 && vit_features.size(0) == input_ids.size(0), ShapeError, "stage 1: ",
              vit_features.dim() == 3 ? vit_features.size(0) : 0, " images (features ", to_string(vit_features.shape()),
              ") for ", input_ids.size(0), " texts");
  const auto& cfg = model.config;
  const index_t B = input_ids.size(0), Q = model.query_tokens.size(1), GB = B * comm.world_size(), first = B * comm.rank();
  BLIP2_CHECK(!(opt.itc || opt.itm) || GB >= 2, ValueError, "stage 1: ITC and ITM need at least two image-text pairs in ",
              "the batch (a batch of one has no negatives)");
  BLIP2_CHECK(opt.image_ids.empty() || index_t(opt.image_ids.size()) == GB, ShapeError, "stage 1: image_ids holds ",
              opt.image_ids.size(), " ids: expected one per example of the global batch (", GB, ")");
  BLIP2_CHECK(!opt.itg || model.has_itg_head(), ValueError,
              "stage 1: ITG asked for, but the model has no ITG head (cls.predictions.*: a retrieval checkpoint "
              "such as blip2-itm-vit-g lacks it)");
  BLIP2_CHECK(!opt.itg || input_ids.size(1) >= 2, ShapeError, "stage 1: ITG needs texts of at least two tokens, got ",
              to_string(input_ids.shape()));

  Stage1Output<T, D> out;
  out.image_embeds = (*model.vision_model->post_layernorm)(vit_features);

  // The query pass: queries alone, cross-attending to the image; its keys/values feed ITG.
  std::vector<AttentionKV<T, D>> query_kv;
  {
    typename QFormerModel<T, D>::Pass pass;
    if (opt.itg) pass.present = &query_kv;
    const auto queries = model.query_tokens.expand({B, Q, model.query_tokens.size(2)});
    out.query_output = model.qformer->forward(queries, out.image_embeds, Q, pass);
  }
  Tensor<T, D> total;
  auto add_loss = [&total](const Tensor<T, D>& l) { total = total.defined() ? total + l : l; };

  if (opt.itc || opt.itm) {
    out.image_feats = l2_normalize((*model.vision_projection)(out.query_output));
    out.text_last_hidden_state = (*model.qformer)(model.embed_text(input_ids), attention_mask, Tensor<T, D>(), 0);
    out.text_feat = l2_normalize((*model.text_projection)(out.text_last_hidden_state.slice(1, 0, 1).squeeze(1)));
    // LAVIS gathers the other side of each similarity without gradient (concat_all_gather), also on
    // one process: sim_i2t trains the image side only, sim_t2i the text side only.
    const Tensor<T, D> image_feats_all = all_gather(out.image_feats, comm);  // [GB, Q, E]
    const Tensor<T, D> text_feat_all = all_gather(out.text_feat, comm);      // [GB, E]
    const index_t E = out.text_feat.size(1);
    // sim_i2t[i, j] = max_q image_feats[i, q] . text_feat_all[j]; sim_t2i[t, i] = max_q text_feat[t] . image_feats_all[i, q]
    out.sim_i2t = max(matmul(out.image_feats, text_feat_all.transpose(0, 1)), {1}) / model.temp;
    const Tensor<T, D> t2q = matmul(image_feats_all.reshape({GB * Q, E}), out.text_feat.transpose(0, 1));  // [GB*Q, B]
    out.sim_t2i = max(t2q.reshape({GB, Q, B}), {1}).transpose(0, 1) / model.temp;
    if (opt.itc) {
      if (detail::shares_an_image(opt.image_ids)) {
        // LAVIS: targets = 0.1 / GB + 0.9 * (same image) / (its count), against log_softmax.
        std::vector<T> targets;
        std::vector<double> same(static_cast<std::size_t>(GB));
        for (index_t b = 0; b < B; ++b) {
          for (index_t j = 0; j < GB; ++j) same[std::size_t(j)] = detail::same_image(opt.image_ids, first + b, j);
          const double count = std::accumulate(same.begin(), same.end(), 0.0);
          for (double x : same)
            targets.push_back(T(opt.label_smoothing / double(GB) + (1 - opt.label_smoothing) * x / count));
        }
        const auto tgt = Tensor<T, D>::from_vector({B, GB}, targets);
        out.loss_i2t = -sum(log_softmax(out.sim_i2t) * tgt) / T(B);
        out.loss_t2i = -sum(log_softmax(out.sim_t2i) * tgt) / T(B);
      } else {  // one image per example: one-hot targets
        std::vector<std::int64_t> targets(static_cast<std::size_t>(B));
        std::iota(targets.begin(), targets.end(), first);
        const auto tgt = Tensor<std::int64_t, D>::from_vector({B}, targets);
        const CrossEntropyOptions smooth{-100, opt.label_smoothing};
        out.loss_i2t = cross_entropy(out.sim_i2t, tgt, smooth);
        out.loss_t2i = cross_entropy(out.sim_t2i, tgt, smooth);
      }
      out.loss_itc = (out.loss_i2t + out.loss_t2i) * T(0.5);
      add_loss(out.loss_itc);
    }
  }

  if (opt.itm) {
    out.weights_t2i = detail::negative_weights(out.sim_t2i, first, opt.image_ids);
    out.weights_i2t = detail::negative_weights(out.sim_i2t, first, opt.image_ids);
    if (!opt.neg_image_idx_per_text.empty() || !opt.neg_text_idx_per_image.empty()) {
      out.neg_image_idx_per_text =
          detail::local_negatives(opt.neg_image_idx_per_text, B, GB, first, "neg_image_idx_per_text");
      out.neg_text_idx_per_image =
          detail::local_negatives(opt.neg_text_idx_per_image, B, GB, first, "neg_text_idx_per_image");
    } else {
      BLIP2_CHECK(opt.generator, ValueError, "stage 1: ITM needs Stage1Options::generator to draw its negatives "
                  "(or injected neg_image_idx_per_text / neg_text_idx_per_image)");
      out.neg_image_idx_per_text = detail::draw_rows(out.weights_t2i, *opt.generator, first, GB);  // LAVIS: images first
      out.neg_text_idx_per_image = detail::draw_rows(out.weights_i2t, *opt.generator, first, GB);
    }
    detail::check_negatives(out.neg_image_idx_per_text, B, GB, first, "neg_image_idx_per_text");
    detail::check_negatives(out.neg_text_idx_per_image, B, GB, first, "neg_text_idx_per_image");
    const auto neg_images = Tensor<std::int64_t, D>::from_vector({B}, out.neg_image_idx_per_text);
    const auto neg_texts = Tensor<std::int64_t, D>::from_vector({B}, out.neg_text_idx_per_image);
    const Tensor<T, D> image_all = all_gather_with_grad(out.image_embeds, comm);
    const Tensor<std::int64_t, D> ids_all = all_gather(input_ids, comm), mask_all = all_gather(attention_mask, comm);
    const auto ids = concat<std::int64_t, D>({input_ids, input_ids, index_select(ids_all, 0, neg_texts)}, 0);
    const auto mask = concat<std::int64_t, D>({attention_mask, attention_mask, index_select(mask_all, 0, neg_texts)}, 0);
    const auto images = concat<T, D>({out.image_embeds, index_select(image_all, 0, neg_images), out.image_embeds}, 0);
    out.itm_logits = model.itm_from_features(images, ids, mask);  // queries and text, bidirectional
    std::vector<std::int64_t> labels(std::size_t(3 * B), 0);
    std::fill(labels.begin(), labels.begin() + B, 1);
    out.itm_labels = Tensor<std::int64_t, D>::from_vector({3 * B}, labels);
    out.loss_itm = cross_entropy(out.itm_logits, out.itm_labels);
    add_loss(out.loss_itm);
  }

  if (opt.itg) {
    const index_t L = input_ids.size(1);
    auto ids = input_ids.template to<cpu>().to_vector();
    std::vector<std::int64_t> labels(ids.size());
    for (index_t b = 0; b < B; ++b) ids[std::size_t(b * L)] = model.decoder_bos_id();
    for (std::size_t i = 0; i < ids.size(); ++i) labels[i] = ids[i] == cfg.qformer.pad_token_id ? -100 : ids[i];
    out.itg_decoder_input_ids = Tensor<std::int64_t, D>::from_vector({B, L}, ids);
    out.itg_labels = Tensor<std::int64_t, D>::from_vector({B, L}, labels);
    typename QFormerModel<T, D>::Pass pass;
    pass.mask = qformer_attention_mask<T, D>(QFormerMask::multimodal_causal, Q, attention_mask, true);
    pass.past = &query_kv;
    const auto h = model.qformer->forward(model.embed_text(out.itg_decoder_input_ids), Tensor<T, D>(), 0, pass);
    out.itg_logits = model.itg_logits(h);
    // The mean over the global batch's scored tokens (LAVIS averages each rank's own tokens).
    double scored = 0;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 1; t < L; ++t) scored += labels[std::size_t(b * L + t)] != -100;
    out.loss_itg = global_mean(cross_entropy(out.itg_logits.slice(1, 0, L - 1), out.itg_labels.slice(1, 1, L).contiguous(),
                                             {-100, opt.label_smoothing}),
                               scored, comm);
    add_loss(out.loss_itg);
  }
  out.loss = total;
  return out;
}

// The same from pixels [B, 3, H, W]: the image encoder runs first (frozen, it records no graph).
template <class T, class D, class W>
Stage1Output<T, D> stage1_losses(const Blip2Stage1<T, D, W>& model, const Tensor<T, D>& pixels,
                                 const Tensor<std::int64_t, D>& input_ids, const Tensor<std::int64_t, D>& attention_mask,
                                 const Stage1Options& opt = {}) {
  return stage1_losses_from_features(model, model.vision_model->encode(pixels), input_ids, attention_mask, opt);
}

}  // namespace blip2
