#pragma once
// blip2 tokenize / preprocess / dump: the steps before and inside the model, for checking them
// against transformers.
#include <blip2/image/decode.hpp>
#include <blip2/image/normalize.hpp>
#include <blip2/io/safetensors.hpp>
#include <blip2/pipelines/dump.hpp>
#include <blip2/pipelines/processor.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common.hpp"

namespace blip2::cli {

// blip2 tokenize --model DIR --text TEXT [--tokenizer lm|qformer]: one JSON array of ids. `lm` is
// the model directory's own tokenizer (as the processor uses it, without image placeholders);
// `qformer` the BERT uncased WordPiece tokenizer with BLIP-2's [DEC] token, from DIR/vocab.txt.
inline int tokenize(const Args& a) {
  a.allow({"model", "text", "tokenizer"});
  const std::string dir = a.get("model"), which = a.get("tokenizer", "lm"), text = a.get("text");
  std::vector<std::int64_t> ids;
  if (which == "lm") {
    const Blip2Processor p(dir, load_config(dir));
    ids = p.tokenizer().encode(text);
  } else if (which == "qformer") {
    const auto vocab = std::filesystem::path(dir) / "vocab.txt";
    BLIP2_CHECK(std::filesystem::exists(vocab), IoError, dir, ": no Q-Former tokenizer: expected ", vocab.string(),
                " (the bert-base-uncased vocabulary)");
    ids = tokenizers::WordPieceTokenizer::qformer(vocab.string()).encode(text);
  } else {
    throw ValueError("--tokenizer: expected lm or qformer, got '" + which + "'");
  }
  std::printf("%s\n", json_text(ids).c_str());
  return 0;
}

// blip2 preprocess --image FILE --size N --out OUT.safetensors: resized_u8 [N, N, 3] (uint8, PIL's
// bicubic) and pixel_values [1, 3, N, N] (rescaled, CLIP-normalised), as BlipImageProcessor.
inline int preprocess(const Args& a) {
  a.allow({"image", "size", "out"});
  const long long size = a.has("size") ? a.get_int("size") : 224;
  BLIP2_CHECK(size >= 1 && size <= 8192, ValueError, "--size must be in 1..8192, got ", size);
  const auto resized = image::resize_bicubic(image::load_image(a.get("image")), int(size), int(size));
  const auto u8 = Tensor<std::uint8_t>::from_vector({size, size, 3}, resized.data);
  const auto pixels = image::to_pixel_values(resized);
  io::save_safetensors(a.get("out"), {io::TensorRecord::from("resized_u8", u8), io::TensorRecord::from("pixel_values", pixels)});
  std::fprintf(stderr, "preprocess: %s -> %s (%lldx%lld)\n", a.get("image").c_str(), a.get("out").c_str(), size, size);
  return 0;
}

// blip2 dump --model DIR --inputs IN.safetensors --out OUT.safetensors [--objective stage1|stage2 [--seed N]]
inline int dump(const Args& a) {
  a.allow({"model", "inputs", "out", "objective", "seed"});
  const Stopwatch watch;
  BLIP2_CHECK(!a.has("seed") || a.has("objective"), ValueError, "--seed draws stage-1 negatives: it needs --objective");
  const auto names = a.has("objective") ? dump_objective(a.get("model"), a.get("objective"), a.get("inputs"), a.get("out"),
                                                         a.has("seed") ? std::uint64_t(a.get_int("seed")) : 0)
                                        : dump_outputs(a.get("model"), a.get("inputs"), a.get("out"));
  std::fprintf(stderr, "dump: wrote %zu tensors to %s in %.2f s\n", names.size(), a.get("out").c_str(), watch.seconds());
  for (const auto& n : names) std::printf("%s\n", n.c_str());
  return 0;
}

}  // namespace blip2::cli
