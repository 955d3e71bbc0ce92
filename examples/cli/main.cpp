// The blip2 command-line tool: captioning, visual question answering, chat and image-text
// retrieval with Hugging Face BLIP-2 checkpoints, fine-tuning them on one's own data, and the
// tools to check each step against transformers. Results go to stdout, progress and timings to stderr.
#include <cstdio>
#include <cstring>

#include <blip2/version.hpp>

#include "commands_generate.hpp"
#include "commands_retrieve.hpp"
#include "commands_tools.hpp"
#include "commands_train.hpp"

namespace {
const char* kUsage =
    "usage: blip2 <command> [options]       (DIR: a Hugging Face BLIP-2 model directory)\n"
    "       blip2 --version;  blip2 <command> --help;  options as --flag value or --flag=value\n"
    "  caption  --model DIR --image FILE... [--prompt TEXT] [--json]\n"
    "           captions (LAVIS settings: 5 beams, 8 to 30 new tokens)\n"
    "  vqa      --model DIR --image FILE --question TEXT\n"
    "           answers 'Question: {} Answer:' (LAVIS VQA settings: 5 beams, at most 10 new tokens)\n"
    "  chat     --model DIR --image FILE [--question TEXT...]\n"
    "           multi-turn: the earlier turns stay in the prompt; questions from stdin without --question\n"
    "  retrieve --model DIR --images FILE... (--texts TEXT... | --texts-file FILE) [--top-k K] [--json]\n"
    "           ITC for all pairs, ITM re-ranking of the top k (default 5), as a table or JSON\n"
    "  generate --model DIR --inputs IN.safetensors\n"
    "           ids in (pixel_values, input_ids[_with_image_tokens], attention_mask[...]), ids out (JSON)\n"
    "  tokenize --model DIR --text TEXT [--tokenizer lm|qformer]\n"
    "  preprocess --image FILE [--size N] --out OUT.safetensors   (resized_u8, pixel_values)\n"
    "  dump     --model DIR --inputs IN.safetensors --out OUT.safetensors   (every intermediate)\n"
    "           [--objective stage1|stage2 [--seed N]]: pre-training losses and gradients (LAVIS names)\n"
    "  train    --stage 1|2 --model DIR --output_dir OUT (--annotations FILE [--images ROOT] | --shards PATTERN)...\n"
    "           [--ratio R...] [--config FILE.yaml|json] [--resume [DIR]] [--init-qformer STAGE1_DIR]\n"
    "           [--prompt TEXT] [--on-bad-image skip|stop] [--iters-per-epoch N] [--threads N] [--<run key> VALUE]\n"
    "           [--eval-annotations FILE [--eval-images ROOT] [--eval-max-images N]] [--cache-image-features DIR]\n"
    "           fine-tunes stage 1 (ITC + ITM + ITG) or stage 2 (through the frozen OPT / Flan-T5) with LAVIS's\n"
    "           recipe; run keys as in LAVIS's run: section (init_lr, max_epoch, batch_size_train, ...,\n"
    "           '-' or '_'); --ratio mixes the datasets (annotation files first, then shards); images\n"
    "           default to the annotation file's folder; writes checkpoints, metrics.jsonl,\n"
    "           loss_curves.svg and OUT/final (a model directory); --resume alone continues OUT;\n"
    "           --eval-annotations evaluates after every epoch: stage 1 retrieval recall@1/5/10 (k_test),\n"
    "           stage 2 BLEU-4 and CIDEr-D of generated captions (num_beams, max_len, min_len);\n"
    "           --cache-image-features encodes every training image once (no augmentation) into DIR\n"
    "model options (caption, vqa, chat, generate, retrieve):\n";

void usage(std::FILE* f) {
  std::fputs(kUsage, f);
  std::fputs(blip2::cli::kCommonFlags, f);
  std::fputs(blip2::cli::kGenerationFlags, f);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "help" || command == "-h") {
    usage(stdout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::printf("blip2 %d.%d.%d\n", BLIP2_VERSION_MAJOR, BLIP2_VERSION_MINOR, BLIP2_VERSION_PATCH);
    return 0;
  }
  for (int i = 2; i < argc; ++i)  // `blip2 <command> --help`
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage(stdout);
      return 0;
    }
  using Command = int (*)(const blip2::cli::Args&);
  const std::pair<const char*, Command> commands[] = {
      {"caption", blip2::cli::caption},   {"vqa", blip2::cli::vqa},           {"chat", blip2::cli::chat},
      {"retrieve", blip2::cli::retrieve}, {"generate", blip2::cli::generate}, {"tokenize", blip2::cli::tokenize},
      {"preprocess", blip2::cli::preprocess}, {"dump", blip2::cli::dump}, {"train", blip2::cli::train}};
  for (const auto& [name, run] : commands) {
    if (command != name) continue;
    int rc = 1;
    try {
      rc = run(blip2::cli::Args(argc, argv, 2));
    } catch (const std::exception& e) {  // blip2::Error, or one from the standard library or a dependency
      std::fprintf(stderr, "blip2 %s: error: %s\n", command.c_str(), e.what());
      return 1;
    }
    // Output that could not be written (a full disk, a closed pipe) is an error, not a silent success.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "blip2 %s: error: writing the output to stdout failed\n", command.c_str());
      return 1;
    }
    return rc;
  }
  std::fprintf(stderr, "blip2: unknown command '%s'\n", command.c_str());
  usage(stderr);
  return 2;
}
