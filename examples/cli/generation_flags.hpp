#pragma once
// Generation options from command-line flags named after transformers' generate() arguments
// (--num-beams for num_beams, ...), applied over the defaults a command starts from.
#include <blip2/generate/options.hpp>
#include <string>

#include "args.hpp"

namespace blip2::cli {

inline const char* kGenerationFlags =
    "  generation options (transformers' generate() arguments; defaults: generation_config.json,\n"
    "  then the command's task settings):\n"
    "    --num-beams N  --max-new-tokens N  --min-new-tokens N  --length-penalty X\n"
    "    --repetition-penalty X  --no-repeat-ngram-size N  --num-return-sequences N\n"
    "    --eos-token-id ID...  --do-sample  --temperature X  --top-k N  --top-p X  --seed N\n";

inline GenerationOptions apply_generation_flags(GenerationOptions o, const Args& a) {
  if (a.has("num-beams")) o.num_beams = a.get_int("num-beams");
  if (a.has("max-new-tokens")) {
    o.max_new_tokens = a.get_int("max-new-tokens");
    o.max_length.reset();
  }
  if (a.has("min-new-tokens")) o.min_new_tokens = a.get_int("min-new-tokens");
  if (a.has("length-penalty")) o.length_penalty = a.get_double("length-penalty");
  if (a.has("repetition-penalty")) o.repetition_penalty = a.get_double("repetition-penalty");
  if (a.has("no-repeat-ngram-size")) o.no_repeat_ngram_size = a.get_int("no-repeat-ngram-size");
  if (a.has("num-return-sequences")) o.num_return_sequences = a.get_int("num-return-sequences");
  if (a.has("eos-token-id")) {
    o.eos_token_id.clear();
    for (const auto& v : a.all("eos-token-id")) o.eos_token_id.push_back(parse_int("eos-token-id", v));
    BLIP2_CHECK(!o.eos_token_id.empty(), ValueError, "missing --eos-token-id <id>...");
  }
  if (a.has("do-sample")) o.do_sample = a.flag("do-sample");
  if (a.has("temperature")) o.temperature = a.get_double("temperature");
  if (a.has("top-k")) o.top_k = a.get_int("top-k");
  if (a.has("top-p")) o.top_p = a.get_double("top-p");
  if (a.has("seed")) o.seed = std::uint64_t(a.get_int("seed"));
  // A task's minimum (captioning's 8 new tokens) yields to a smaller --max-new-tokens; both given
  // and contradicting is an error (validate).
  if (a.has("max-new-tokens") && !a.has("min-new-tokens") && o.min_new_tokens && *o.min_new_tokens > *o.max_new_tokens)
    o.min_new_tokens = o.max_new_tokens;
  o.validate();
  return o;
}

}  // namespace blip2::cli
