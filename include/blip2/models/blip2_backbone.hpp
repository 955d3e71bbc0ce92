#pragma once
// What every BLIP-2 model shares: the frozen image encoder, the learned query tokens and the
// Q-Former that reads the image through them (checkpoint names "vision_model.*", "query_tokens",
// "qformer.*").
#include "qformer.hpp"
#include "vision.hpp"

namespace blip2 {

template <class T, class D = cpu, class W = T>
struct Blip2Backbone : nn::Module<T, D> {
  struct ImageQueries {
    typename VisionModel<T, D, W>::Output vision;
    Tensor<T, D> queries;  // Q-Former output for the query tokens [B, Q, qformer hidden]
  };

  explicit Blip2Backbone(const Blip2Config& c) : config(c) {
    vision_model = this->register_module("vision_model", std::make_shared<VisionModel<T, D, W>>(c.vision));
    query_tokens = this->register_parameter("query_tokens", Tensor<T, D>::empty({1, c.num_query_tokens, c.qformer.hidden_size}));
    qformer = this->register_module("qformer", std::make_shared<QFormerModel<T, D>>(c.qformer));
  }

  // Runs the image encoder and the Q-Former's queries over pixels [B, 3, H, W].
  ImageQueries query_image(const Tensor<T, D>& pixels) const {
    ImageQueries out;
    out.vision = (*vision_model)(pixels);
    out.queries = query_features(out.vision.last_hidden_state);
    return out;
  }

  // The Q-Former's query outputs [B, Q, qformer hidden] over image features [B, S, vision hidden].
  Tensor<T, D> query_features(const Tensor<T, D>& image) const {
    const index_t B = image.size(0);
    const Tensor<T, D> queries = query_tokens.expand({B, query_tokens.size(1), query_tokens.size(2)});
    return (*qformer)(queries, Tensor<std::int64_t, D>(), image, query_tokens.size(1));
  }

  Blip2Config config;
  std::shared_ptr<VisionModel<T, D, W>> vision_model;
  Tensor<T, D> query_tokens;
  std::shared_ptr<QFormerModel<T, D>> qformer;
};

}  // namespace blip2
