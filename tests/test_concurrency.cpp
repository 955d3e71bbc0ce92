// One loaded pipeline shared by several threads (issue #14): 4 std::threads call the same const
// ImageToText / ImageTextRetrieval at once, each with its own mix of images, prompts, questions and
// generation settings, and every result must equal, bit for bit (ids, beam scores, texts, scores),
// what the same call gives when the calls run one after another. For ThreadSanitizer, configure with
// -DCMAKE_CXX_FLAGS=-fsanitize=thread -DBLIP2_OPENMP=OFF (libgomp is not instrumented).
#include <blip2/pipelines/image_to_text.hpp>
#include <blip2/pipelines/retrieval.hpp>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <thread>

#include "model_support.hpp"

using namespace blip2;

namespace {

const std::string kModels = std::string(BLIP2_CLI_MODELS) + "/";
const std::string kImages = std::string(BLIP2_TEST_DATA) + "/images/";

constexpr int kThreads = 4;

const std::vector<std::string> kImageFiles = {"chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg",
                                              "camera.png",  "logo.png",   "retina.jpg",    "palette_color.png"};
const std::vector<std::string> kPrompts = {"", "a photo of", "a picture of a", "this is"};
const std::vector<std::string> kQuestions = {"what is the cat doing?", "what color is it?", "how many cups are there?",
                                             "where is the rocket?", "is it day or night?"};

// What one call returned, in a form that compares exactly.
struct Result {
  std::vector<std::vector<std::int64_t>> rows;
  std::vector<std::uint32_t> score_bits;  // sequences_scores / retrieval scores, bit patterns
  std::vector<std::string> texts;
  bool operator==(const Result& o) const { return rows == o.rows && score_bits == o.score_bits && texts == o.texts; }
};

std::vector<std::uint32_t> bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

Result result_of(const TextGeneration& g) { return {g.output.rows(), bits(g.output.sequences_scores), g.texts}; }

using Call = std::function<Result()>;

// Runs calls[t] (one list per thread) on kThreads threads started together; returns results[t][j].
std::vector<std::vector<Result>> run_concurrently(const std::vector<std::vector<Call>>& calls) {
  std::vector<std::vector<Result>> results(calls.size());
  std::vector<std::exception_ptr> errors(calls.size());
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < calls.size(); ++t)
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < int(calls.size())) std::this_thread::yield();  // all start at once
      try {
        for (const auto& call : calls[t]) results[t].push_back(call());
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

void check_same(const std::vector<std::vector<Call>>& calls) {
  std::vector<std::vector<Result>> serial(calls.size());
  for (std::size_t t = 0; t < calls.size(); ++t)
    for (const auto& call : calls[t]) serial[t].push_back(call());
  const auto concurrent = run_concurrently(calls);
  REQUIRE(concurrent.size() == serial.size());
  std::size_t total = 0, differing = 0;
  for (std::size_t t = 0; t < calls.size(); ++t) {
    REQUIRE(concurrent[t].size() == serial[t].size());
    for (std::size_t j = 0; j < serial[t].size(); ++j) {
      ++total;
      REQUIRE(!serial[t][j].rows.empty());
      if (!(concurrent[t][j] == serial[t][j])) {
        ++differing;
        INFO("thread " << t << ", call " << j);
        CHECK(concurrent[t][j].rows == serial[t][j].rows);
        CHECK(concurrent[t][j].score_bits == serial[t][j].score_bits);
        CHECK(concurrent[t][j].texts == serial[t][j].texts);
      }
    }
  }
  // The calls must not all give the same thing, or a mixed-up result would go unnoticed.
  std::vector<Result> distinct;
  for (const auto& list : serial)
    for (const auto& r : list)
      if (std::find(distinct.begin(), distinct.end(), r) == distinct.end()) distinct.push_back(r);
  MESSAGE(total << " calls on " << calls.size() << " threads, " << distinct.size() << " distinct results, " << differing
                << " differing from the serial run");
  CHECK(distinct.size() * 2 > total);
  CHECK(differing == 0);
}

const std::string& image_file(std::size_t i) {
  static const auto paths = [] {
    std::vector<std::string> p;
    for (const auto& f : kImageFiles) p.push_back(kImages + f);
    return p;
  }();
  return paths[i % paths.size()];
}

// Per thread t, `n` calls mixing captions (with and without a prompt, beam search and greedy, one
// or two images) and VQA (LAVIS's settings and greedy), and one two-turn chat.
std::vector<std::vector<Call>> generation_calls(const ImageToText<>& pipe, int n) {
  auto beams = presets::caption(pipe.default_options());
  beams.max_new_tokens = 6;
  beams.min_new_tokens = 2;
  beams.num_beams = 3;
  auto greedy = pipe.default_options();
  greedy.max_new_tokens = 8;
  auto vqa = presets::vqa(pipe.default_options());
  vqa.max_new_tokens = 5;
  auto vqa_greedy = vqa;
  vqa_greedy.num_beams = 1;

  std::vector<std::vector<Call>> calls(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t) {
    for (std::size_t j = 0; j < std::size_t(n); ++j) {
      const std::size_t k = t * 7 + j;  // each thread its own sequence of images and prompts
      const auto& img = image_file(k), &img2 = image_file(k * 3 + 1);
      const auto& prompt = kPrompts[k % kPrompts.size()];
      const auto& question = kQuestions[(k + t) % kQuestions.size()];
      switch (j % 5) {
        case 0: calls[t].push_back([&pipe, img, prompt, beams] { return result_of(pipe.caption({img}, prompt, beams)); }); break;
        case 1: calls[t].push_back([&pipe, img, question, vqa] { return result_of(pipe.answer(img, question, vqa)); }); break;
        case 2:
          calls[t].push_back([&pipe, img, img2, prompt, greedy] { return result_of(pipe.caption({img, img2}, prompt, greedy)); });
          break;
        case 3:
          calls[t].push_back([&pipe, img, question, vqa_greedy] { return result_of(pipe.answer(img, question, vqa_greedy)); });
          break;
        default:
          calls[t].push_back([&pipe, img, question, vqa] {
            auto chat = pipe.chat(img);
            auto r = result_of(chat.ask(question, vqa));
            const auto second = result_of(chat.ask("and then?", vqa));
            r.rows.insert(r.rows.end(), second.rows.begin(), second.rows.end());
            r.texts.insert(r.texts.end(), second.texts.begin(), second.texts.end());
            return r;
          });
      }
    }
  }
  return calls;
}

}  // namespace

TEST_CASE("concurrency: one OPT pipeline, 4 threads of captions, VQA and chat give the serial results") {
  const ImageToText<> pipe(kModels + "opt");
  check_same(generation_calls(pipe, 30));
}

TEST_CASE("concurrency: one Flan-T5 pipeline, 4 threads give the serial results") {
  const ImageToText<> pipe(kModels + "t5");
  check_same(generation_calls(pipe, 10));
}

TEST_CASE("concurrency: one retrieval pipeline, 4 threads of rankings give the serial results") {
  const ImageTextRetrieval<> r(kModels + "itm");
  const std::vector<std::string> texts = {"a cat", "a cup of coffee", "a rocket on a launch pad", "a dog", "an astronaut"};
  std::vector<std::vector<Call>> calls(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t)
    for (std::size_t j = 0; j < 6; ++j) {
      const std::vector<std::string> images = {image_file(t + j), image_file(t * 3 + j + 1)};
      const std::vector<std::string> some(texts.begin() + std::ptrdiff_t((t + j) % 2), texts.end());
      calls[t].push_back([&r, images, some, k = index_t(1 + j % 3)] {
        const auto ranking = r.rank(images, some, k);
        Result res;
        std::vector<float> scores = ranking.itc.to_vector();
        for (const auto& list : ranking.per_image)
          for (const auto& m : list) {
            res.rows.push_back({m.image, m.text});
            scores.insert(scores.end(), {m.itc, m.itm, m.score});
          }
        res.score_bits = bits(scores);
        return res;
      });
    }
  check_same(calls);
}
