#pragma once
// Text generation for BLIP-2 (transformers' `generate` semantics): greedy search, multinomial
// sampling, beam search and beam sampling over one "decoder step" interface, so the same search
// code serves the decoder-only OPT (image queries and prompt run once through the KV cache, then
// one token per step) and the encoder-decoder Flan-T5 (encoder once, decoder step by step).
//
//   auto o = GenerationOptions::load(dir + "/generation_config.json");
//   o.max_new_tokens = 30; o.num_beams = 5;
//   GenerateOutput out = generate(model, pixel_values, input_ids, attention_mask, o);
//   // out.sequences [B * num_return_sequences, L]: for OPT the prompt ids, then the new tokens
#include <chrono>

#include "../autograd/grad_mode.hpp"
#include "../models/blip2_opt.hpp"
#include "../models/blip2_t5.hpp"
#include "beam_search.hpp"
#include "sampling.hpp"

namespace blip2 {

// One step of a language model during generation. Rows are the batch (after expand: the beams or
// samples of each input, next to each other).
struct DecoderStep {
  virtual ~DecoderStep() = default;
  // Runs the prompt once; returns the logits for the next token [B, V] (float32, CPU).
  virtual Tensor<float> start() = 0;
  // Repeats every row n times (row r becomes rows r*n .. r*n+n-1).
  virtual void expand(index_t n) = 0;
  // Feeds one token per row; returns the logits for the next token [rows, V].
  virtual Tensor<float> step(const std::vector<std::int64_t>& tokens) = 0;
  // Keeps the given rows, in that order (beam search reorders hypotheses).
  virtual void reorder(const std::vector<std::int64_t>& rows) = 0;
};

namespace generation {
// Last position's logits [B, L, V] -> [B, V] as float32 on the CPU.
template <class T, class D>
Tensor<float> last_logits(const Tensor<T, D>& logits) {
  const index_t B = logits.size(0), L = logits.size(1), V = logits.size(2);
  return logits.slice(1, L - 1, L).contiguous().reshape({B, V}).template to<float>().template to<cpu>();
}

inline std::vector<std::int64_t> interleave(index_t rows, index_t n) {
  std::vector<std::int64_t> order;
  for (index_t r = 0; r < rows; ++r)
    for (index_t i = 0; i < n; ++i) order.push_back(r);
  return order;
}

// A step that times itself: start() is the prefill, step() and reorder() the decoding.
template <class Step>
class TimedStep {
 public:
  explicit TimedStep(Step& step) : step_(step) {}
  Tensor<float> start() { return timed(prefill_seconds, [&] { return step_.start(); }); }
  void expand(index_t n) { step_.expand(n); }
  Tensor<float> step(const std::vector<std::int64_t>& tokens) {
    ++steps;
    return timed(decode_seconds, [&] { return step_.step(tokens); });
  }
  void reorder(const std::vector<std::int64_t>& rows) {
    timed(decode_seconds, [&] { return (step_.reorder(rows), 0); });
  }

  double prefill_seconds = 0, decode_seconds = 0;
  index_t steps = 0;

 private:
  template <class F>
  static auto timed(double& total, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = f();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }
  Step& step_;
};

// The prompt ids for image queries lm_inputs [B, Q, E]: input_ids [B, L] when given (checked),
// else `start` in every row.
template <class T, class D>
Tensor<std::int64_t, D> prompt_ids(const Tensor<T, D>& lm_inputs, const Tensor<std::int64_t, D>& input_ids,
                                   const std::vector<std::int64_t>& start) {
  BLIP2_CHECK(lm_inputs.dim() == 3, ShapeError, "generate: image queries ", to_string(lm_inputs.shape()),
              " must be [batch, queries, width]");
  const index_t B = lm_inputs.size(0);
  if (!input_ids.defined()) {
    std::vector<std::int64_t> flat;
    for (index_t b = 0; b < B; ++b) flat.insert(flat.end(), start.begin(), start.end());
    return Tensor<std::int64_t, D>::from_vector({B, index_t(start.size())}, flat);
  }
  BLIP2_CHECK(input_ids.dim() == 2 && input_ids.size(0) == B, ShapeError, "generate: input_ids ",
              to_string(input_ids.shape()), " do not fit ", B, " images");
  BLIP2_CHECK(input_ids.size(1) > 0, ValueError, "generate: input_ids is empty; give a prompt or leave it undefined");
  return input_ids;
}

// Tensor rows [B, L] -> host rows.
inline Ids host_rows(const Tensor<std::int64_t>& t) {
  const auto v = t.contiguous().to_vector();
  const index_t B = t.size(0), L = t.size(1);
  Ids out(static_cast<std::size_t>(B));
  for (index_t b = 0; b < B; ++b) out[std::size_t(b)].assign(v.begin() + b * L, v.begin() + (b + 1) * L);
  return out;
}
}  // namespace generation

// OPTForCausalLM with a KV cache: start() runs inputs_embeds [B, L, E] under attention_mask [B, L]
// (0 for left padding), each step() one token per row with the mask grown by a 1. W: the storage
// type of the model's frozen weights (T, bf16 or f16).
template <class T, class D = cpu, class W = T>
class OPTDecoderStep : public DecoderStep {
 public:
  OPTDecoderStep(const OPTForCausalLM<T, D, W>& lm, Tensor<T, D> inputs_embeds, const Tensor<std::int64_t, D>& attention_mask)
      : lm_(lm), embeds_(std::move(inputs_embeds)) {
    BLIP2_CHECK(embeds_.dim() == 3 && embeds_.size(1) > 0, ValueError, "generate: OPT needs a non-empty prompt, got inputs_embeds ",
                to_string(embeds_.shape()));
    const index_t B = embeds_.size(0), L = embeds_.size(1);
    BLIP2_CHECK(!attention_mask.defined() || (attention_mask.dim() == 2 && attention_mask.size(0) == B &&
                                              attention_mask.size(1) == L),
                ShapeError, "generate: attention_mask ", to_string(attention_mask.shape()), " does not fit inputs_embeds ",
                to_string(embeds_.shape()));
    mask_ = attention_mask.defined() ? generation::host_rows(attention_mask.template to<cpu>())
                                     : generation::Ids(static_cast<std::size_t>(B), std::vector<std::int64_t>(std::size_t(L), 1));
  }

  Tensor<float> start() override {
    NoGrad no_grad;
    cache_ = KVCache<T, D>();
    return generation::last_logits(lm_(embeds_, mask_tensor(), &cache_));
  }

  void expand(index_t n) override {
    if (n > 1) select(generation::interleave(index_t(mask_.size()), n));
  }

  void reorder(const std::vector<std::int64_t>& rows) override { select(rows); }

  Tensor<float> step(const std::vector<std::int64_t>& tokens) override {
    NoGrad no_grad;
    const index_t rows = index_t(mask_.size());
    BLIP2_CHECK(index_t(tokens.size()) == rows, ShapeError, "generate: ", tokens.size(), " tokens for ", rows, " rows");
    for (auto& m : mask_) m.push_back(1);
    const auto ids = Tensor<std::int64_t, D>::from_vector({rows, 1}, tokens);
    return generation::last_logits(lm_(lm_.embed(ids), mask_tensor(), &cache_));
  }

  const KVCache<T, D>& cache() const { return cache_; }

 private:
  Tensor<std::int64_t, D> mask_tensor() const {
    std::vector<std::int64_t> flat;
    for (const auto& m : mask_) flat.insert(flat.end(), m.begin(), m.end());
    return Tensor<std::int64_t, D>::from_vector({index_t(mask_.size()), index_t(mask_.empty() ? 0 : mask_[0].size())}, flat);
  }
  void select(const std::vector<std::int64_t>& rows) {
    generation::Ids m;
    for (std::int64_t r : rows) m.push_back(mask_.at(std::size_t(r)));
    mask_ = std::move(m);
    cache_.select_rows(Tensor<std::int64_t, D>::from_vector({index_t(rows.size())}, rows));
  }

  const OPTForCausalLM<T, D, W>& lm_;
  Tensor<T, D> embeds_;
  generation::Ids mask_;
  KVCache<T, D> cache_;
};

// T5ForConditionalGeneration's decoder with a T5DecoderCache over a fixed encoder output
// [B, S, d_model] and its mask [B, S]: start() feeds decoder_start_token_id (storing the
// cross-attention keys/values once), each step() one token per row.
template <class T, class D = cpu, class W = T>
class T5DecoderStep : public DecoderStep {
 public:
  T5DecoderStep(const T5ForConditionalGeneration<T, D, W>& lm, Tensor<T, D> encoder_out, const Tensor<std::int64_t, D>& encoder_mask,
                std::int64_t decoder_start_token_id)
      : lm_(lm), encoder_out_(std::move(encoder_out)), start_(decoder_start_token_id) {
    BLIP2_CHECK(encoder_out_.dim() == 3 && encoder_out_.size(1) > 0, ValueError,
                "generate: T5 needs a non-empty encoder output, got ", to_string(encoder_out_.shape()));
    const index_t B = encoder_out_.size(0), S = encoder_out_.size(1);
    BLIP2_CHECK(!encoder_mask.defined() || (encoder_mask.dim() == 2 && encoder_mask.size(0) == B && encoder_mask.size(1) == S),
                ShapeError, "generate: encoder mask ", to_string(encoder_mask.shape()), " does not fit the encoder output ",
                to_string(encoder_out_.shape()));
    mask_ = encoder_mask.defined() ? generation::host_rows(encoder_mask.template to<cpu>())
                                   : generation::Ids(std::size_t(B), std::vector<std::int64_t>(std::size_t(S), 1));
  }

  Tensor<float> start() override {
    NoGrad no_grad;
    cache_ = T5DecoderCache<T, D>();
    const index_t B = encoder_out_.size(0);
    const auto ids = Tensor<std::int64_t, D>::full({B, 1}, start_);
    return generation::last_logits(lm_.decode(ids, encoder_out_, mask_tensor(), &cache_));
  }

  void expand(index_t n) override {
    if (n > 1) select(generation::interleave(index_t(mask_.size()), n));
  }

  void reorder(const std::vector<std::int64_t>& rows) override { select(rows); }

  Tensor<float> step(const std::vector<std::int64_t>& tokens) override {
    NoGrad no_grad;
    const index_t rows = index_t(mask_.size());
    BLIP2_CHECK(index_t(tokens.size()) == rows, ShapeError, "generate: ", tokens.size(), " tokens for ", rows, " rows");
    const auto ids = Tensor<std::int64_t, D>::from_vector({rows, 1}, tokens);
    return generation::last_logits(lm_.decode(ids, Tensor<T, D>(), mask_tensor(), &cache_));
  }

  const T5DecoderCache<T, D>& cache() const { return cache_; }

 private:
  Tensor<std::int64_t, D> mask_tensor() const {
    std::vector<std::int64_t> flat;
    for (const auto& m : mask_) flat.insert(flat.end(), m.begin(), m.end());
    return Tensor<std::int64_t, D>::from_vector({index_t(mask_.size()), index_t(mask_[0].size())}, flat);
  }
  void select(const std::vector<std::int64_t>& rows) {
    generation::Ids m;
    for (std::int64_t r : rows) m.push_back(mask_.at(std::size_t(r)));
    mask_ = std::move(m);
    cache_.select_rows(Tensor<std::int64_t, D>::from_vector({index_t(rows.size())}, rows));
  }

  const T5ForConditionalGeneration<T, D, W>& lm_;
  Tensor<T, D> encoder_out_;
  std::int64_t start_;
  generation::Ids mask_;
  T5DecoderCache<T, D> cache_;
};

// Runs the search the options pick (beam search when num_beams > 1, else greedy or sampling) over
// `step` from `prompts` (the ids the logits processors see and the sequences start with; one row per
// input, equal lengths). max_positions (0: none) caps the default length and bounds any other.
template <class Step>
GenerateOutput generate(Step& step, const generation::Ids& prompts, const GenerationOptions& o, index_t max_positions = 0) {
  o.validate();
  BLIP2_CHECK(!prompts.empty() && !prompts[0].empty(), ValueError, "generate: the prompt is empty");
  for (const auto& p : prompts)
    BLIP2_CHECK(p.size() == prompts[0].size(), ShapeError, "generate: prompt rows of lengths ", prompts[0].size(), " and ",
                p.size(), " (pad them)");
  const index_t max_length = o.resolved_max_length(index_t(prompts[0].size()), max_positions);
  BLIP2_CHECK(max_positions <= 0 || max_length <= max_positions, ValueError, "generate: a prompt of ", prompts[0].size(),
              " ids and max_new_tokens/max_length make ", max_length, " positions; the model has ", max_positions,
              " (max_position_embeddings)");
  generation::TimedStep<Step> timed(step);
  GenerateOutput out = o.num_beams > 1 ? beam_search(timed, o, prompts, max_length) : sample_search(timed, o, prompts, max_length);
  out.prefill_seconds = timed.prefill_seconds;
  out.decode_seconds = timed.decode_seconds;
  out.decode_steps = timed.steps;
  return out;
}

// Special tokens the options leave unset taken from the language model's config (what
// transformers' generation config holds when generation_config.json does not say). An eos id
// outside the vocabulary could never end a sequence: it is an error.
inline GenerationOptions with_model_defaults(GenerationOptions o, const Blip2Config& c) {
  const bool t5 = c.text_model_type == "t5";
  if (o.eos_token_id.empty()) o.eos_token_id = {t5 ? c.t5.eos_token_id : c.opt.eos_token_id};
  if (!o.pad_token_id) o.pad_token_id = t5 ? c.t5.pad_token_id : c.opt.pad_token_id;
  if (!o.bos_token_id && !t5) o.bos_token_id = c.opt.bos_token_id;
  if (!o.decoder_start_token_id && t5) o.decoder_start_token_id = c.t5.decoder_start_token_id;
  const std::int64_t vocab = t5 ? c.t5.vocab_size : c.opt.vocab_size;
  for (const auto id : o.eos_token_id)
    BLIP2_CHECK(id >= 0 && id < vocab, ValueError, "generate: eos_token_id ", id, " is not in the language model's ",
                vocab, " tokens");
  return o;
}

// Blip2ForConditionalGeneration.generate with OPT from the projected image queries lm_inputs
// [B, Q, E] (model.project(model.query_image(pixels).queries)), so that an image encoded once can
// answer several prompts. prompt: input_ids [B, L] with the image placeholders (image_token_index,
// as the HF processor builds them; rows left-padded) or without (the queries go in front);
// undefined: Q placeholders and bos_token_id. The returned sequences start with the prompt. Unset special tokens
// come from the model's config.
template <class T, class D, class W>
GenerateOutput generate_from_image(const Blip2OPT<T, D, W>& model, const Tensor<T, D>& lm_inputs,
                                   const Tensor<std::int64_t, D>& prompt = {}, const Tensor<std::int64_t, D>& attention_mask = {},
                                   const GenerationOptions& options = {}) {
  const GenerationOptions o = with_model_defaults(options, model.config);
  o.validate();
  NoGrad no_grad;
  std::vector<std::int64_t> start;
  if (!prompt.defined()) {
    if (model.config.image_token_index) start.assign(std::size_t(model.config.num_query_tokens), *model.config.image_token_index);
    BLIP2_CHECK(o.bos_token_id, ValueError, "generate: no input_ids and no bos_token_id to start from");
    start.push_back(*o.bos_token_id);
  }
  const auto input_ids = generation::prompt_ids(lm_inputs, prompt, start);
  const auto [embeds, mask] = model.merge(lm_inputs, input_ids, attention_mask);
  OPTDecoderStep<T, D, W> step(*model.language_model, embeds, mask);
  return generate(step, generation::host_rows(input_ids.template to<cpu>()), o, model.config.opt.max_position_embeddings);
}

// Flan-T5 from the projected image queries lm_inputs [B, Q, E]: the encoder reads them with the
// prompt (input_ids [B, L]) once (with the image placeholders, or without them: the queries go in
// front; undefined: the Q placeholders alone); the decoder starts from decoder_start_token_id. The
// returned sequences are the decoder ids, starting with decoder_start_token_id.
template <class T, class D, class W>
GenerateOutput generate_from_image(const Blip2T5<T, D, W>& model, const Tensor<T, D>& lm_inputs,
                                   const Tensor<std::int64_t, D>& prompt = {}, const Tensor<std::int64_t, D>& attention_mask = {},
                                   const GenerationOptions& options = {}) {
  const GenerationOptions o = with_model_defaults(options, model.config);
  o.validate();
  BLIP2_CHECK(o.decoder_start_token_id, ValueError, "generate: T5 needs decoder_start_token_id");
  NoGrad no_grad;
  std::vector<std::int64_t> start;
  if (!prompt.defined()) {
    BLIP2_CHECK(model.config.image_token_index, ValueError,
                "generate: no input_ids and no image_token_index to build a prompt from");
    start.assign(std::size_t(model.config.num_query_tokens), *model.config.image_token_index);
  }
  const auto input_ids = generation::prompt_ids(lm_inputs, prompt, start);
  const index_t B = input_ids.size(0);
  const auto [encoder_out, mask] = model.encode_queries(lm_inputs, input_ids, attention_mask);
  T5DecoderStep<T, D, W> step(*model.language_model, encoder_out, mask, *o.decoder_start_token_id);
  const generation::Ids prompts(static_cast<std::size_t>(B), std::vector<std::int64_t>{*o.decoder_start_token_id});
  return generate(step, prompts, o);
}

// Blip2ForConditionalGeneration.generate (OPT or Flan-T5) from pixels [B, 3, H, W]: the image
// encoder and Q-Former, then generate_from_image.
template <class Model, class T, class D>
auto generate(const Model& model, const Tensor<T, D>& pixels, const Tensor<std::int64_t, D>& input_ids = {},
              const Tensor<std::int64_t, D>& attention_mask = {}, const GenerationOptions& options = {})
    -> decltype(generate_from_image(model, pixels, input_ids, attention_mask, options)) {
  NoGrad no_grad;
  return generate_from_image(model, model.project(model.query_image(pixels).queries), input_ids, attention_mask, options);
}

}  // namespace blip2
