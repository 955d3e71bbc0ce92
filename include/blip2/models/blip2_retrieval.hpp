#pragma once
// Blip2ForImageTextRetrieval, the stage-1 model (blip2-itm-vit-g): the Q-Former also reads text
// (word + learned position embeddings). Image-text matching (ITM): queries and text share
// self-attention, the binary head is averaged over the query outputs. Image-text contrastive
// (ITC): L2-normalised projections of the query outputs and of the text's [CLS] output; the
// similarity of an image and a text is the maximum over the queries.
#include "../ops/norm.hpp"
#include "blip2_backbone.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct Blip2Retrieval : Blip2Backbone<T, D, W> {
  struct Contrastive {
    Tensor<T, D> logits_per_image;  // [images, texts]
    Tensor<T, D> logits_per_text;   // [texts, images]
    Tensor<T, D> text_embeds;       // [texts, D], normalised
    Tensor<T, D> image_embeds;      // [images, Q, D], normalised
  };

  explicit Blip2Retrieval(const Blip2Config& c) : Blip2Backbone<T, D, W>(c), text_padding_idx(c.qformer.pad_token_id) {
    BLIP2_CHECK(c.qformer.use_qformer_text_input, ValueError,
                "Blip2Retrieval: the config's qformer_config must have use_qformer_text_input true");
    const index_t h = c.qformer.hidden_size;
    auto emb = this->register_module("embeddings", std::make_shared<nn::Module<T, D>>());
    word_embeddings = emb->register_module("word_embeddings", std::make_shared<nn::Module<T, D>>())
                          ->register_parameter("weight", Tensor<T, D>::empty({c.qformer.vocab_size, h}));
    position_embeddings = emb->register_module("position_embeddings", std::make_shared<nn::Module<T, D>>())
                              ->register_parameter("weight", Tensor<T, D>::empty({c.qformer.max_position_embeddings, h}));
    vision_projection = this->register_module("vision_projection", std::make_shared<nn::Linear<T, D>>(h, c.image_text_hidden_size));
    text_projection = this->register_module("text_projection", std::make_shared<nn::Linear<T, D>>(h, c.image_text_hidden_size));
    itm_head = this->register_module("itm_head", std::make_shared<nn::Linear<T, D>>(h, 2));
  }

  // Q-Former text embeddings: ids [B, L] -> [B, L, hidden] (word + absolute position).
  Tensor<T, D> embed_text(const Tensor<std::int64_t, D>& ids) const {
    BLIP2_CHECK(ids.dim() == 2 && ids.size(1) <= position_embeddings.size(0), ShapeError, "Q-Former text: input_ids ",
                to_string(ids.shape()), " must be [B, L] with L <= ", position_embeddings.size(0));
    const auto positions = arange<std::int64_t, D>(ids.size(1));
    return embedding(word_embeddings, ids, text_padding_idx) + embedding(position_embeddings, positions);
  }

  // ITM logits [B, 2] of image i with text i (pixels [B, 3, H, W], ids and mask [B, L]).
  Tensor<T, D> itm(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& ids, const Tensor<std::int64_t, D>& mask) const {
    const auto image = (*this->vision_model)(pixels).last_hidden_state;
    return itm_from_features(image, ids, mask);
  }

  // ITM from precomputed image features [B, S, vision hidden] (re-ranking reuses them).
  Tensor<T, D> itm_from_features(const Tensor<T, D>& image, const Tensor<std::int64_t, D>& ids,
                                 const Tensor<std::int64_t, D>& mask) const {
    const index_t B = ids.size(0), Q = this->query_tokens.size(1);
    BLIP2_CHECK(image.size(0) == B, ShapeError, "ITM: ", image.size(0), " images for ", B, " texts");
    const auto queries = this->query_tokens.expand({B, Q, this->query_tokens.size(2)});
    const auto embeds = concat<T, D>({queries, embed_text(ids)}, 1);
    const Tensor<std::int64_t, D> text_mask = mask.defined() ? mask : Tensor<std::int64_t, D>::ones(ids.shape());
    const auto full_mask = concat<std::int64_t, D>({Tensor<std::int64_t, D>::ones({B, Q}), text_mask}, 1);
    const auto out = (*this->qformer)(embeds, full_mask, image, Q);
    return mean((*itm_head)(out.slice(1, 0, Q)), {1});
  }

  // Normalised image embeddings [B, Q, D] from pixels.
  Tensor<T, D> image_embeddings(const Tensor<T, D>& pixels) const {
    return image_embeddings_from_features((*this->vision_model)(pixels).last_hidden_state);
  }
  // The same from precomputed image features [B, S, vision hidden] (retrieval reuses them for ITM).
  Tensor<T, D> image_embeddings_from_features(const Tensor<T, D>& image) const {
    return l2_normalize((*vision_projection)(this->query_features(image)));
  }
  // Normalised text embeddings [B, D] from the [CLS] (first) position.
  Tensor<T, D> text_embeddings(const Tensor<std::int64_t, D>& ids, const Tensor<std::int64_t, D>& mask) const {
    const auto out = (*this->qformer)(embed_text(ids), mask, Tensor<T, D>(), 0);
    return l2_normalize((*text_projection)(out.slice(1, 0, 1).squeeze(1)));
  }
  // ITC similarities of every image with every text: max over queries of the cosine.
  static Contrastive similarity(const Tensor<T, D>& image_embeds, const Tensor<T, D>& text_embeds) {
    Contrastive c;
    c.image_embeds = image_embeds;
    c.text_embeds = text_embeds;
    c.logits_per_image = max(matmul(image_embeds, text_embeds.transpose(0, 1)), {1});  // [Bi, Q, Bt] -> [Bi, Bt]
    c.logits_per_text = c.logits_per_image.transpose(0, 1).contiguous();
    return c;
  }
  Contrastive itc(const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& ids, const Tensor<std::int64_t, D>& mask) const {
    return similarity(image_embeddings(pixels), text_embeddings(ids, mask));
  }

  Tensor<T, D> word_embeddings, position_embeddings;
  // Lookups of this id send no gradient to word_embeddings (transformers' padding_idx; -1: none).
  std::int64_t text_padding_idx;
  std::shared_ptr<nn::Linear<T, D>> vision_projection, text_projection, itm_head;
};

}  // namespace blip2
