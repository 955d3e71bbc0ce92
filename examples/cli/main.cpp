// The blip2 command-line tool. Subcommands:
//   blip2 dump --model DIR --inputs IN.safetensors --out OUT.safetensors
#include <blip2/pipelines/dump.hpp>
#include <chrono>
#include <cstdio>

#include "args.hpp"

namespace {
const char* kUsage =
    "usage: blip2 <command> [options]\n"
    "  dump --model DIR --inputs IN.safetensors --out OUT.safetensors\n"
    "      run the model in DIR (Hugging Face layout) on fixture-named inputs and write every\n"
    "      intermediate output (vision, Q-Former, projection, logits, loss, ITM/ITC)\n";

int dump(const blip2::cli::Args& args) {
  const auto start = std::chrono::steady_clock::now();
  const auto names = blip2::dump_outputs(args.get("model"), args.get("inputs"), args.get("out"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "dump: wrote %zu tensors to %s in %.2f s\n", names.size(), args.get("out").c_str(), secs);
  for (const auto& n : names) std::printf("%s\n", n.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  try {
    const blip2::cli::Args args(argc, argv, 2);
    if (command == "dump") return dump(args);
    if (command == "--help" || command == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "blip2: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const blip2::Error& e) {
    std::fprintf(stderr, "blip2 %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
