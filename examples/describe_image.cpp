// Captions an image, answers a question about it and ranks texts against it: the pipelines API in
// a few lines. Needs a Hugging Face BLIP-2 directory (README: "Load a real BLIP-2 checkpoint").
//
//   describe_image models/blip2-opt-2.7b cat.jpg "what is the cat doing?"
//   describe_image models/blip2-itm-vit-g cat.jpg "a cat on a sofa" "a dog on a beach"
#include <blip2/blip2.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE [QUESTION | TEXT...]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1], image = argv[2];
  try {
    if (blip2::load_config(dir).is_retrieval()) {  // blip2-itm-vit-g: rank the texts
      const blip2::ImageTextRetrieval<> retrieval(dir);
      const std::vector<std::string> texts(argv + 3, argv + argc);
      for (const auto& m : retrieval.rank({image}, texts, blip2::index_t(texts.size())).per_image[0])
        std::printf("%7.3f  %s\n", m.score, texts[std::size_t(m.text)].c_str());
      return 0;
    }
    const blip2::ImageToText<blip2::cpu, blip2::bf16> pipe(dir);  // frozen weights stored as bfloat16
    std::printf("caption: %s\n", pipe.caption({image}).texts.at(0).c_str());
    if (argc > 3) std::printf("answer: %s\n", pipe.answer(image, argv[3]).c_str());
    return 0;
  } catch (const blip2::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
