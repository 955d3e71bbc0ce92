#pragma once
// Generation options with Hugging Face transformers' names and defaults (GenerationConfig), read
// from generation_config.json or set field by field, and what every search returns.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../io/json.hpp"
#include "../ops/convert.hpp"

namespace blip2 {

// transformers' `early_stopping`: False (stop when no running beam can beat the finished ones, a
// heuristic), True (stop as soon as num_beams hypotheses are finished) or "never" (canonical beam
// search: stop only when improvement is impossible).
enum class EarlyStopping { False, True, Never };

struct GenerationOptions {
  // Length. max_new_tokens wins over max_length (the whole sequence, prompt included); with neither,
  // 20 new tokens (capped by the model's position table where it has one).
  std::optional<int> max_new_tokens;
  std::optional<int> max_length;
  std::optional<int> min_new_tokens;
  int min_length = 0;  // the whole sequence, prompt included; EOS is masked below it

  // Strategy: greedy (num_beams 1, no sampling), multinomial sampling, beam search, beam sampling.
  bool do_sample = false;
  int num_beams = 1;
  int num_return_sequences = 1;

  // Sampling warpers (applied only with do_sample), in this order: temperature, top_k, top_p.
  double temperature = 1.0;
  int top_k = 50;      // 0: off
  double top_p = 1.0;  // 1: off
  std::uint64_t seed = 0;  // seeds the blip2::Generator that draws the samples

  // Logits processors (all strategies).
  double repetition_penalty = 1.0;  // 1: off
  int no_repeat_ngram_size = 0;     // 0: off

  // Beam search.
  double length_penalty = 1.0;  // finished score = sum of log-probs / (generated length ** length_penalty)
  EarlyStopping early_stopping = EarlyStopping::False;

  // Special tokens (unset: none, or the model's where the model-level generate fills them in).
  std::vector<std::int64_t> eos_token_id;  // one or several
  std::optional<std::int64_t> pad_token_id, bos_token_id, decoder_start_token_id;

  // Sets the keys that `j` holds (generation_config.json or generate()'s keyword arguments);
  // unknown keys are ignored, a key of the wrong type is an IoError.
  GenerationOptions& update(const nlohmann::json& j, const std::string& where = "generation config") {
    BLIP2_CHECK(j.is_object(), IoError, where, ": not a JSON object");
    auto get = [&](const char* key, auto& slot) {
      auto it = j.find(key);
      if (it == j.end()) return;
      using V = std::decay_t<decltype(slot)>;
      try {
        if constexpr (std::is_same_v<V, std::optional<int>> || std::is_same_v<V, std::optional<std::int64_t>>) {
          if (it->is_null()) slot.reset();
          else slot = it->get<typename V::value_type>();
        } else if (!it->is_null()) {
          slot = it->get<V>();
        }
      } catch (const nlohmann::json::exception&) {
        throw IoError(where + ": key '" + key + "' has the wrong type: " + it->dump());
      }
    };
    get("max_new_tokens", max_new_tokens);
    get("max_length", max_length);
    get("min_new_tokens", min_new_tokens);
    get("min_length", min_length);
    get("do_sample", do_sample);
    get("num_beams", num_beams);
    get("num_return_sequences", num_return_sequences);
    get("temperature", temperature);
    get("top_k", top_k);
    get("top_p", top_p);
    get("seed", seed);
    get("repetition_penalty", repetition_penalty);
    get("no_repeat_ngram_size", no_repeat_ngram_size);
    get("length_penalty", length_penalty);
    get("pad_token_id", pad_token_id);
    get("bos_token_id", bos_token_id);
    get("decoder_start_token_id", decoder_start_token_id);
    if (auto it = j.find("early_stopping"); it != j.end() && !it->is_null()) {
      if (it->is_boolean()) early_stopping = it->get<bool>() ? EarlyStopping::True : EarlyStopping::False;
      else if (it->is_string() && it->get<std::string>() == "never") early_stopping = EarlyStopping::Never;
      else throw IoError(where + ": early_stopping must be true, false or \"never\", not " + it->dump());
    }
    if (auto it = j.find("eos_token_id"); it != j.end()) {
      if (it->is_null()) eos_token_id.clear();
      else if (it->is_number_integer()) eos_token_id = {it->get<std::int64_t>()};
      else if (it->is_array() && std::all_of(it->begin(), it->end(), [](const auto& e) { return e.is_number_integer(); }))
        eos_token_id = it->get<std::vector<std::int64_t>>();
      else throw IoError(where + ": eos_token_id must be an integer or a list of integers, not " + it->dump());
    }
    return *this;
  }

  // generation_config.json's content over transformers' defaults.
  static GenerationOptions from_generation_config(const nlohmann::json& j,
                                                  const std::string& where = "generation_config.json") {
    GenerationOptions o;
    o.update(j, where);
    return o;
  }

  static GenerationOptions load(const std::string& path) { return from_generation_config(io::read_json_file(path), path); }

  // The whole length (prompt included) at which sequences stop: prompt + max_new_tokens, else
  // max_length, else prompt + 20 capped by `max_positions` (the model's position table, 0: none).
  // A prompt that already reaches it is a ValueError.
  index_t resolved_max_length(index_t prompt_length, index_t max_positions = 0) const {
    index_t m;
    if (max_new_tokens) {
      m = prompt_length + *max_new_tokens;
    } else if (max_length) {
      m = *max_length;
    } else {
      m = prompt_length + 20;
      if (max_positions > 0) m = std::min(m, max_positions);
    }
    BLIP2_CHECK(prompt_length < m, ValueError, "generate: the prompt holds ", prompt_length,
                " ids but max_length is ", m, "; set max_new_tokens");
    return m;
  }

  bool is_beam() const { return num_beams > 1; }
  bool is_eos(std::int64_t id) const { return std::find(eos_token_id.begin(), eos_token_id.end(), id) != eos_token_id.end(); }

  // Throws ValueError naming the first option out of range.
  void validate() const {
    BLIP2_CHECK(num_beams >= 1, ValueError, "generate: num_beams must be >= 1, got ", num_beams);
    BLIP2_CHECK(num_return_sequences >= 1, ValueError, "generate: num_return_sequences must be >= 1, got ",
                num_return_sequences);
    BLIP2_CHECK(do_sample || num_beams > 1 || num_return_sequences == 1, ValueError,
                "generate: num_return_sequences (", num_return_sequences,
                ") must be 1 for greedy search; use num_beams > 1 or do_sample");
    BLIP2_CHECK(num_beams == 1 || num_return_sequences <= num_beams, ValueError, "generate: num_return_sequences (",
                num_return_sequences, ") must not exceed num_beams (", num_beams, ")");
    BLIP2_CHECK(!max_new_tokens || *max_new_tokens >= 1, ValueError, "generate: max_new_tokens must be >= 1, got ",
                max_new_tokens.value_or(0));
    BLIP2_CHECK(!max_length || *max_length >= 1, ValueError, "generate: max_length must be >= 1, got ",
                max_length.value_or(0));
    BLIP2_CHECK(!min_new_tokens || *min_new_tokens >= 0, ValueError, "generate: min_new_tokens must be >= 0, got ",
                min_new_tokens.value_or(0));
    BLIP2_CHECK(min_length >= 0, ValueError, "generate: min_length must be >= 0, got ", min_length);
    BLIP2_CHECK(top_p > 0 && top_p <= 1, ValueError, "generate: top_p must be in (0, 1], got ", top_p);
    BLIP2_CHECK(top_k >= 0, ValueError, "generate: top_k must be >= 0 (0 turns it off), got ", top_k);
    BLIP2_CHECK(!do_sample || temperature > 0, ValueError, "generate: temperature must be > 0 with do_sample, got ",
                temperature, " (for greedy decoding set do_sample=false)");
    BLIP2_CHECK(repetition_penalty > 0, ValueError, "generate: repetition_penalty must be > 0, got ", repetition_penalty);
    BLIP2_CHECK(no_repeat_ngram_size >= 0, ValueError, "generate: no_repeat_ngram_size must be >= 0, got ",
                no_repeat_ngram_size);
    BLIP2_CHECK(std::isfinite(length_penalty) && std::isfinite(temperature) && std::isfinite(repetition_penalty) &&
                    std::isfinite(top_p),
                ValueError, "generate: length_penalty (", length_penalty, "), temperature (", temperature,
                "), repetition_penalty (", repetition_penalty, ") and top_p (", top_p, ") must be finite numbers");
    BLIP2_CHECK(!min_new_tokens || !max_new_tokens || *min_new_tokens <= *max_new_tokens, ValueError,
                "generate: min_new_tokens (", min_new_tokens.value_or(0), ") is above max_new_tokens (",
                max_new_tokens.value_or(0), ")");
  }
};

// What generate returns. sequences [N, L]: N = batch * num_return_sequences (the returned sequences
// of an input next to each other); for a decoder-only model each row starts with the prompt ids,
// for an encoder-decoder model with decoder_start_token_id. Finished rows are padded (greedy and
// sampling: pad_token_id; beam search: transformers' fill value, pad_token_id unless it is 0, else
// the first EOS id). sequences_scores: beam search only, the length-penalised score of each row.
struct GenerateOutput {
  Tensor<std::int64_t> sequences;
  std::vector<float> sequences_scores;
  index_t prompt_length = 0;  // columns of `sequences` that were given, not generated
  // Time in the language model: the prompt's forward pass (T5: the first decoder step) and every
  // step after it (the KV-cache reorders of beam search included).
  double prefill_seconds = 0, decode_seconds = 0;
  index_t decode_steps = 0;

  std::vector<std::vector<std::int64_t>> rows() const {
    const auto v = sequences.to_vector();
    const index_t n = sequences.size(0), l = sequences.size(1);
    std::vector<std::vector<std::int64_t>> out(static_cast<std::size_t>(n));
    for (index_t r = 0; r < n; ++r) out[std::size_t(r)].assign(v.begin() + r * l, v.begin() + (r + 1) * l);
    return out;
  }
};

}  // namespace blip2
