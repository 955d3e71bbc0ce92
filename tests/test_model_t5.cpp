// Blip2ForConditionalGeneration with Flan-T5 against transformers (tests/data/hf-blip2/blip2-t5-tiny),
// plus the T5 pieces the fixture cannot isolate: relative-position buckets, a float64
// finite-difference check through the relative position bias, padding, KV-cached decoding and
// stage-2 gradients.
#include <blip2/models/blip2_opt.hpp>
#include <blip2/models/blip2_t5.hpp>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

struct Fixture {
  std::string dir = kFixtures + "blip2-t5-tiny/";
  Blip2Config config = Blip2Config::load(dir + "model/config.json");
  Blip2T5<float> model{config};
  io::SafeTensorsFile io = io::SafeTensorsFile::open(dir + "io.safetensors");
  Fixture() { CHECK(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty()); }
  Tensor<float> in(const std::string& n) const { return io.load<float>(n); }
  Tensor<std::int64_t> ids(const std::string& n) const { return io.load<std::int64_t>(n); }
};

// A small T5 whose relative positions reach the log-spaced buckets.
T5Config tiny_t5(bool gated, bool tied) {
  T5Config c;
  c.vocab_size = 11, c.d_model = 8, c.d_kv = 4, c.d_ff = 12, c.num_layers = 2, c.num_decoder_layers = 2, c.num_heads = 2;
  c.relative_attention_num_buckets = 8, c.relative_attention_max_distance = 12;
  c.feed_forward_proj = gated ? "gated-gelu" : "relu";
  c.dense_act_fn = gated ? "gelu_new" : "relu";
  c.tie_word_embeddings = tied, c.scale_decoder_outputs = tied;
  return c;
}

template <class T>
void randomize(const T5ForConditionalGeneration<T>& t5, std::uint64_t seed) {
  Generator gen(seed);
  nn::init_parameters(t5, gen, 0.3);
  NoGrad no_grad;
  for (const auto& block : {t5.encoder->blocks[0], t5.decoder->blocks[0]}) {  // make the position bias matter
    const auto& table = block->self_attention->relative_attention_bias;
    copy_(table, randn<T>(table.shape(), gen));
  }
}

}  // namespace

TEST_CASE("T5 model: forward intermediates, logits and loss match transformers") {
  Fixture f;
  NoGrad no_grad;
  CHECK(!f.config.t5.scale_decoder_outputs);  // transformers 5.17 applies the tied head unscaled here
  for (const bool placeholders : {false, true}) {
    INFO("image placeholder layout: " << placeholders);
    const auto out = placeholders ? f.model(f.in("pixel_values"), f.ids("input_ids_with_image_tokens"),
                                            f.ids("attention_mask_with_image_tokens"), f.ids("labels"))
                                  : f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"),
                                            f.ids("labels"));
    check_activation("vision_last_hidden_state", out.image.vision.last_hidden_state, f.in("vision_last_hidden_state"));
    check_activation("qformer_last_hidden_state", out.image.queries, f.in("qformer_last_hidden_state"));
    check_activation("language_model_inputs", out.language_model_inputs, f.in("language_model_inputs"));
    check_activation("logits", out.logits, f.in("logits"));
    CHECK(to_string(out.encoder_last_hidden_state.shape()) == "[2,14,32]");
    const double loss = out.loss.item(), ref = f.in("loss").item();
    CHECK_MESSAGE(std::abs(loss - ref) <= 1e-5 * std::abs(ref), "loss " << loss << " vs " << ref << ": relative diff "
                                                                      << std::abs(loss - ref) / std::abs(ref));
  }
}

TEST_CASE("T5 relative position buckets") {
  // Bidirectional, 8 buckets / max distance 20 (the fixture's): 4 per direction, 2 exact.
  const std::vector<std::pair<index_t, index_t>> bidi = {{0, 0},   {-1, 1}, {-2, 2}, {-6, 2}, {-7, 3},  {-20, 3},
                                                         {-500, 3}, {1, 5},  {2, 6},  {3, 6},  {7, 7},   {100, 7}};
  for (auto [rel, bucket] : bidi) {
    INFO("bidirectional " << rel);
    CHECK(t5_relative_position_bucket(rel, true, 8, 20) == bucket);
  }
  // Causal: later keys share bucket 0; 8 buckets, 4 exact, log-spaced up to 20.
  const std::vector<std::pair<index_t, index_t>> causal = {{5, 0},  {0, 0},  {-3, 3},  {-4, 4},
                                                           {-8, 5}, {-19, 7}, {-20, 7}, {-1000, 7}};
  for (auto [rel, bucket] : causal) {
    INFO("causal " << rel);
    CHECK(t5_relative_position_bucket(rel, false, 8, 20) == bucket);
  }
  // T5's defaults (32 buckets, 128): distances that are powers of two times max_exact land exactly
  // on a bucket edge in float32 (16 -> 8 + 2, 64 -> 8 + 6 bidirectional).
  CHECK(t5_relative_position_bucket(-15, true, 32, 128) == 9);
  CHECK(t5_relative_position_bucket(-16, true, 32, 128) == 10);
  CHECK(t5_relative_position_bucket(64, true, 32, 128) == 16 + 14);
  CHECK(t5_relative_position_bucket(-128, true, 32, 128) == 15);
  CHECK(t5_relative_position_bucket(-31, false, 32, 128) == 21);
  CHECK(t5_relative_position_bucket(-32, false, 32, 128) == 21);
  CHECK(t5_relative_position_bucket(-128, false, 32, 128) == 31);
}

TEST_CASE("T5: float64 finite differences through the relative position bias and padding mask") {
  for (const bool gated : {true, false}) {
    INFO("gated " << gated);
    T5ForConditionalGeneration<double> t5(tiny_t5(gated, !gated));
    randomize(t5, gated ? 7 : 8);
    Generator gen(3);
    const auto embeds = randn<double>({2, 9, 8}, gen);
    const auto mask = Tensor<std::int64_t>::from_vector({2, 9}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
    const auto decoder_ids = Tensor<std::int64_t>::from_vector({2, 7}, {0, 3, 5, 7, 9, 2, 4, 0, 1, 2, 10, 6, 8, 3});
    gradcheck("T5 logits", {t5.encoder->blocks[0]->self_attention->relative_attention_bias,
                            t5.decoder->blocks[0]->self_attention->relative_attention_bias},
              [&](const std::vector<Tensor<double>>&) { return t5(embeds, mask, decoder_ids); });
  }
}

TEST_CASE("T5: right padding of the encoder input does not change the other positions' results") {
  T5ForConditionalGeneration<float> t5(tiny_t5(true, false));
  randomize(t5, 11);
  NoGrad no_grad;
  Generator gen(5);
  const auto embeds = randn<float>({2, 9, 8}, gen);
  const auto mask = Tensor<std::int64_t>::from_vector({2, 9}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const auto ids = Tensor<std::int64_t>::from_vector({2, 4}, {0, 3, 5, 7, 0, 1, 2, 10});
  const auto both = t5(embeds, mask, ids);
  const auto alone = t5(embeds.slice(0, 1, 2).slice(1, 0, 7).contiguous(), Tensor<std::int64_t>(),
                        ids.slice(0, 1, 2).contiguous());
  CHECK(max_abs_diff(both.slice(0, 1, 2).contiguous(), alone) < 1e-5);
  const auto unmasked = t5(embeds, Tensor<std::int64_t>(), ids);  // the padding matters when not masked
  CHECK(max_abs_diff(both.slice(0, 1, 2).contiguous(), unmasked.slice(0, 1, 2).contiguous()) > 1e-3);
}

TEST_CASE("T5: the KV-cached decoder gives the full decoder's logits at every step") {
  Fixture f;
  NoGrad no_grad;
  const auto enc = f.model.encode(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"));
  const auto& lm = *f.model.language_model;
  const auto ids = lm.shift_right(f.ids("labels"));  // [2, 5]
  const auto full = lm.decode(ids, enc.encoder_last_hidden_state, enc.encoder_attention_mask);
  check_activation("full decoder logits", full, f.in("logits"));
  auto step = [](const Tensor<std::int64_t>& t, index_t a, index_t b) { return t.slice(1, a, b).contiguous(); };
  {
    T5DecoderCache<float> cache;
    for (index_t t = 0; t < 5; ++t) {
      INFO("step " << t);
      const auto logits =
          lm.decode(step(ids, t, t + 1), t == 0 ? enc.encoder_last_hidden_state : Tensor<float>(), enc.encoder_attention_mask, &cache);
      check_activation("cached step", logits, full.slice(1, t, t + 1).contiguous(), 1e-5);
      CHECK(cache.length() == t + 1);
    }
  }
  {  // two positions, then three
    T5DecoderCache<float> cache;
    const auto a = lm.decode(step(ids, 0, 2), enc.encoder_last_hidden_state, enc.encoder_attention_mask, &cache);
    const auto b = lm.decode(step(ids, 2, 5), enc.encoder_last_hidden_state, enc.encoder_attention_mask, &cache);
    check_activation("chunk 1", a, full.slice(1, 0, 2).contiguous(), 1e-5);
    check_activation("chunk 2", b, full.slice(1, 2, 5).contiguous(), 1e-5);
  }
  {  // rows swapped after two steps, as beam search reorders hypotheses
    T5DecoderCache<float> cache;
    lm.decode(step(ids, 0, 2), enc.encoder_last_hidden_state, enc.encoder_attention_mask, &cache);
    const auto order = Tensor<std::int64_t>::from_vector({2}, {1, 0});
    cache.select_rows(order);
    auto swap_rows = [](const Tensor<std::int64_t>& t) {  // index_select is for float tensors
      const auto v = t.contiguous().to_vector();
      const std::size_t n = v.size() / 2;
      std::vector<std::int64_t> w(v.begin() + n, v.end());
      w.insert(w.end(), v.begin(), v.begin() + n);
      return Tensor<std::int64_t>::from_vector(t.shape(), w);
    };
    const auto c = lm.decode(swap_rows(step(ids, 2, 3)), Tensor<float>(), swap_rows(enc.encoder_attention_mask), &cache);
    check_activation("reordered step", c, index_select(full.slice(1, 2, 3).contiguous(), 0, order), 1e-5);
  }
}

TEST_CASE("T5: stage-2 training sends gradients to the Q-Former, not to T5 or the ViT") {
  Fixture f;
  f.model.set_stage2_trainable();
  CHECK(f.model.language_model->trainable_parameters().empty());
  const auto out = f.model(f.in("pixel_values"), f.ids("text_input_ids"), f.ids("text_attention_mask"), f.ids("labels"));
  out.loss.backward();
  for (const auto& [name, p] : f.model.language_model->named_parameters()) CHECK_MESSAGE(!p.grad().defined(), name);
  for (const auto& [name, p] : f.model.vision_model->named_parameters())  // only ln_vision trains
    CHECK_MESSAGE(p.grad().defined() == (name.rfind("post_layernorm.", 0) == 0), name);
  std::size_t with_grad = 0;
  for (const auto& [name, p] : f.model.qformer->named_parameters()) {
    CHECK_MESSAGE(p.grad().defined(), name);
    with_grad += p.grad().defined();
  }
  CHECK(with_grad > 0);
  CHECK(f.model.query_tokens.grad().defined());
  CHECK(f.model.language_projection->weight.grad().defined());
}

TEST_CASE("T5 model: bad inputs and mismatched checkpoints name what is wrong") {
  Fixture f;
  NoGrad no_grad;
  const auto pixels = f.in("pixel_values");
  const auto text = f.ids("text_input_ids"), mask = f.ids("text_attention_mask");
  const auto bad_id = Tensor<std::int64_t>::from_vector({2, 3}, {1, 200, 3, 4, 5, 6});
  CHECK_THROWS_WITH_AS(f.model(pixels, bad_id, {}, f.ids("labels")), doctest::Contains("token id 200"), ValueError);
  const auto bad_label = Tensor<std::int64_t>::from_vector({2, 2}, {5, -100, 128, 1});
  CHECK_THROWS_WITH_AS(f.model(pixels, text, mask, bad_label), doctest::Contains("labels hold 128 at [1, 0]"), ValueError);
  CHECK_THROWS_WITH_AS(f.model(pixels, text, mask, Tensor<std::int64_t>::ones({3, 5})), doctest::Contains("labels [3,5]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(f.model(pixels, text, mask, Tensor<std::int64_t>::ones({10})), doctest::Contains("labels [10]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(f.model(pixels, text, mask), doctest::Contains("labels or decoder_input_ids"), ValueError);
  CHECK_THROWS_WITH_AS(f.model(pixels, text, mask, {}, bad_id), doctest::Contains("token id 200"), ValueError);
  CHECK_THROWS_AS(f.model(pixels, text, Tensor<std::int64_t>::ones({2, 5}), f.ids("labels")), ShapeError);
  const auto& lm = *f.model.language_model;
  CHECK_THROWS_WITH_AS(lm.decode(Tensor<std::int64_t>::zeros({2, 1}), Tensor<float>()), doctest::Contains("encoder output"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(lm.encode(Tensor<float>::zeros({2, 4, 32}), Tensor<std::int64_t>::ones({2, 5})),
                       doctest::Contains("attention_mask [2,5]"), ShapeError);

  // A T5 config cannot build Blip2OPT and vice versa.
  CHECK_THROWS_WITH_AS(Blip2OPT<float>{f.config}, doctest::Contains("text model is 't5'"), ValueError);
  const auto opt_config = Blip2Config::load(kFixtures + "blip2-opt-tiny/model/config.json");
  CHECK_THROWS_WITH_AS(Blip2T5<float>{opt_config}, doctest::Contains("text model is 'opt'"), ValueError);
  // Real Flan-T5 checkpoints have an untied head: this fixture has none to load.
  auto untied = f.config;
  untied.t5.tie_word_embeddings = false;
  Blip2T5<float> model(untied);
  CHECK_THROWS_WITH_AS(io::load_parameters(model, io::Checkpoint::open(f.dir + "model")),
                       doctest::Contains("missing tensor 'language_model.lm_head.weight'"), IoError);
}
