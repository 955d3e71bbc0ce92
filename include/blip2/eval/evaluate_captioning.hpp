#pragma once
// Captioning evaluated as LAVIS's CaptionTask evaluates a BLIP-2 model (lavis/tasks/captioning.py
// with the COCO caption evaluation): a caption generated for every image of the split (the optional
// prompt in front, as the model was trained; beam search with the run's num_beams, max_len and
// min_len new tokens), then BLEU-1..4 and CIDEr-D of the generated captions against the split's
// reference captions, both tokenized as pycocoevalcap tokenizes them (caption_metrics.hpp).
#include "../data/eval_set.hpp"
#include "../generate/generate.hpp"
#include "../models/blip2_opt.hpp"
#include "../models/blip2_t5.hpp"
#include "../tokenizers/tokenizer.hpp"
#include "caption_metrics.hpp"

namespace blip2::eval {

struct CaptionEvalOptions {
  std::string prompt;           // LAVIS's prompt (OPT), e.g. "a photo of"; generation continues it
  GenerationOptions generation;  // unset special tokens come from the model's config
  index_t batch_size = 16;      // images per generate call (LAVIS's batch_size_eval)
};

struct CaptionEvaluation {
  std::vector<std::string> captions;  // generated, one per image, without the prompt
  CaptionScores scores;
};

namespace detail {

// The language model's prompt ids for `rows` images: OPT's tokenizer puts its BOS in front; T5's
// encoder reads the prompt and </s>.
template <class T, class D, class W>
std::vector<std::int64_t> caption_prompt(const Blip2OPT<T, D, W>& m, const tokenizers::Tokenizer& tok, const std::string& p) {
  std::vector<std::int64_t> ids{tok.bos_id() != tokenizers::kNoId ? tok.bos_id() : m.config.opt.bos_token_id};
  const auto text = tok.encode(p, false);
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}
template <class T, class D, class W>
std::vector<std::int64_t> caption_prompt(const Blip2T5<T, D, W>& m, const tokenizers::Tokenizer& tok, const std::string& p) {
  auto ids = tok.encode(p, false);
  ids.push_back(tok.eos_id() != tokenizers::kNoId ? tok.eos_id() : m.config.t5.eos_token_id);
  return ids;
}

// LAVIS trains OPT on "caption\n" and stops its generation at "\n" (Blip2OPT.eos_token_id); the
// model's </s> ends it too.
template <class T, class D, class W>
GenerationOptions caption_stops(const Blip2OPT<T, D, W>& m, const tokenizers::Tokenizer& tok, GenerationOptions o) {
  if (o.eos_token_id.empty()) {
    const auto newline = tok.encode("\n", false);
    if (newline.size() == 1) o.eos_token_id.push_back(newline[0]);
    o.eos_token_id.push_back(m.config.opt.eos_token_id);
  }
  return o;
}
template <class T, class D, class W>
GenerationOptions caption_stops(const Blip2T5<T, D, W>&, const tokenizers::Tokenizer&, GenerationOptions o) {
  return o;
}

}  // namespace detail

// `model`: a Blip2OPT or Blip2T5; `tokenizer`: its language model's.
template <class Model>
CaptionEvaluation evaluate_captioning(const Model& model, const data::EvalSet& set, const tokenizers::Tokenizer& tokenizer,
                                      const CaptionEvalOptions& o = {}) {
  BLIP2_CHECK(set.size() > 0, ValueError, set.name(), ": no images to evaluate captioning on");
  BLIP2_CHECK(o.batch_size >= 1, ValueError, "evaluate_captioning: batch_size must be >= 1, got ", o.batch_size);
  NoGrad no_grad;
  using D = typename std::decay_t<decltype(model.query_tokens)>::device_type;
  const auto prompt = detail::caption_prompt(model, tokenizer, o.prompt);
  const GenerationOptions options = detail::caption_stops(model, tokenizer, o.generation);
  CaptionEvaluation e;
  std::vector<std::vector<std::string>> references;
  for (std::size_t i = 0; i < set.size(); i += std::size_t(o.batch_size)) {
    const std::size_t end = std::min(set.size(), i + std::size_t(o.batch_size));
    const auto pixels = set.pixel_values(i, end, model.config.vision.image_size).template to<D>();
    std::vector<std::int64_t> ids;
    for (std::size_t b = i; b < end; ++b) ids.insert(ids.end(), prompt.begin(), prompt.end());
    const Shape shape{index_t(end - i), index_t(prompt.size())};
    const auto out = generate(model, pixels, Tensor<std::int64_t>::from_vector(shape, ids).template to<D>(),
                              Tensor<std::int64_t>::ones(shape).template to<D>(), options);
    for (const auto& row : out.rows()) {
      std::string text = tokenizer.decode({row.begin() + out.prompt_length, row.end()}, true);
      const auto first = text.find_first_not_of(" \n"), last = text.find_last_not_of(" \n");
      e.captions.push_back(first == std::string::npos ? "" : text.substr(first, last - first + 1));
    }
  }
  std::vector<std::string> candidates;
  for (std::size_t i = 0; i < set.size(); ++i) {
    candidates.push_back(coco_tokenize(e.captions[i]));
    references.emplace_back();
    for (const auto& c : set[i].captions) references.back().push_back(coco_tokenize(c));
  }
  e.scores = score_captions(candidates, references);
  return e;
}

// COCO caption evaluation's names ("Bleu_4", "CIDEr"), as LAVIS logs them.
inline nlohmann::json to_json(const CaptionScores& s) {
  return {{"Bleu_1", s.bleu[0]}, {"Bleu_2", s.bleu[1]}, {"Bleu_3", s.bleu[2]}, {"Bleu_4", s.bleu[3]},
          {"CIDEr", s.cider},    {"agg_metrics", s.cider + s.bleu[3]}};
}

}  // namespace blip2::eval
