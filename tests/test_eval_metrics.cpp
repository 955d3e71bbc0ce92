// Evaluation metrics: BLEU-1..4 and CIDEr-D against pycocoevalcap on the seeded pairs of
// tests/data/caption_metrics/reference.json (scripts/check_caption_metrics.py), coco_tokenize
// against pycocoevalcap's Java PTBTokenizer, hand-checkable cases, LAVIS's retrieval recall on a
// hand-made score matrix, and bad input.
#include <doctest/doctest.h>

#include <blip2/eval/caption_metrics.hpp>
#include <blip2/eval/retrieval_metrics.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace blip2;
using namespace blip2::eval;

namespace {

nlohmann::json load_reference() {
  std::ifstream in(std::string(BLIP2_TEST_DATA) + "/caption_metrics/reference.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

struct Pairs {
  std::vector<std::string> candidates;
  std::vector<std::vector<std::string>> references;
};

Pairs pairs_of(const nlohmann::json& reference) {
  Pairs p;
  for (const auto& pair : reference.at("pairs")) {
    p.candidates.push_back(pair.at(0).get<std::string>());
    p.references.push_back(pair.at(1).get<std::vector<std::string>>());
  }
  return p;
}

constexpr double kTol = 1e-6;

}  // namespace

TEST_CASE("BLEU-1..4 and CIDEr-D equal pycocoevalcap's on the seeded pairs") {
  const nlohmann::json reference = load_reference();
  const Pairs p = pairs_of(reference);
  MESSAGE("pycocoevalcap ", reference.at("pycocoevalcap").get<std::string>(), ", ", p.candidates.size(), " images");

  const CaptionScores scores = score_captions(p.candidates, p.references);
  const auto bleu_ref = reference.at("bleu").at("corpus").get<std::vector<double>>();
  for (int n = 0; n < 4; ++n) CHECK_MESSAGE(std::abs(scores.bleu[n] - bleu_ref[n]) < kTol, "BLEU-", n + 1, ": ", scores.bleu[n], " vs ", bleu_ref[n]);
  const double cider_ref = reference.at("cider").at("corpus").get<double>();
  CHECK_MESSAGE(std::abs(scores.cider - cider_ref) < kTol, "CIDEr-D: ", scores.cider, " vs ", cider_ref);

  const auto cider_per_image = reference.at("cider").at("per_image").get<std::vector<double>>();
  REQUIRE(scores.per_image_cider.size() == cider_per_image.size());
  double worst_cider = 0;
  for (std::size_t i = 0; i < cider_per_image.size(); ++i)
    worst_cider = std::max(worst_cider, std::abs(scores.per_image_cider[i] - cider_per_image[i]));
  MESSAGE("largest per-image CIDEr-D difference ", worst_cider);
  CHECK(worst_cider < kTol);

  const BleuScores bleu_scores = bleu(p.candidates, p.references);
  const auto bleu_per_image = reference.at("bleu").at("per_image").get<std::vector<std::vector<double>>>();
  REQUIRE(bleu_scores.per_image.size() == bleu_per_image.size());
  double worst_bleu = 0;
  for (std::size_t i = 0; i < bleu_per_image.size(); ++i)
    for (int n = 0; n < 4; ++n) worst_bleu = std::max(worst_bleu, std::abs(bleu_scores.per_image[i][n] - bleu_per_image[i][n]));
  MESSAGE("largest per-image BLEU difference ", worst_bleu);
  CHECK(worst_bleu < kTol);
  for (int n = 0; n < 4; ++n) CHECK(bleu_scores.corpus[n] == scores.bleu[n]);
  CHECK(cider_d(p.candidates, p.references).corpus == scores.cider);
}

TEST_CASE("coco_tokenize matches pycocoevalcap's PTBTokenizer on the reference captions") {
  const nlohmann::json reference = load_reference();
  if (!reference.contains("tokenizer")) {
    MESSAGE("reference.json was written without java: no tokenizer cases");
    return;
  }
  for (const auto& pair : reference.at("tokenizer")) {
    const std::string raw = pair.at(0).get<std::string>(), ptb = pair.at(1).get<std::string>();
    CHECK_MESSAGE(coco_tokenize(raw) == ptb, raw, " -> '", coco_tokenize(raw), "', PTB '", ptb, "'");
  }
}

TEST_CASE("caption metrics: hand-checkable cases") {
  SUBCASE("a candidate equal to its references scores BLEU 1") {
    const auto s = bleu({"a dog runs on the beach"}, {{"a dog runs on the beach", "a dog runs on the beach"}});
    for (double b : s.corpus) CHECK(b == doctest::Approx(1.0).epsilon(1e-9));
  }
  SUBCASE("brevity penalty from the closest reference length, ties to the shorter") {
    // 3 tokens; references of 2 and 4 tokens are equally close and the shorter wins: no penalty
    // (the longer would give exp(1 - 4/3)).
    const auto tie = bleu({"a b c"}, {{"a b", "a b c d"}});
    CHECK(tie.corpus[0] == doctest::Approx(1.0).epsilon(1e-9));
    // 2 tokens against a closest reference of 4: precisions 1, penalty exp(1 - 4/2).
    const auto short_candidate = bleu({"a b"}, {{"a b c d", "a b c d e f g"}});
    CHECK(short_candidate.corpus[0] == doctest::Approx(std::exp(-1.0)).epsilon(1e-9));
    CHECK(short_candidate.corpus[1] == doctest::Approx(std::exp(-1.0)).epsilon(1e-9));
  }
  SUBCASE("candidate n-gram counts are clipped by the most any one reference holds") {
    // "the the the the": 4 unigrams, "the" at most twice in one reference -> precision 2/4.
    const auto s = bleu({"the the the the"}, {{"the cat the mat", "the cat"}});
    CHECK(s.corpus[0] == doctest::Approx(0.5).epsilon(1e-9));
  }
  SUBCASE("CIDEr-D: idf from the references, cosines averaged over orders 1-4, x10") {
    // Each candidate repeats its image's only reference; every n-gram but "a" (in both images'
    // references: idf 0) has idf log 2. Cosine 1 on each order that has n-grams.
    const auto four = cider_d({"a red car parked", "a blue bird flying"}, {{"a red car parked"}, {"a blue bird flying"}});
    CHECK(four.per_image[0] == doctest::Approx(10.0).epsilon(1e-9));
    CHECK(four.corpus == doctest::Approx(10.0).epsilon(1e-9));
    const auto three = cider_d({"a red car", "a blue bird"}, {{"a red car"}, {"a blue bird"}});  // no 4-grams
    CHECK(three.per_image[0] == doctest::Approx(7.5).epsilon(1e-9));
    // A candidate whose n-grams occur in every image's references scores 0.
    CHECK(cider_d({"a", "a"}, {{"a"}, {"a"}}).corpus == 0.0);
  }
  SUBCASE("CIDEr-D: Gaussian length penalty, sigma 6") {
    // 8 tokens against a 4-token reference holding its first four: cosines 4/(sqrt 8 * 2),
    // 3/(sqrt 7 * sqrt 3), 2/(sqrt 6 * sqrt 2), 1/sqrt 5 (all weights log 2), length gap 4.
    const auto s = cider_d({"x y z w v u t s", "p q"}, {{"x y z w"}, {"p q"}});
    const double cosines = 4 / (std::sqrt(8.0) * 2) + 3 / std::sqrt(21.0) + 2 / std::sqrt(12.0) + 1 / std::sqrt(5.0);
    CHECK(s.per_image[0] == doctest::Approx(10 * std::exp(-16.0 / 72.0) * cosines / 4).epsilon(1e-9));
  }
  SUBCASE("CIDEr-D: candidate weights clipped by the reference's") {
    // "x x y" against "x y": the unigram x weighs 2 log 2 in the candidate, clipped to log 2.
    const auto s = cider_d({"x x y", "p q"}, {{"x y"}, {"p q"}});
    const double l = std::log(2.0);
    const double unigram = (l * l + l * l) / (std::sqrt(5 * l * l) * std::sqrt(2 * l * l));  // min(2l, l) l + l l
    const double bigram = (l * l) / (std::sqrt(2 * l * l) * l);                                // "x y" only
    CHECK(s.per_image[0] == doctest::Approx(10 * std::exp(-1.0 / 72.0) * (unigram + bigram) / 4).epsilon(1e-9));
  }
  SUBCASE("split_tokens splits where Python's str.split() does") {
    CHECK(split_tokens("  a\tb\x1c" "c\xc2\xa0" "d\xe3\x80\x80" "e  ") == std::vector<std::string>{"a", "b", "c", "d", "e"});
    CHECK(split_tokens("caf\xc3\xa9 x").size() == 2);
  }
}

TEST_CASE("caption metrics: bad input") {
  CHECK_THROWS_AS(score_captions({}, {}), ValueError);
  CHECK_THROWS_AS(score_captions({"a cat"}, {{"a cat"}, {"a dog"}}), ValueError);
  CHECK_THROWS_AS(bleu({"a cat"}, {{}}), ValueError);
  CHECK_THROWS_AS(cider_d({"a cat"}, {{"a cat"}}, 0.0), ValueError);
  try {
    score_captions({"a", "b"}, {{"a"}, {}});
    FAIL("no error");
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()).find("image 1") != std::string::npos);
  }
}

TEST_CASE("retrieval recall as LAVIS computes it, several texts per image") {
  // 3 images, 7 texts: image 0 -> texts 0, 1; image 1 -> 2, 3, 4; image 2 -> 5, 6.
  const std::vector<std::vector<std::size_t>> img2txt = {{0, 1}, {2, 3, 4}, {5, 6}};
  const std::vector<std::size_t> txt2img = {0, 0, 1, 1, 1, 2, 2};
  // clang-format off
  const std::vector<float> scores = {  // [images x texts]
    0.9f, 0.1f, 0.2f, 0.3f, 0.0f, 0.4f, 0.5f,   // image 0: its text 0 is first            -> rank 0
    0.8f, 0.7f, 0.1f, 0.6f, 0.2f, 0.9f, 0.5f,   // image 1: best own text 3 (0.6), behind 0.9, 0.8, 0.7 -> rank 3
    0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.0f, 0.0f,   // image 2: own texts last, tie 0.0: text 6 before 5 -> rank 5
  };
  // clang-format on
  CHECK(image_to_text_ranks(scores, 3, 7, img2txt) == std::vector<std::size_t>{0, 3, 5});
  // Per text, its image's rank in its column (ties: the higher image index first).
  // t0: 0.9 vs 0.8, 0.1 -> 0; t1: 0.1 vs 0.7, 0.2 -> 2; t2: 0.1 vs 0.2, 0.3 -> 2; t3: 0.6 vs 0.3, 0.4 -> 0;
  // t4: 0.2 vs 0.0, 0.5 -> 1; t5: 0.0 vs 0.4, 0.9 -> 2; t6: 0.0 vs 0.5, 0.5 -> 2.
  std::vector<float> transposed(21);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t t = 0; t < 7; ++t) transposed[t * 3 + i] = scores[i * 7 + t];
  CHECK(text_to_image_ranks(transposed, 7, 3, txt2img) == std::vector<std::size_t>{0, 2, 2, 0, 1, 2, 2});

  const RetrievalRecall r = retrieval_recall(scores, 3, 7, img2txt, txt2img);
  CHECK(r.txt_r1 == doctest::Approx(1.0 / 3));
  CHECK(r.txt_r5 == doctest::Approx(2.0 / 3));
  CHECK(r.txt_r10 == doctest::Approx(1.0));
  CHECK(r.txt_r_mean == doctest::Approx((1.0 / 3 + 2.0 / 3 + 1.0) / 3));
  CHECK(r.img_r1 == doctest::Approx(2.0 / 7));
  CHECK(r.img_r5 == doctest::Approx(1.0));
  CHECK(r.img_r10 == doctest::Approx(1.0));
  CHECK(r.img_r_mean == doctest::Approx((2.0 / 7 + 1.0 + 1.0) / 3));
  CHECK(r.r_mean == doctest::Approx((r.txt_r_mean + r.img_r_mean) / 2));

  // Separate i2t and t2i matrices (LAVIS re-scores each direction) give the same from the transpose.
  const RetrievalRecall two = retrieval_recall(scores, transposed, 3, 7, img2txt, txt2img);
  CHECK(two.r_mean == r.r_mean);
  CHECK(recall_at({0, 1, 9, 10}, 10) == 0.75);
}

TEST_CASE("retrieval recall: bad input") {
  const std::vector<double> scores(6, 0.0);  // [2 x 3]
  const std::vector<std::vector<std::size_t>> img2txt = {{0}, {1, 2}};
  const std::vector<std::size_t> txt2img = {0, 1, 1};
  CHECK_NOTHROW(retrieval_recall(scores, 2, 3, img2txt, txt2img));
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 4, img2txt, txt2img), ValueError);                          // size mismatch
  CHECK_THROWS_AS(retrieval_recall(std::vector<double>{}, 0, 0, {}, {}), ValueError);                     // empty
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 3, {{0}}, txt2img), ValueError);                            // img2txt too short
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 3, {{0}, {}}, txt2img), ValueError);                        // image without texts
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 3, {{0}, {1, 3}}, txt2img), ValueError);                    // text out of range
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 3, img2txt, std::vector<std::size_t>{0, 1}), ValueError);   // txt2img too short
  CHECK_THROWS_AS(retrieval_recall(scores, 2, 3, img2txt, std::vector<std::size_t>{0, 1, 2}), ValueError);  // image out of range
  std::vector<double> with_nan = scores;
  with_nan[4] = std::nan("");
  CHECK_THROWS_AS(retrieval_recall(with_nan, 2, 3, img2txt, txt2img), ValueError);
  CHECK_THROWS_AS(recall_at({}, 1), ValueError);
}
