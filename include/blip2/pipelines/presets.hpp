#pragma once
// The task settings BLIP-2 was evaluated with (Salesforce LAVIS), applied over the model's
// generation_config.json, and the prompt formats of its zero-shot tasks.
#include <string>
#include <utility>
#include <vector>

#include "../generate/options.hpp"

namespace blip2::presets {

// Captioning: beam search with 5 beams, 8 to 30 new tokens. LAVIS
// lavis/projects/blip2/eval/caption_coco_opt2.7b_eval.yaml (run: max_len 30, min_len 8,
// num_beams 5), which Blip2OPT.generate applies to the new tokens only.
inline GenerationOptions caption(GenerationOptions o) {
  o.num_beams = 5;
  o.max_new_tokens = 30;
  o.min_new_tokens = 8;
  o.max_length.reset();
  return o;
}

// Visual question answering: short answers, beam search with 5 beams, 1 to 10 new tokens and
// length_penalty 0 (no preference for longer answers). LAVIS
// lavis/projects/blip2/eval/vqav2_zeroshot_opt_eval.yaml (max_len 10, min_len 1, num_beams 5) and
// the defaults of Blip2OPT.predict_answers (length_penalty=0).
inline GenerationOptions vqa(GenerationOptions o) {
  o.num_beams = 5;
  o.max_new_tokens = 10;
  o.min_new_tokens = 1;
  o.max_length.reset();
  o.length_penalty = 0.0;
  return o;
}

// The zero-shot VQA prompt of the BLIP-2 paper and of transformers' documentation.
inline std::string vqa_prompt(const std::string& question) { return "Question: " + question + " Answer:"; }

// A multi-turn prompt: the earlier turns as "Question: q Answer: a." (LAVIS's BLIP-2 example of
// instructed generation with context), then the new question.
inline std::string chat_prompt(const std::vector<std::pair<std::string, std::string>>& history, const std::string& question) {
  std::string p;
  for (const auto& [q, a] : history) p += "Question: " + q + " Answer: " + a + ". ";
  return p + vqa_prompt(question);
}

}  // namespace blip2::presets
