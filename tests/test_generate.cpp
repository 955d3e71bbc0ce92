// Text generation against transformers' generate (tests/data/hf-blip2/*/meta.json "generate"):
// greedy, beam search, repetition penalty, n-gram blocking, length penalty, min_new_tokens, several
// returned sequences, EOS ids, left-padded batches; the KV cache against full recomputation;
// sampling determinism and statistics; option errors.
#include <blip2/generate/generate.hpp>
#include <fstream>
#include <map>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  nlohmann::json j;
  in >> j;
  return j;
}

struct OPTFixture {
  explicit OPTFixture(const std::string& name)
      : dir(kFixtures + name + "/"), config(Blip2Config::load(dir + "model/config.json")), model(config),
        io(io::SafeTensorsFile::open(dir + "io.safetensors")), meta(read_json(dir + "meta.json")) {
    REQUIRE(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
  }
  Tensor<float> pixels() const { return io.load<float>("pixel_values"); }
  Tensor<std::int64_t> ids() const { return io.load<std::int64_t>("input_ids_with_image_tokens"); }
  Tensor<std::int64_t> mask() const { return io.load<std::int64_t>("attention_mask_with_image_tokens"); }
  // generation_config.json, then the case's keyword arguments, as model.generate(**kwargs) does.
  GenerationOptions options(const nlohmann::json& c) const {
    auto o = GenerationOptions::load(dir + "model/generation_config.json");
    o.update(c["kwargs"], "meta.json kwargs");
    o.max_new_tokens = c["max_new_tokens"].get<int>();
    return o;
  }

  std::string dir;
  Blip2Config config;
  Blip2OPT<float> model;
  io::SafeTensorsFile io;
  nlohmann::json meta;
};

using Rows = std::vector<std::vector<std::int64_t>>;

void check_rows(const std::string& what, const Rows& ours, const Rows& ref) {
  INFO(what);
  REQUIRE(ours.size() == ref.size());
  for (std::size_t r = 0; r < ref.size(); ++r) {
    INFO("row " << r);
    CHECK(ours[r] == ref[r]);
  }
}

void run_fixture_cases(const std::string& name, std::size_t expected_cases) {
  OPTFixture f(name);
  std::size_t cases = 0;
  for (const auto& [case_name, c] : f.meta["generate"].items()) {
    const auto out = generate(f.model, f.pixels(), f.ids(), f.mask(), f.options(c));
    check_rows(name + " " + case_name, out.rows(), c["sequences"].get<Rows>());
    CHECK(out.prompt_length == f.ids().size(1));
    ++cases;
  }
  CHECK(cases == expected_cases);
}

// A toy decoder: the logits of the next token depend on the last token only (a fixed random
// table), so every search can be checked by hand.
struct TableStep {
  // `last`: the last prompt token of each input.
  TableStep(index_t vocab, std::uint64_t seed, std::vector<std::int64_t> last_tokens) : V(vocab), last(std::move(last_tokens)) {
    for (index_t i = 0; i < V * V; ++i) table.push_back(float(2 * Generator::normal(seed, std::uint64_t(i))));
  }
  Tensor<float> logits() const {
    std::vector<float> v;
    for (std::int64_t t : last) v.insert(v.end(), table.begin() + t * V, table.begin() + (t + 1) * V);
    return Tensor<float>::from_vector({index_t(last.size()), V}, v);
  }
  Tensor<float> start() {
    ++calls;
    return logits();
  }
  void expand(index_t n) {
    std::vector<std::int64_t> l;
    for (auto t : last)
      for (index_t i = 0; i < n; ++i) l.push_back(t);
    last = l;
  }
  Tensor<float> step(const std::vector<std::int64_t>& tokens) {
    ++calls;
    last = tokens;
    return logits();
  }
  void reorder(const std::vector<std::int64_t>& r) {
    std::vector<std::int64_t> l;
    for (auto i : r) l.push_back(last.at(std::size_t(i)));
    last = l;
  }
  index_t V;
  std::vector<float> table;
  std::vector<std::int64_t> last;
  int calls = 0;
};

}  // namespace

TEST_CASE("generate: every OPT fixture case gives transformers' ids exactly") {
  run_fixture_cases("blip2-opt-tiny", 4);
  run_fixture_cases("blip2-opt-generate", 7);
}

TEST_CASE("generate: every T5 fixture case gives transformers' decoder ids exactly") {
  const std::string dir = kFixtures + "blip2-t5-tiny/";
  const auto config = Blip2Config::load(dir + "model/config.json");
  Blip2T5<float> model(config);
  REQUIRE(io::load_parameters(model, io::Checkpoint::open(dir + "model")).empty());
  const auto io = io::SafeTensorsFile::open(dir + "io.safetensors");
  const auto meta = read_json(dir + "meta.json");
  std::size_t cases = 0;
  for (const auto& [case_name, c] : meta["generate"].items()) {
    auto o = GenerationOptions::load(dir + "model/generation_config.json");
    o.update(c["kwargs"], "meta.json kwargs");
    o.max_new_tokens = c["max_new_tokens"].get<int>();
    const auto out = generate(model, io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids_with_image_tokens"),
                              io.load<std::int64_t>("attention_mask_with_image_tokens"), o);
    check_rows("blip2-t5-tiny " + case_name, out.rows(), c["sequences"].get<Rows>());
    CHECK(out.prompt_length == 1);
    ++cases;
  }
  CHECK(cases == 2);

  // Cached decoder steps (also after a reorder) give the logits of decoding the whole sequence.
  NoGrad no_grad;
  const auto enc = model.encode(io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids_with_image_tokens"),
                                io.load<std::int64_t>("attention_mask_with_image_tokens"));
  T5DecoderStep<float> step(*model.language_model, enc.encoder_last_hidden_state, enc.encoder_attention_mask, 0);
  Rows ids{{0}, {0}};
  Tensor<float> logits = step.start();
  const auto full_logits = [&](const Rows& r, index_t row) {
    const auto d = model.language_model->decode(Tensor<std::int64_t>::from_vector({1, index_t(r[std::size_t(row)].size())},
                                                                                  r[std::size_t(row)]),
                                                enc.encoder_last_hidden_state.slice(0, row, row + 1),
                                                enc.encoder_attention_mask.slice(0, row, row + 1).contiguous());
    const index_t L = d.size(1);
    return d.slice(1, L - 1, L).contiguous().reshape({1, d.size(2)});
  };
  for (const std::vector<std::int64_t>& tokens : {std::vector<std::int64_t>{4, 65}, {82, 3}, {1, 100}}) {
    logits = step.step(tokens);
    for (std::size_t b = 0; b < 2; ++b) ids[b].push_back(tokens[b]);
    for (index_t b = 0; b < 2; ++b)
      check_activation("t5 step row " + std::to_string(b), logits.slice(0, b, b + 1).contiguous(), full_logits(ids, b));
  }
  step.reorder({1, 1});
  logits = step.step({7, 9});
  Rows r{ids[1], ids[1]};
  r[0].push_back(7);
  r[1].push_back(9);
  // Both rows now decode input 1's encoder output.
  for (index_t b = 0; b < 2; ++b) {
    const auto d = model.language_model->decode(Tensor<std::int64_t>::from_vector({1, index_t(r[std::size_t(b)].size())},
                                                                                  r[std::size_t(b)]),
                                                enc.encoder_last_hidden_state.slice(0, 1, 2),
                                                enc.encoder_attention_mask.slice(0, 1, 2).contiguous());
    const index_t L = d.size(1);
    check_activation("t5 reordered row " + std::to_string(b), logits.slice(0, b, b + 1).contiguous(),
                     d.slice(1, L - 1, L).contiguous().reshape({1, d.size(2)}));
  }
}

TEST_CASE("generate: an EOS id stops its row, which is padded while the others go on") {
  OPTFixture f("blip2-opt-generate");
  const auto& greedy = f.meta["generate"]["greedy"];
  const Rows ref = greedy["sequences"].get<Rows>();
  const index_t P = f.ids().size(1);
  // Row 0's first new token (109) as EOS: row 0 stops there, rows 1 and 2 never produce it.
  auto o = f.options(greedy);
  std::int64_t unused = 3;  // a second EOS no row produces
  while (std::any_of(ref.begin(), ref.end(), [&](const auto& r) { return std::count(r.begin(), r.end(), unused) > 0; }))
    ++unused;
  o.eos_token_id = {500};
  CHECK_THROWS_WITH_AS(generate(f.model, f.pixels(), f.ids(), f.mask(), o),
                       doctest::Contains("eos_token_id 500 is not in the language model's 128 tokens"), ValueError);
  o.eos_token_id = {109, unused};
  const Rows out = generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows();
  REQUIRE(out.size() == 3);
  for (std::size_t t = 0; t < ref[0].size(); ++t)
    CHECK(out[0][t] == (t <= std::size_t(P) ? ref[0][t] : 1));  // pad_token_id 1
  CHECK(out[1] == ref[1]);
  CHECK(out[2] == ref[2]);
  // min_new_tokens keeps EOS away until then.
  o.min_new_tokens = 7;
  const Rows late = generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows();
  CHECK(late[0][std::size_t(P)] != 109);
  CHECK(late[1] == ref[1]);
}

TEST_CASE("generate: KV-cached steps give the logits of a full recomputation") {
  OPTFixture f("blip2-opt-generate");
  NoGrad no_grad;
  const auto image = f.model.query_image(f.pixels());
  const auto lm_inputs = f.model.project(image.queries);
  const auto [embeds, mask] = f.model.merge(lm_inputs, f.ids(), f.mask());
  OPTDecoderStep<float> step(*f.model.language_model, embeds, mask);
  Tensor<float> logits = step.start();
  const index_t B = 3, P = f.ids().size(1);
  check_activation("prefill", logits, f.io.load<float>("logits").slice(1, P - 1, P).contiguous().reshape({B, 128}));
  Rows ids = generation::host_rows(f.ids());
  Rows masks = generation::host_rows(mask);
  const std::vector<std::vector<std::int64_t>> feed = {{5, 9, 100}, {17, 17, 3}, {2, 64, 1}};
  for (const auto& tokens : feed) {
    logits = step.step(tokens);
    for (index_t b = 0; b < B; ++b) ids[std::size_t(b)].push_back(tokens[std::size_t(b)]), masks[std::size_t(b)].push_back(1);
    const index_t L = index_t(ids[0].size());
    std::vector<std::int64_t> flat, mflat;
    for (index_t b = 0; b < B; ++b) {
      flat.insert(flat.end(), ids[std::size_t(b)].begin(), ids[std::size_t(b)].end());
      mflat.insert(mflat.end(), masks[std::size_t(b)].begin(), masks[std::size_t(b)].end());
    }
    const auto full = f.model(f.pixels(), Tensor<std::int64_t>::from_vector({B, L}, flat),
                              Tensor<std::int64_t>::from_vector({B, L}, mflat))
                          .logits;
    check_activation("step " + std::to_string(L - P), logits, full.slice(1, L - 1, L).contiguous().reshape({B, 128}));
  }
  CHECK(step.cache().length() == P + index_t(feed.size()));
  // Reordering rows (beam search) moves the cache rows with them.
  step.reorder({2, 0});
  std::swap(ids[0], ids[2]);
  logits = step.step({7, 8});
  const auto full = f.model(f.pixels().slice(0, 0, 1), Tensor<std::int64_t>::from_vector({1, index_t(ids[2].size()) + 1}, [&] {
                              auto v = ids[2];
                              v.push_back(8);
                              return v;
                            }()),
                            Tensor<std::int64_t>::from_vector({1, index_t(ids[2].size()) + 1}, [&] {
                              auto v = masks[0];
                              v.push_back(1);
                              return v;
                            }()))
                        .logits;
  const index_t L = full.size(1);
  check_activation("reordered row", logits.slice(0, 1, 2).contiguous(), full.slice(1, L - 1, L).contiguous().reshape({1, 128}));
}

TEST_CASE("generate: bf16-stored frozen weights (float32 compute)") {
  OPTFixture f("blip2-opt-tiny");
  Blip2OPT<float, cpu, bf16> half(f.config);
  REQUIRE(io::load_parameters(half, io::Checkpoint::open(f.dir + "model")).empty());
  const auto& c = f.meta["generate"]["beam3"];
  const auto out = generate(half, f.pixels(), f.ids(), f.mask(), f.options(c));
  // bf16 weights move the logits by ~1e-2: the ids may part from float32's, the shape may not.
  CHECK(out.sequences.size(0) == 2);
  CHECK(out.sequences.size(1) == f.ids().size(1) + 10);
  const Rows rows = out.rows(), ref = c["sequences"].get<Rows>();
  for (std::size_t r = 0; r < 2; ++r)
    for (std::size_t t = 0; t < std::size_t(f.ids().size(1)); ++t) CHECK(rows[r][t] == ref[r][t]);
}

TEST_CASE("generate: default prompt is the image placeholders and BOS") {
  OPTFixture f("blip2-opt-tiny");
  GenerationOptions o;
  o.max_new_tokens = 3;
  const auto out = generate(f.model, f.pixels(), Tensor<std::int64_t>(), Tensor<std::int64_t>(), o);
  REQUIRE(out.sequences.size(1) == 8 + 1 + 3);
  const Rows rows = out.rows();
  for (const auto& r : rows) {
    for (int i = 0; i < 8; ++i) CHECK(r[std::size_t(i)] == 127);
    CHECK(r[8] == 2);
  }
}

TEST_CASE("generate: sampling is deterministic per seed and follows the distribution") {
  OPTFixture f("blip2-opt-generate");
  GenerationOptions o = GenerationOptions::load(f.dir + "model/generation_config.json");
  o.max_new_tokens = 8;
  o.do_sample = true;
  o.seed = 42;
  const Rows a = generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows();
  const Rows b = generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows();
  CHECK(a == b);
  o.seed = 43;
  const Rows c = generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows();
  CHECK(a != c);
  o.num_return_sequences = 3;
  const auto many = generate(f.model, f.pixels(), f.ids(), f.mask(), o);
  CHECK(many.sequences.size(0) == 9);
  // Rows of one input share its prompt.
  const Rows m = many.rows();
  for (std::size_t r = 0; r < 9; ++r)
    for (std::size_t t = 0; t < 14; ++t) CHECK(m[r][t] == m[r / 3 * 3][t]);
  // top_k 1 (or a tiny top_p) leaves only the most likely token: greedy.
  const Rows greedy = f.meta["generate"]["greedy"]["sequences"].get<Rows>();
  o.num_return_sequences = 1;
  o.max_new_tokens = 12;
  o.top_k = 1;
  check_rows("top_k 1", generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows(), greedy);
  o.top_k = 0;
  o.top_p = 1e-6;
  check_rows("top_p 1e-6", generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows(), greedy);
  o.top_p = 1.0;
  o.temperature = 1e-3;
  check_rows("temperature 1e-3", generate(f.model, f.pixels(), f.ids(), f.mask(), o).rows(), greedy);

  // Frequencies of the first token over many draws follow softmax(logits / T) within top_k.
  TableStep t(6, 7, {0});
  GenerationOptions s;
  s.do_sample = true;
  s.max_new_tokens = 1;
  s.temperature = 1.5;
  s.top_k = 4;
  s.num_return_sequences = 4000;
  s.seed = 1;
  const Rows draws = generate(t, Rows{{0}}, s).rows();
  std::vector<float> expect(t.table.begin(), t.table.begin() + 6);
  generation::temperature(expect.data(), 6, 1.5);
  generation::top_k(expect.data(), 6, 4);
  const auto p = generation::softmax(expect.data(), 6);
  std::vector<double> freq(6, 0);
  for (const auto& r : draws) freq[std::size_t(r[1])] += 1.0 / double(draws.size());
  for (int v = 0; v < 6; ++v) {
    INFO("token " << v << " p " << p[std::size_t(v)] << " freq " << freq[std::size_t(v)]);
    CHECK(std::abs(freq[std::size_t(v)] - p[std::size_t(v)]) < 0.03);
    if (p[std::size_t(v)] == 0) CHECK(freq[std::size_t(v)] == 0);
  }
}

TEST_CASE("generate: logits processors as transformers defines them") {
  std::vector<float> s = {2.f, -1.f, 0.5f, -3.f, 1.f};
  generation::repetition_penalty({0, 1, 1, 3}, s.data(), 5, 2.0);
  CHECK(s == std::vector<float>{1.f, -2.f, 0.5f, -6.f, 1.f});
  std::vector<float> n(6, 0.f);
  generation::no_repeat_ngram({1, 2, 3, 1, 2, 4, 1, 2}, n.data(), 6, 3);  // "1 2" was followed by 3 and 4
  CHECK(n == std::vector<float>{0, 0, 0, generation::kNegInf, generation::kNegInf, 0});
  std::vector<float> k = {1, 5, 3, 4, 2};
  generation::top_k(k.data(), 5, 2);
  CHECK(k == std::vector<float>{generation::kNegInf, 5, generation::kNegInf, 4, generation::kNegInf});
  std::vector<float> q = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  generation::top_p(q.data(), 4, 0.75);  // keeps 0.5 and 0.3 (cumulative from below: 0.05, 0.2 <= 0.25)
  CHECK(q[0] > generation::kNegInf);
  CHECK(q[1] > generation::kNegInf);
  CHECK(q[2] == generation::kNegInf);
  CHECK(q[3] == generation::kNegInf);
}

TEST_CASE("generate: beam search bookkeeping on a toy model") {
  // Token 3 is EOS. Finished hypotheses end with it, are filled after it, and score
  // sum(log p) / (new tokens incl. EOS) ** length_penalty.
  for (const double lp : {1.0, 0.5, 2.0, -1.0}) {
    for (const auto es : {EarlyStopping::False, EarlyStopping::True, EarlyStopping::Never}) {
      TableStep t(5, 11, {0, 1});
      GenerationOptions o;
      o.num_beams = 3;
      o.num_return_sequences = 3;
      o.max_new_tokens = 6;
      o.eos_token_id = {3};
      o.pad_token_id = 4;
      o.length_penalty = lp;
      o.early_stopping = es;
      const auto out = generate(t, Rows{{0}, {1}}, o);
      const Rows rows = out.rows();
      REQUIRE(rows.size() == 6);
      for (std::size_t r = 0; r < rows.size(); ++r) {
        INFO("lp " << lp << " row " << r);
        // Recompute the score from the table.
        double sum = 0;
        std::size_t len = 0;
        bool ended = false;
        for (std::size_t i = 1; i < rows[r].size() && !ended; ++i) {
          std::vector<float> l(t.table.begin() + rows[r][i - 1] * 5, t.table.begin() + rows[r][i - 1] * 5 + 5);
          generation::log_softmax(l.data(), 5);
          sum += l[std::size_t(rows[r][i])];
          ++len;
          ended = rows[r][i] == 3;
          if (ended)
            for (std::size_t j = i + 1; j < rows[r].size(); ++j) CHECK(rows[r][j] == 4);
        }
        CHECK(out.sequences_scores[r] == doctest::Approx(sum / std::pow(double(len), lp)).epsilon(1e-5));
        if (r % 3) CHECK(out.sequences_scores[r] <= out.sequences_scores[r - 1]);
      }
    }
  }
}

TEST_CASE("generate: one model call per token (the prefix is not recomputed)") {
  TableStep t(7, 3, {1, 3});
  GenerationOptions o;
  o.max_new_tokens = 5;
  generate(t, Rows{{0, 1}, {2, 3}}, o);
  CHECK(t.calls == 5);  // the prefill, then 4 single-token steps
  TableStep u(7, 3, {1, 3});
  o.num_beams = 2;
  generate(u, Rows{{0, 1}, {2, 3}}, o);
  CHECK(u.calls == 5);
}

TEST_CASE("generate: bad options are ValueErrors naming the option") {
  TableStep t(5, 1, {0});
  const Rows prompt{{0}};
  auto fails = [&](GenerationOptions o, const char* name) {
    CHECK_THROWS_WITH_AS(generate(t, prompt, o), doctest::Contains(name), ValueError);
  };
  GenerationOptions o;
  o.max_new_tokens = 3;
  auto bad = o;
  bad.num_beams = 0;
  fails(bad, "num_beams");
  bad = o;
  bad.num_beams = 2;
  bad.num_return_sequences = 3;
  fails(bad, "num_return_sequences");
  bad = o;
  bad.num_return_sequences = 2;
  fails(bad, "num_return_sequences");  // greedy returns one
  for (double p : {0.0, -0.5, 1.5}) {
    bad = o;
    bad.do_sample = true;
    bad.top_p = p;
    fails(bad, "top_p");
  }
  bad = o;
  bad.do_sample = true;
  bad.temperature = 0;
  fails(bad, "temperature");
  bad = o;
  bad.max_new_tokens = 0;
  fails(bad, "max_new_tokens");
  bad = o;
  bad.repetition_penalty = 0;
  fails(bad, "repetition_penalty");
  bad = o;
  bad.length_penalty = std::nan("");
  fails(bad, "must be finite numbers");
  bad = o;
  bad.min_new_tokens = 5;  // above max_new_tokens 3
  fails(bad, "min_new_tokens (5) is above max_new_tokens (3)");
  bad = o;
  bad.max_new_tokens.reset();
  bad.max_length = 1;
  fails(bad, "max_length");
  CHECK_THROWS_WITH_AS(generate(t, Rows{{}}, o), doctest::Contains("prompt"), ValueError);

  OPTFixture f("blip2-opt-tiny");
  CHECK_THROWS_WITH_AS(generate(f.model, f.pixels(), Tensor<std::int64_t>::zeros({2, 0}), Tensor<std::int64_t>(), o),
                       doctest::Contains("input_ids"), ValueError);
  bad = o;
  bad.num_beams = 0;
  CHECK_THROWS_WITH_AS(generate(f.model, f.pixels(), f.ids(), f.mask(), bad), doctest::Contains("num_beams"), ValueError);
}

TEST_CASE("generate: generation_config.json and keyword arguments") {
  auto o = GenerationOptions::from_generation_config(nlohmann::json::parse(
      R"({"eos_token_id": [2, 50118], "pad_token_id": 1, "num_beams": 5, "max_length": 30, "min_length": 1,
          "early_stopping": "never", "length_penalty": 0.6, "do_sample": false, "top_p": 0.9,
          "transformers_version": "5.17.0"})"));
  CHECK(o.eos_token_id == std::vector<std::int64_t>{2, 50118});
  CHECK(o.pad_token_id == 1);
  CHECK(o.num_beams == 5);
  CHECK(o.max_length == 30);
  CHECK(o.early_stopping == EarlyStopping::Never);
  CHECK(o.length_penalty == 0.6);
  CHECK(o.top_k == 50);  // transformers' default
  o.update(nlohmann::json::parse(R"({"early_stopping": true, "eos_token_id": 5})"));
  CHECK(o.early_stopping == EarlyStopping::True);
  CHECK(o.eos_token_id == std::vector<std::int64_t>{5});
  CHECK(o.resolved_max_length(10) == 30);
  o.max_new_tokens = 4;
  CHECK(o.resolved_max_length(10) == 14);
  CHECK(GenerationOptions{}.resolved_max_length(10, 25) == 25);
  CHECK_THROWS_AS(o.update(nlohmann::json::parse(R"({"num_beams": "five"})")), IoError);
  CHECK_THROWS_AS(o.update(nlohmann::json::parse(R"({"early_stopping": "sometimes"})")), IoError);
}
