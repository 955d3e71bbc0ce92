// The pipelines (processor, captioning, VQA, chat, retrieval) on complete model directories: the
// tiny Hugging Face fixtures with tokenizers that fit them (BLIP2_CLI_MODELS, assembled by
// tests/CMakeLists.txt). Each pipeline must give exactly what the model-level API gives for the
// inputs transformers' processor builds.
#include <blip2/pipelines/image_to_text.hpp>
#include <blip2/pipelines/retrieval.hpp>
#include <filesystem>
#include <fstream>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

const std::string kModels = std::string(BLIP2_CLI_MODELS) + "/";
const std::string kImages = std::string(BLIP2_TEST_DATA) + "/images/";

std::vector<std::int64_t> repeat(std::int64_t id, std::size_t n) { return std::vector<std::int64_t>(n, id); }

std::vector<std::int64_t> concat_ids(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A model directory holding only config.json and the weights.
std::string without_tokenizer(const std::string& model) {
  const auto dir = std::filesystem::temp_directory_path() / ("blip2-no-tokenizer-" + model);
  std::filesystem::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    std::filesystem::copy_file(kModels + model + "/" + f, dir / f, std::filesystem::copy_options::overwrite_existing);
  return dir.string();
}

}  // namespace

TEST_CASE("processor: prompts as the HF processor builds them, left or right padded") {
  const auto config = load_config(kModels + "opt");
  const Blip2Processor p(kModels + "opt", config);
  const auto& tok = p.tokenizer();
  const std::string q = "Question: what is the cat doing? Answer:";
  const auto text = tok.encode(q);
  REQUIRE(!text.empty());
  CHECK(text.front() == 2);  // OPT's "</s>" BOS
  CHECK(p.encode(q) == concat_ids(repeat(127, 8), text));

  const auto left = p.encode({"a cat", "a photo of a cat"}, 1);
  const auto right = p.encode({"a cat", "a photo of a cat"}, 1, Blip2Processor::Padding::Right);
  const auto short_row = p.encode("a cat"), long_row = p.encode("a photo of a cat");
  const index_t L = index_t(long_row.size()), pad = L - index_t(short_row.size());
  REQUIRE(pad > 0);
  CHECK(to_string(left.input_ids.shape()) == "[2," + std::to_string(L) + "]");
  const auto li = left.input_ids.to_vector(), lm = left.attention_mask.to_vector();
  const auto ri = right.input_ids.to_vector(), rm = right.attention_mask.to_vector();
  CHECK(std::vector<std::int64_t>(li.begin(), li.begin() + L) == concat_ids(repeat(1, std::size_t(pad)), short_row));
  CHECK(std::vector<std::int64_t>(lm.begin(), lm.begin() + L) ==
        concat_ids(repeat(0, std::size_t(pad)), repeat(1, short_row.size())));
  CHECK(std::vector<std::int64_t>(ri.begin(), ri.begin() + L) == concat_ids(short_row, repeat(1, std::size_t(pad))));
  CHECK(std::vector<std::int64_t>(rm.begin(), rm.begin() + L) ==
        concat_ids(repeat(1, short_row.size()), repeat(0, std::size_t(pad))));
  CHECK(std::vector<std::int64_t>(li.begin() + L, li.end()) == long_row);

  // decode skips special tokens, the image placeholder and ids the tokenizer does not have (127
  // is the model's 128th row, past this tokenizer's 127 tokens), and trims.
  const auto cat = tok.encode(" a cat", false);
  CHECK(p.decode(concat_ids({127, 2, 1}, concat_ids(cat, {2, 1000}))) == "a cat");
  CHECK_THROWS_AS(p.encode(std::vector<std::string>{}, 1), ValueError);
}

TEST_CASE("processor: images through preprocessor_config.json, or the vision config's size") {
  const auto config = load_config(kModels + "opt");
  const Blip2Processor p(kModels + "opt", config);
  CHECK(p.image_config().width == config.vision.image_size);
  const auto pixels = p.pixel_values({kImages + "chelsea.png", kImages + "coffee.png"});
  CHECK(to_string(pixels.shape()) == "[2,3,30,30]");
  check_activation("pixel_values", pixels.slice(0, 0, 1).contiguous(), image::preprocess(kImages + "chelsea.png", 30), 0);

  const auto dir = std::filesystem::temp_directory_path() / "blip2-preprocessor-config";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "preprocessor_config.json")
      << R"({"size": {"height": 20, "width": 16}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]})";
  const auto c = ImageProcessorConfig::load(dir.string(), 224);
  CHECK(c.height == 20);
  CHECK(c.width == 16);
  CHECK(c.std[0] == 0.25f);
  std::ofstream(dir / "preprocessor_config.json") << R"({"image_mean": [0.5, 0.5]})";
  CHECK_THROWS_WITH_AS(ImageProcessorConfig::load(dir.string(), 224), doctest::Contains("image_mean must hold 3 values"), IoError);
  CHECK_THROWS_WITH_AS(p.pixel_values({kImages + "truncated.jpg"}), doctest::Contains("truncated.jpg"), Error);
}

TEST_CASE("processor: a directory without tokenizer files says which file it expected and where") {
  for (const auto& [model, expected] : {std::pair<std::string, std::string>{"opt", "vocab.json and merges.txt"},
                                        {"t5", "spiece.model"},
                                        {"itm", "vocab.txt"}}) {
    const auto dir = without_tokenizer(model);
    const Blip2Processor p(dir, load_config(dir));
    CHECK(!p.has_tokenizer());
    CHECK_THROWS_WITH_AS(p.encode("a cat"), doctest::Contains(expected.c_str()), IoError);
    CHECK_THROWS_WITH_AS(p.encode("a cat"), doctest::Contains(dir.c_str()), IoError);
  }
}

TEST_CASE("captioning with OPT: the ids of model-level generate with LAVIS's settings, decoded") {
  const ImageToText<> pipe(kModels + "opt");
  const auto o = presets::caption(pipe.default_options());
  CHECK(o.num_beams == 5);
  CHECK(*o.max_new_tokens == 30);
  CHECK(*o.min_new_tokens == 8);
  const std::vector<std::string> images = {kImages + "astronaut.png", kImages + "rocket.jpg"};
  const auto g = pipe.caption(images);
  REQUIRE(g.texts.size() == 2);

  Blip2OPT<float> model(pipe.config());
  REQUIRE(io::load_parameters(model, io::Checkpoint::open(kModels + "opt")).empty());
  const auto ref = generate(model, pipe.processor().pixel_values(images), {}, {}, o);
  CHECK(g.output.rows() == ref.rows());
  for (std::size_t i = 0; i < 2; ++i) {
    const auto row = ref.rows()[i];
    CHECK(g.texts[i] == pipe.processor().decode({row.begin() + ref.prompt_length, row.end()}));
  }
  CHECK(g.timing.vision > 0);
  CHECK(g.timing.decode_steps >= 7);  // min_new_tokens 8: the first token comes from the prefill

  // A prompt goes through the processor: placeholders, "</s>", the prompt's tokens.
  const auto prompted = pipe.caption({images[0]}, "a photo of", o);
  const auto prompt_ids = pipe.processor().encode("a photo of");
  const auto row = prompted.output.rows()[0];
  CHECK(std::vector<std::int64_t>(row.begin(), row.begin() + index_t(prompt_ids.size())) == prompt_ids);
}

TEST_CASE("VQA and chat: the prompt formats, the earlier turns in the prompt") {
  const ImageToText<> pipe(kModels + "opt");
  const auto o = presets::vqa(pipe.default_options());
  CHECK(o.length_penalty == 0.0);
  CHECK(*o.max_new_tokens == 10);
  const auto g = pipe.answer(kImages + "chelsea.png", "what is the cat doing?", o);
  const auto prompt = pipe.processor().encode("Question: what is the cat doing? Answer:");
  CHECK(g.output.prompt_length == index_t(prompt.size()));
  const auto row = g.output.rows()[0];
  CHECK(std::vector<std::int64_t>(row.begin(), row.begin() + g.output.prompt_length) == prompt);
  CHECK(pipe.answer(kImages + "chelsea.png", "what is the cat doing?") == g.texts[0]);

  auto chat = pipe.chat(kImages + "chelsea.png");
  const auto first = chat.ask("what is the cat doing?", o);
  CHECK(first.texts == g.texts);  // the same image and prompt
  const auto second = chat.ask("what color is it?", o);
  const auto expected = pipe.processor().encode("Question: what is the cat doing? Answer: " + first.texts[0] +
                                                ". Question: what color is it? Answer:");
  const auto row2 = second.output.rows()[0];
  CHECK(std::vector<std::int64_t>(row2.begin(), row2.begin() + second.output.prompt_length) == expected);
  CHECK(chat.history().size() == 2);
  CHECK(second.timing.vision == 0);  // the image was encoded once

  CHECK_THROWS_WITH_AS(pipe.answer(kImages + "chelsea.png", "  "), doctest::Contains("question is empty"), ValueError);
  auto too_long = o;
  too_long.max_new_tokens = pipe.config().opt.max_position_embeddings;  // the prompt leaves less room than that
  CHECK_THROWS_WITH_AS(pipe.caption({kImages + "chelsea.png"}, "", too_long), doctest::Contains("max_position_embeddings"),
                       ValueError);
  CHECK_THROWS_WITH_AS(ImageToText<>(kModels + "itm"), doctest::Contains("retrieval model"), ValueError);
}

TEST_CASE("Flan-T5 pipeline: the prompt through the encoder, the decoder's new tokens decoded") {
  const ImageToText<> pipe(kModels + "t5");
  CHECK(pipe.is_t5());
  auto o = presets::caption(pipe.default_options());
  o.num_return_sequences = 2;
  const auto g = pipe.caption({kImages + "astronaut.png"}, "a photo of", o);
  CHECK(g.texts.size() == 2);
  Blip2T5<float> model(pipe.config());
  REQUIRE(io::load_parameters(model, io::Checkpoint::open(kModels + "t5")).empty());
  const auto batch = pipe.processor().encode({"a photo of"}, pipe.config().t5.pad_token_id);
  CHECK(batch.input_ids.to_vector().back() == 1);  // T5 appends "</s>"
  const auto ref = generate(model, pipe.processor().pixel_values({kImages + "astronaut.png"}), batch.input_ids,
                            batch.attention_mask, o);
  CHECK(g.output.rows() == ref.rows());
  CHECK(ref.prompt_length == 1);  // decoder_start_token_id
}

TEST_CASE("bf16-stored weights: the pipeline runs the bf16 model") {
  const ImageToText<cpu, bf16> pipe(kModels + "opt");
  GenerationOptions o = pipe.default_options();
  o.max_new_tokens = 6;
  const auto g = pipe.caption({kImages + "chelsea.png"}, "", o);
  Blip2OPT<float, cpu, bf16> model(pipe.config());
  REQUIRE(io::load_parameters(model, io::Checkpoint::open(kModels + "opt")).empty());
  CHECK(g.output.rows() == generate(model, pipe.processor().pixel_values({kImages + "chelsea.png"}), {}, {}, o).rows());
}

TEST_CASE("retrieval: ITC for all pairs, ITM re-scoring of the top k, LAVIS's final score") {
  const ImageTextRetrieval<> r(kModels + "itm");
  const std::vector<std::string> images = {kImages + "chelsea.png", kImages + "coffee.png", kImages + "rocket.jpg"};
  const std::vector<std::string> texts = {"a cat", "a cup of coffee", "a rocket on a launch pad", "a dog"};
  const auto ranking = r.rank(images, texts, 2);

  const auto pixels = r.processor().pixel_values(images);
  const auto batch = r.processor().encode(texts, 0, Blip2Processor::Padding::Right);
  NoGrad no_grad;
  const auto itc = r.model().itc(pixels, batch.input_ids, batch.attention_mask);
  check_activation("itc", ranking.itc, itc.logits_per_image);
  REQUIRE(ranking.per_image.size() == 3);
  REQUIRE(ranking.per_text.size() == 4);
  const auto sims = itc.logits_per_image.to_vector();
  for (index_t i = 0; i < 3; ++i) {
    const auto& list = ranking.per_image[std::size_t(i)];
    REQUIRE(list.size() == 2);
    // the two texts with the highest ITC
    std::vector<index_t> order = {0, 1, 2, 3};
    std::sort(order.begin(), order.end(), [&](index_t a, index_t b) { return sims[std::size_t(i * 4 + a)] > sims[std::size_t(i * 4 + b)]; });
    std::vector<index_t> got = {list[0].text, list[1].text};
    std::sort(got.begin(), got.end());
    std::vector<index_t> want = {order[0], order[1]};
    std::sort(want.begin(), want.end());
    CHECK(got == want);
    CHECK(list[0].score >= list[1].score);
    for (const auto& m : list) {
      CHECK(m.image == i);
      const auto one = [&](const Tensor<std::int64_t>& t) { return t.slice(0, m.text, m.text + 1).contiguous(); };
      const auto itm = r.model().itm(pixels.slice(0, i, i + 1).contiguous(), one(batch.input_ids), one(batch.attention_mask));
      CHECK(m.itm == doctest::Approx(itm.to_vector()[1]).epsilon(1e-5));
      CHECK(m.score == doctest::Approx(m.itm + m.itc));
    }
  }
  CHECK(r.rank(images, texts, 10).per_text[0].size() == 3);  // k capped by the candidates
  CHECK_THROWS_WITH_AS(r.rank(images, {"a cat", ""}, 2), doctest::Contains("text 1 is empty"), ValueError);
  CHECK_THROWS_WITH_AS(ImageTextRetrieval<>(kModels + "opt"), doctest::Contains("not an image-text retrieval model"), ValueError);
}
