#pragma once
// blip2 caption / vqa / chat / generate: the generative checkpoints (OPT, Flan-T5).
#include <blip2/io/safetensors.hpp>
#include <blip2/pipelines/image_to_text.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "generation_flags.hpp"

namespace blip2::cli {

template <class W>
std::unique_ptr<ImageToText<cpu, W>> load_image_to_text(const Args& a) {
  const Stopwatch watch;
  auto pipe = std::make_unique<ImageToText<cpu, W>>(a.get("model"));
  std::fprintf(stderr, "loaded %s (BLIP-2 with %s, %s weights) in %.2f s\n", a.get("model").c_str(),
               pipe->config().text_model_type.c_str(), std::string(dtype_name<W>).c_str(), watch.seconds());
  return pipe;
}

inline void report(const char* what, const PipelineTiming& t, index_t rows) {
  std::fprintf(stderr,
               "%s: preprocess %.3f s, vision %.3f s, q-former %.3f s, prefill %.3f s, decode %.3f s "
               "(%lld steps x %lld rows, %.2f tokens/s)\n",
               what, t.preprocess, t.vision, t.qformer, t.prefill, t.decode, (long long)t.decode_steps, (long long)rows,
               t.decode > 0 ? double(t.decode_steps) / t.decode : 0.0);
}

inline std::set<std::string> generation_flag_names() {
  return {"num-beams",  "max-new-tokens", "min-new-tokens", "length-penalty", "repetition-penalty",
          "no-repeat-ngram-size", "num-return-sequences", "eos-token-id", "do-sample", "temperature",
          "top-k", "top-p", "seed"};
}
inline std::set<std::string> with_generation_flags(std::set<std::string> s) {
  for (const auto& f : generation_flag_names()) s.insert(f);
  for (const auto& f : common_flag_names()) s.insert(f);
  return s;
}

// blip2 caption --model DIR --image FILE... [--prompt TEXT] [--json]
inline int caption(const Args& a) {
  a.allow(with_generation_flags({"model", "image", "prompt", "json"}));
  const auto images = existing_files(a, "image");
  a.flag("json");
  apply_generation_flags(presets::caption({}), a);  // the flags' values, checked before the load
  return with_weight_type(a, [&](auto w) {
    const auto pipe = load_image_to_text<decltype(w)>(a);
    const auto o = apply_generation_flags(presets::caption(pipe->default_options()), a);
    const auto g = pipe->caption(images, a.get("prompt", ""), o);
    report("caption", g.timing, g.output.sequences.size(0));
    const std::size_t per = g.texts.size() / images.size();
    if (a.flag("json")) {
      nlohmann::json out = nlohmann::json::array();
      for (std::size_t i = 0; i < images.size(); ++i)
        out.push_back({{"image", images[i]},
                       {"captions", std::vector<std::string>(g.texts.begin() + i * per, g.texts.begin() + (i + 1) * per)}});
      std::printf("%s\n", json_text(out, 2).c_str());
    } else {
      for (std::size_t i = 0; i < g.texts.size(); ++i) {
        if (images.size() > 1) std::printf("%s\t", images[i / per].c_str());
        std::printf("%s\n", g.texts[i].c_str());
      }
    }
    return 0;
  });
}

// blip2 vqa --model DIR --image FILE --question TEXT
inline int vqa(const Args& a) {
  a.allow(with_generation_flags({"model", "image", "question"}));
  BLIP2_CHECK(existing_files(a, "image").size() == 1, ValueError, "--image takes one file");
  a.get("question");
  apply_generation_flags(presets::vqa({}), a);
  return with_weight_type(a, [&](auto w) {
    const auto pipe = load_image_to_text<decltype(w)>(a);
    const auto o = apply_generation_flags(presets::vqa(pipe->default_options()), a);
    const auto g = pipe->answer(a.get("image"), a.get("question"), o);
    report("vqa", g.timing, g.output.sequences.size(0));
    for (const auto& t : g.texts) std::printf("%s\n", t.c_str());
    return 0;
  });
}

// blip2 chat --model DIR --image FILE [--question TEXT...]: the questions given, else one per line
// from stdin until an empty line or end of input. Each answer is printed as it comes.
inline int chat(const Args& a) {
  a.allow(with_generation_flags({"model", "image", "question"}));
  BLIP2_CHECK(existing_files(a, "image").size() == 1, ValueError, "--image takes one file");
  apply_generation_flags(presets::vqa({}), a);
  return with_weight_type(a, [&](auto w) {
    const auto pipe = load_image_to_text<decltype(w)>(a);
    const auto o = apply_generation_flags(presets::vqa(pipe->default_options()), a);
    auto conversation = pipe->chat(a.get("image"));
    auto turn = [&](const std::string& q) {
      const auto g = conversation.ask(q, o);
      report("chat", g.timing, g.output.sequences.size(0));
      std::printf("%s\n", g.texts.at(0).c_str());
      std::fflush(stdout);
    };
    if (a.has("question")) {
      for (const auto& q : a.all("question")) turn(q);
      return 0;
    }
    std::string line;
    while (true) {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, line) || line.empty()) break;
      turn(line);
    }
    return 0;
  });
}

// blip2 generate --model DIR --inputs IN.safetensors: ids in, ids out (one JSON array of id arrays;
// for OPT each row starts with the prompt, as transformers returns it).
inline int generate(const Args& a) {
  a.allow(with_generation_flags({"model", "inputs"}));
  return with_weight_type(a, [&](auto w) {
    const auto pipe = load_image_to_text<decltype(w)>(a);
    const auto in = io::SafeTensorsFile::open(a.get("inputs"));
    BLIP2_CHECK(in.contains("pixel_values"), IoError, in.path(), ": no tensor 'pixel_values'");
    auto ids_named = [&](const char* with_image, const char* plain) {
      if (in.contains(with_image)) return in.load<std::int64_t>(with_image);
      if (in.contains(plain)) return in.load<std::int64_t>(plain);
      return Tensor<std::int64_t>();
    };
    const auto ids = ids_named("input_ids_with_image_tokens", "input_ids");
    const auto mask = ids_named("attention_mask_with_image_tokens", "attention_mask");
    const auto o = apply_generation_flags(pipe->default_options(), a);
    const auto out = pipe->generate_ids(in.load<float>("pixel_values"), ids, mask, o);
    report("generate", PipelineTiming().set_generation(out), out.sequences.size(0));
    std::printf("%s\n", json_text(out.rows()).c_str());
    return 0;
  });
}

}  // namespace blip2::cli
