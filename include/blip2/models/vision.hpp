#pragma once
// The BLIP-2 image encoder (EVA-CLIP ViT-g/14 in the real checkpoints; transformers'
// Blip2VisionModel): patch embedding, class token, learned positions, pre-LN blocks with a fused
// qkv projection, GELU MLP, post_layernorm. Names follow the checkpoint ("embeddings.*",
// "encoder.layers.N.*", "post_layernorm.*").
#include "../nn/activation.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "../ops/attention.hpp"
#include "../ops/patch_embed.hpp"
#include "config.hpp"

namespace blip2 {

template <class T, class D = cpu>
struct VisionEmbeddings : nn::Module<T, D> {
  explicit VisionEmbeddings(const VisionConfig& c) : patch(c.patch_size) {
    const index_t h = c.hidden_size, n = index_t(c.image_size / c.patch_size) * (c.image_size / c.patch_size);
    class_embedding = this->register_parameter("class_embedding", Tensor<T, D>::empty({1, 1, h}));
    patch_embedding = this->register_module("patch_embedding", std::make_shared<nn::Module<T, D>>());
    patch_weight = patch_embedding->register_parameter("weight", Tensor<T, D>::empty({h, 3, patch, patch}));
    patch_bias = patch_embedding->register_parameter("bias", Tensor<T, D>::empty({h}));
    position_embedding = this->register_parameter("position_embedding", Tensor<T, D>::empty({1, n + 1, h}));
  }

  // pixels [B, 3, H, W] -> [B, 1 + patches, hidden]. Images of another size than the config's need
  // `interpolate_pos_encoding` (bicubic resampling of the position grid, as transformers does).
  Tensor<T, D> operator()(const Tensor<T, D>& pixels, bool interpolate_pos_encoding = false) const {
    const Tensor<T, D> patches = patch_embed(pixels, patch_weight, patch_bias);
    const index_t B = patches.size(0), h = patches.size(2);
    const Tensor<T, D> tokens = concat<T, D>({class_embedding.expand({B, 1, h}), patches}, 1);
    const index_t rows = pixels.size(2) / patch, cols = pixels.size(3) / patch;
    if (tokens.size(1) == position_embedding.size(1) && rows == cols) return tokens + position_embedding;
    BLIP2_CHECK(interpolate_pos_encoding, ShapeError, "vision embeddings: ", tokens.size(1) - 1, " patches from pixels ",
                to_string(pixels.shape()), " but the position table holds ", position_embedding.size(1) - 1,
                " (image_size / patch_size squared); pass interpolate_pos_encoding to resample it");
    return tokens + interpolated_positions(rows, cols);
  }

  // The position table resampled to a rows x cols patch grid (the class position unchanged):
  // torch.nn.functional.interpolate(mode="bicubic", align_corners=False) on the square grid.
  Tensor<T, D> interpolated_positions(index_t rows, index_t cols) const {
    const index_t n = position_embedding.size(1) - 1, h = position_embedding.size(2);
    index_t side = 0;
    while ((side + 1) * (side + 1) <= n) ++side;
    BLIP2_CHECK(side * side == n, ShapeError, "vision embeddings: ", n, " positions do not form a square grid");
    const Tensor<T, D> grid = position_embedding.slice(1, 1, n + 1).reshape({side, side, h});
    const Tensor<T, D> along_cols = matmul(bicubic_matrix(cols, side), grid);                     // [side, cols, h]
    const Tensor<T, D> along_rows = matmul(bicubic_matrix(rows, side), along_cols.permute({1, 0, 2}));  // [cols, rows, h]
    const Tensor<T, D> patches = along_rows.permute({1, 0, 2}).reshape({1, rows * cols, h});
    return concat<T, D>({position_embedding.slice(1, 0, 1), patches}, 1);
  }

  // [out, in] weights of 1-d bicubic resampling (A = -0.75, half-pixel centres, edge clamping).
  static Tensor<T, D> bicubic_matrix(index_t out, index_t in) {
    constexpr double A = -0.75;
    auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };      // |x| <= 1
    auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
    std::vector<T> m(std::size_t(out * in), T(0));
    const double scale = double(in) / double(out);
    for (index_t i = 0; i < out; ++i) {
      const double src = scale * (double(i) + 0.5) - 0.5, base = std::floor(src), t = src - base;
      const double w[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
      for (int k = 0; k < 4; ++k) {
        const index_t j = std::clamp<index_t>(index_t(base) - 1 + k, 0, in - 1);
        m[std::size_t(i * in + j)] += T(w[k]);
      }
    }
    return Tensor<T, D>::from_vector({out, in}, m);
  }

  index_t patch;
  Tensor<T, D> class_embedding, position_embedding, patch_weight, patch_bias;
  std::shared_ptr<nn::Module<T, D>> patch_embedding;
};

template <class T, class D = cpu, class W = T>
struct VisionAttention : nn::Module<T, D> {
  explicit VisionAttention(const VisionConfig& c) : heads(c.num_attention_heads) {
    qkv = this->register_module("qkv", std::make_shared<nn::Linear<T, D, W>>(c.hidden_size, 3 * c.hidden_size, c.qkv_bias));
    projection = this->register_module("projection", std::make_shared<nn::Linear<T, D, W>>(c.hidden_size, c.hidden_size));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const {
    const auto parts = split((*qkv)(x), {x.size(2), x.size(2), x.size(2)}, 2);
    return (*projection)(multi_head_attention(parts[0], parts[1], parts[2], heads));
  }
  index_t heads;
  std::shared_ptr<nn::Linear<T, D, W>> qkv, projection;
};

template <class T, class D = cpu, class W = T>
struct VisionMLP : nn::Module<T, D> {
  VisionMLP(index_t hidden, index_t inner, const std::string& act) : act(nn::activation_from_name(act)) {
    fc1 = this->register_module("fc1", std::make_shared<nn::Linear<T, D, W>>(hidden, inner));
    fc2 = this->register_module("fc2", std::make_shared<nn::Linear<T, D, W>>(inner, hidden));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const { return (*fc2)(nn::activate(act, (*fc1)(x))); }
  nn::Activation act;
  std::shared_ptr<nn::Linear<T, D, W>> fc1, fc2;
};

template <class T, class D = cpu, class W = T>
struct VisionLayer : nn::Module<T, D> {
  explicit VisionLayer(const VisionConfig& c) {
    self_attn = this->register_module("self_attn", std::make_shared<VisionAttention<T, D, W>>(c));
    layer_norm1 = this->register_module("layer_norm1", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size, c.layer_norm_eps));
    mlp = this->register_module("mlp", std::make_shared<VisionMLP<T, D, W>>(c.hidden_size, c.intermediate_size, c.hidden_act));
    layer_norm2 = this->register_module("layer_norm2", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size, c.layer_norm_eps));
  }
  Tensor<T, D> operator()(const Tensor<T, D>& x) const {
    const Tensor<T, D> h = x + (*self_attn)((*layer_norm1)(x));
    return h + (*mlp)((*layer_norm2)(h));
  }
  std::shared_ptr<VisionAttention<T, D, W>> self_attn;
  std::shared_ptr<VisionMLP<T, D, W>> mlp;
  std::shared_ptr<nn::LayerNorm<T, D>> layer_norm1, layer_norm2;
};

template <class T, class D = cpu, class W = T>
struct VisionModel : nn::Module<T, D> {
  struct Output {
    Tensor<T, D> last_hidden_state;  // [B, 1 + patches, hidden], after post_layernorm
    Tensor<T, D> pooler_output;      // [B, hidden]: post_layernorm applied again to the CLS row
  };

  explicit VisionModel(const VisionConfig& c) : config(c) {
    embeddings = this->register_module("embeddings", std::make_shared<VisionEmbeddings<T, D>>(c));
    auto encoder = this->register_module("encoder", std::make_shared<nn::Module<T, D>>());
    for (int i = 0; i < c.num_hidden_layers; ++i)
      layers.push_back(encoder->register_module("layers." + std::to_string(i), std::make_shared<VisionLayer<T, D, W>>(c)));
    post_layernorm =
        this->register_module("post_layernorm", std::make_shared<nn::LayerNorm<T, D>>(c.hidden_size, c.layer_norm_eps));
  }

  Output operator()(const Tensor<T, D>& pixels, bool interpolate_pos_encoding = false) const {
    Output out;
    out.last_hidden_state = (*post_layernorm)(encode(pixels, interpolate_pos_encoding));
    out.pooler_output = (*post_layernorm)(out.last_hidden_state.slice(1, 0, 1).squeeze(1));
    return out;
  }

  // The blocks' output before post_layernorm (LAVIS's ViT without its ln_vision), [B, 1 + patches, hidden].
  Tensor<T, D> encode(const Tensor<T, D>& pixels, bool interpolate_pos_encoding = false) const {
    BLIP2_CHECK(pixels.dim() == 4 && pixels.size(1) == 3, ShapeError, "vision model: pixel_values must be [B, 3, H, W], got ",
                to_string(pixels.shape()));
    Tensor<T, D> h = (*embeddings)(pixels, interpolate_pos_encoding);
    for (const auto& layer : layers) h = (*layer)(h);
    return h;
  }

  VisionConfig config;
  std::shared_ptr<VisionEmbeddings<T, D>> embeddings;
  std::vector<std::shared_ptr<VisionLayer<T, D, W>>> layers;
  std::shared_ptr<nn::LayerNorm<T, D>> post_layernorm;
};

}  // namespace blip2
