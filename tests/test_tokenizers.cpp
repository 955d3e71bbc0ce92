// Tokenizers: byte-level BPE (GPT-2/OPT), BERT WordPiece (Q-Former) and SentencePiece unigram (T5),
// checked id for id against Hugging Face's tokenizers (tests/data/hf-blip2/tokenizers.json) and the
// sentencepiece tools (tests/data/sentencepiece/), plus round trips and error paths.
#include "support.hpp"

#include <blip2/tokenizers/byte_level_bpe.hpp>
#include <blip2/tokenizers/sentencepiece.hpp>
#include <blip2/tokenizers/wordpiece.hpp>
#include <blip2/tokenizers/load.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

using namespace blip2;
using namespace blip2::tokenizers;

namespace {
const std::string kData = BLIP2_TEST_DATA;
const std::string kTok = kData + "/tokenizers";

nlohmann::json fixture() {
  std::ifstream in(kData + "/hf-blip2/tokenizers.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

const ByteLevelBPE& gpt2() {
  static const ByteLevelBPE t = ByteLevelBPE::from_files(kTok + "/gpt2-vocab.json", kTok + "/gpt2-merges.txt");
  return t;
}
const WordPieceTokenizer& bert() {
  static const WordPieceTokenizer t = WordPieceTokenizer::from_vocab_file(kTok + "/bert-base-uncased-vocab.txt");
  return t;
}
}  // namespace

TEST_CASE("byte-level BPE matches Hugging Face on every fixture string") {
  const auto f = fixture();
  const auto& texts = f["texts"];
  int exact = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const auto want = f["gpt2_bpe"][i]["ids"].get<std::vector<Id>>();
    const auto want_tokens = f["gpt2_bpe"][i]["tokens"].get<std::vector<std::string>>();
    INFO("text ", i, ": ", text);
    const auto ids = gpt2().encode(text);
    CHECK(ids == want);
    CHECK(gpt2().tokenize(text) == want_tokens);
    CHECK(gpt2().decode(ids) == text);
    exact += ids == want;
  }
  MESSAGE("byte-level BPE: ", exact, "/", texts.size(), " fixture strings exact");
}

TEST_CASE("BERT WordPiece matches Hugging Face on every fixture string") {
  const auto f = fixture();
  const auto& texts = f["texts"];
  int exact = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const auto want = f["bert_base_uncased"][i]["ids"].get<std::vector<Id>>();
    INFO("text ", i, ": ", text);
    const auto ids = bert().encode(text);
    CHECK(ids == want);
    exact += ids == want;
    std::vector<std::string> toks;
    for (Id id : ids) toks.push_back(bert().id_to_token(id));
    CHECK(toks == f["bert_base_uncased"][i]["tokens"].get<std::vector<std::string>>());
  }
  MESSAGE("BERT WordPiece: ", exact, "/", texts.size(), " fixture strings exact");
}

namespace {
std::vector<std::string> read_lines(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}
std::vector<Id> parse_ids(const std::string& line) {
  std::vector<Id> ids;
  std::istringstream in(line);
  for (Id id; in >> id;) ids.push_back(id);
  return ids;
}
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + v[i];
  return out;
}
const std::string kSpm = kData + "/sentencepiece/";
}  // namespace

TEST_CASE("SentencePiece unigram matches spm_encode / spm_normalize / spm_decode") {
  const auto sentences = read_lines(kSpm + "sentences.txt");
  REQUIRE(sentences.size() == 22);
  for (const std::string model : {"nfkc", "bytes"}) {
    INFO("model ", model);
    const auto t = SentencePieceTokenizer::from_file(kSpm + model + ".model");
    CHECK(t.byte_fallback() == (model == "bytes"));
    const auto ids = read_lines(kSpm + model + ".ids.txt");
    const auto pieces = read_lines(kSpm + model + ".pieces.txt");
    const auto normalized = read_lines(kSpm + model + ".normalized.txt");
    const auto decoded = read_lines(kSpm + model + ".decoded.txt");
    REQUIRE(ids.size() == sentences.size());
    int exact = 0;
    for (std::size_t i = 0; i < sentences.size(); ++i) {
      INFO("sentence ", i, ": ", sentences[i]);
      CHECK(t.normalize(sentences[i]) == normalized[i]);
      const auto want = parse_ids(ids[i]);
      const auto got = t.encode(sentences[i], false);
      CHECK(got == want);
      CHECK(join(t.tokenize(sentences[i])) == pieces[i]);
      auto with_eos = want;
      with_eos.push_back(t.eos_id());
      CHECK(t.encode(sentences[i]) == with_eos);
      CHECK(t.decode(want) == decoded[i]);
      exact += got == want;
    }
    MESSAGE("SentencePiece ", model, ": ", exact, "/", sentences.size(), " sentences exact");
    const auto dec_in = read_lines(kSpm + model + ".decode_ids.txt");
    const auto dec_out = read_lines(kSpm + model + ".decode_ids.out.txt");
    REQUIRE(dec_in.size() == dec_out.size());
    for (std::size_t i = 0; i < dec_in.size(); ++i) {
      INFO("decode ", dec_in[i]);
      CHECK(t.decode(parse_ids(dec_in[i])) == dec_out[i]);
    }
  }
}

namespace {
std::string temp_path(const std::string& name) { return "/tmp/blip2_tok_" + std::to_string(::getpid()) + "_" + name; }
std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("wrong exception type: ", e.what());
  }
  FAIL("no exception");
  return {};
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("GPT-2 pre-tokenizer regex") {
  using V = std::vector<std::string_view>;
  CHECK(byte_level::split("Hello, World!  It's") == V{"Hello", ",", " World", "!", " ", " It", "'s"});
  CHECK(byte_level::split("a  \n\tb   ") == V{"a", "  \n", "\t", "b", "   "});
  CHECK(byte_level::split("they're we'll I'd 'x '") == V{"they", "'re", " we", "'ll", " I", "'d", " '", "x", " '"});
  CHECK(byte_level::split("x123 4.5") == V{"x", "123", " 4", ".", "5"});
  CHECK(byte_level::split("") == V{});
  CHECK(byte_level::split(" ") == V{" "});
  CHECK(byte_level::split("é\xff\xfe ü") == V{"é", "\xff\xfe", " ü"});
}

TEST_CASE("byte-level BPE: any byte string round-trips; decode of any id sequence gives its bytes") {
  const auto& t = gpt2();
  std::mt19937 rng(7);
  for (int n = 0; n < 200; ++n) {
    std::string s(std::size_t(rng() % 40), '\0');
    for (char& c : s) c = char(rng() % 4 == 0 ? rng() % 256 : "ab \t'1é"[rng() % 8]);
    const auto ids = t.encode(s);
    CHECK(t.decode(ids) == s);
  }
  // Every single byte is a token; ids decode to exactly the bytes they stand for.
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, char(b));
    const auto ids = t.encode(one);
    REQUIRE(ids.size() == 1);
    CHECK(t.decode(ids) == one);
  }
  std::vector<Id> ids(300);
  for (auto& id : ids) id = Id(rng() % 50257);
  const std::string bytes = t.decode(ids);
  std::string joined;
  for (Id id : ids) joined += t.decode({id});
  CHECK(bytes == joined);
  CHECK(t.encode(bytes) != std::vector<Id>{});
  CHECK(unicode::is_valid_utf8(unicode::utf8_lossy(bytes)));
  CHECK(unicode::utf8_lossy("a\xff" "b\xe2\x82") == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST_CASE("byte-level BPE: special tokens, OPT's BOS, tokenizer.json") {
  const auto g = ByteLevelBPE::gpt2(kTok + "/gpt2-vocab.json", kTok + "/gpt2-merges.txt");
  CHECK(g.eos_id() == 50256);
  CHECK(g.encode("hi<|endoftext|>there") == std::vector<Id>{5303, 50256, 8117});
  CHECK(g.decode({5303, 50256, 8117}, /*skip_special_tokens=*/true) == "hithere");
  CHECK(g.token_to_id("Ġthe") == 262);
  CHECK(g.id_to_token(262) == "Ġthe");

  // OPT: "</s>" prepended (GPT-2's vocabulary lacks it, so it gets the next id here; OPT's has it as 2).
  const auto o = ByteLevelBPE::opt(kTok + "/gpt2-vocab.json", kTok + "/gpt2-merges.txt");
  const auto ids = o.encode("a photo of");
  REQUIRE(ids.size() == 4);
  CHECK(ids[0] == o.bos_id());
  CHECK(o.id_to_token(o.bos_id()) == "</s>");
  CHECK(std::vector<Id>(ids.begin() + 1, ids.end()) == std::vector<Id>{64, 4590, 286});
  CHECK(o.decode(ids, true) == "a photo of");
  CHECK(o.decode(ids) == "</s>a photo of");

  // An OPT-style tokenizer.json: BPE model, ByteLevel pre-tokenizer, "</s>" (id 2) by template.
  nlohmann::json vocab = nlohmann::json::parse(read_file(kTok + "/gpt2-vocab.json"));
  nlohmann::json merges = nlohmann::json::array();
  const auto lines = read_lines(kTok + "/gpt2-merges.txt");
  for (std::size_t i = 1; i < lines.size(); ++i)
    if (!lines[i].empty()) merges.push_back(i % 2 ? nlohmann::json(lines[i]) : nlohmann::json::array({lines[i].substr(0, lines[i].find(' ')), lines[i].substr(lines[i].find(' ') + 1)}));
  using json = nlohmann::json;
  json added = json::array();
  added.push_back(json::object({{"id", 50257}, {"content", "</s>"}, {"special", true}}));
  added.push_back(json::object({{"id", 50258}, {"content", "<image>"}, {"special", true}}));
  json single = json::array();
  single.push_back(json::object({{"SpecialToken", json::object({{"id", "</s>"}, {"type_id", 0}})}}));
  single.push_back(json::object({{"Sequence", json::object({{"id", "A"}, {"type_id", 0}})}}));
  json j = json::object();
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = json::object({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}});
  j["post_processor"] = json::object({{"type", "TemplateProcessing"}, {"single", single}});
  j["post_processor"]["special_tokens"]["</s>"] =
      json::object({{"id", "</s>"}, {"ids", json::array({50257})}, {"tokens", json::array({"</s>"})}});
  j["decoder"] = json::object({{"type", "ByteLevel"}});
  j["model"] = json::object({{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", nullptr}});
  const std::string dir = temp_path("opt_dir");
  REQUIRE(std::system(("mkdir -p " + dir).c_str()) == 0);
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  const auto tj = load_tokenizer(dir);
  const auto f = fixture();
  for (std::size_t i = 0; i < f["texts"].size(); ++i) {
    auto want = f["gpt2_bpe"][i]["ids"].get<std::vector<Id>>();
    want.insert(want.begin(), 50257);
    CHECK(tj->encode(f["texts"][i].get<std::string>()) == want);
  }
  CHECK(tj->bos_id() == 50257);
  CHECK(tj->encode("<image><image>hi", false) == std::vector<Id>{50258, 50258, 5303});
  CHECK(tj->decode(tj->encode("<image>x")) == "</s><image>x");
  std::remove((dir + "/tokenizer.json").c_str());
  // with add_prefix_space
  j["pre_tokenizer"]["add_prefix_space"] = true;
  const auto tp = ByteLevelBPE::from_tokenizer_json(j, "inline.json");
  CHECK(tp.encode("hello", false) == std::vector<Id>{23748});
}

TEST_CASE("WordPiece: [UNK], over-long words, [DEC], specials in text, decode") {
  const auto& t = bert();
  CHECK(t.vocab_size() == 30522);
  CHECK(t.unk_id() == 100);
  CHECK(t.cls_id() == 101);
  CHECK(t.sep_id() == 102);
  CHECK(t.encode("∑", false) == std::vector<Id>{100});
  // 100 characters is still a word; 101 is [UNK]
  const std::string w100(100, 'a'), w101(101, 'a');
  CHECK(t.encode(w100, false).size() > 1);
  CHECK(t.encode(w101, false) == std::vector<Id>{100});
  CHECK(t.encode("ok " + w101 + " ok", false) == std::vector<Id>{7929, 100, 7929});
  // normalisation
  CHECK(t.normalize("Ünïcödé ÇAFÉ\tx\x01y 中文") == "unicode cafe xy  中  文 ");
  CHECK(t.normalize("İ") == "i");
  CHECK(t.normalize("bad\xff\xfe bytes") == "bad bytes");
  // special tokens written in the text are kept whole
  CHECK(t.encode("hello [MASK] world") == std::vector<Id>{101, 7592, 103, 2088, 102});
  // the Q-Former tokenizer: [DEC] = 30522 as BOS
  const auto q = WordPieceTokenizer::qformer(kTok + "/bert-base-uncased-vocab.txt");
  CHECK(q.bos_id() == 30522);
  CHECK(q.token_to_id("[DEC]") == 30522);
  CHECK(q.vocab_size() == 30523);
  CHECK(q.encode("[DEC] a cat", false) == std::vector<Id>{30522, 1037, 4937});
  CHECK(q.decode({30522, 1037, 4937}, true) == "a cat");
  // decode
  CHECK(t.decode(t.encode("Hello, World! It's 2023... don't panic"), true) == "hello, world! it's 2023... don't panic");
  CHECK(t.decode({101, 7592, 102}) == "[CLS] hello [SEP]");
  CHECK(t.decode({21628, 2015}) == "tabs");
  // a fuzzed byte soup never throws
  std::mt19937 rng(3);
  for (int n = 0; n < 200; ++n) {
    std::string s(std::size_t(rng() % 60), '\0');
    for (char& c : s) c = char(rng() % 256);
    CHECK_NOTHROW(t.decode(t.encode(s)));
  }
}

TEST_CASE("SentencePiece: T5 sentinels, specials, fuzzed bytes") {
  const auto t = SentencePieceTokenizer::from_file(kSpm + "nfkc.model");
  CHECK(t.pad_id() == 0);
  CHECK(t.eos_id() == 1);
  CHECK(t.unk_id() == 2);
  CHECK(t.encode("") == std::vector<Id>{1});
  const auto t5 = SentencePieceTokenizer::t5(kSpm + "nfkc.model");
  CHECK(t5.vocab_size() == 400);
  CHECK(t5.token_to_id("<extra_id_0>") == 399);
  CHECK(t5.token_to_id("<extra_id_99>") == 300);
  CHECK(t5.id_to_token(399) == "<extra_id_0>");
  const auto ids = t5.encode("a cat <extra_id_0> on</s>");
  CHECK(ids.back() == 1);
  CHECK(std::count(ids.begin(), ids.end(), Id(399)) == 1);
  CHECK(std::count(ids.begin(), ids.end(), Id(1)) == 2);
  CHECK(t5.decode(ids) == "a cat<extra_id_0> on");
  CHECK(t5.decode(ids, true) == "a cat on");
  std::mt19937 rng(5);
  for (const std::string model : {"nfkc", "bytes"}) {
    const auto m = SentencePieceTokenizer::from_file(kSpm + model + ".model");
    for (int n = 0; n < 200; ++n) {
      std::string s(std::size_t(rng() % 60), '\0');
      for (char& c : s) c = char(rng() % 256);
      std::vector<Id> e;
      CHECK_NOTHROW(e = m.encode(s));
      CHECK_NOTHROW(m.decode(e));
    }
  }
  // byte fallback reproduces any valid UTF-8 exactly (identity normalisation, spaces kept)
  const auto b = SentencePieceTokenizer::from_file(kSpm + "bytes.model");
  for (const std::string s : {"日本語 👍🏽 ∑∫√", "tabs\tand  spaces", "Ελληνικά"}) CHECK(b.decode(b.encode(s)) == s);
}

TEST_CASE("tokenizers report missing and corrupt files and unknown tokens by name") {
  const std::string missing = kTok + "/no-such-vocab.json";
  CHECK(contains(error_of<IoError>([&] { ByteLevelBPE::from_files(missing, kTok + "/gpt2-merges.txt"); }), missing));
  const std::string bad_json = write_temp("bad.json", "{\"a\": 0, ");
  CHECK(contains(error_of<IoError>([&] { ByteLevelBPE::from_files(bad_json, kTok + "/gpt2-merges.txt"); }), bad_json));
  const std::string small_vocab = write_temp("small.json", R"({"a": 0, "b": 1, "ab": 2})");
  const std::string bad_merges = write_temp("bad_merges.txt", "#version: 0.2\na b\nb c\n");
  const auto msg = error_of<IoError>([&] { ByteLevelBPE::from_files(small_vocab, bad_merges); });
  CHECK(contains(msg, bad_merges));
  CHECK(contains(msg, "'c'"));
  const std::string bad_line = write_temp("bad_line.txt", "a b c\n");
  CHECK(contains(error_of<IoError>([&] { ByteLevelBPE::from_files(small_vocab, bad_line); }), "line 1"));
  const auto tiny = ByteLevelBPE::from_files(small_vocab, write_temp("ok_merges.txt", "a b\n"));
  CHECK(tiny.encode("abab", false) == std::vector<Id>{2, 2});
  CHECK(tiny.encode("abc", false) == std::vector<Id>{2});  // no unk token: 'c' is dropped, as HF does

  CHECK(contains(error_of<ValueError>([&] { gpt2().decode({5, 99999}); }), "99999"));
  CHECK(contains(error_of<ValueError>([&] { gpt2().decode({-1}); }), "-1"));
  CHECK(contains(error_of<ValueError>([&] { gpt2().token_to_id("no such token"); }), "'no such token'"));
  CHECK(contains(error_of<ValueError>([&] { bert().id_to_token(30522); }), "30522"));
  CHECK(contains(error_of<ValueError>([&] { bert().token_to_id("[DEC]"); }), "'[DEC]'"));
  CHECK(contains(error_of<IoError>([&] { WordPieceTokenizer::from_vocab_file(kTok + "/nope.txt"); }), "nope.txt"));
  const std::string no_unk = write_temp("no_unk.txt", "a\nb\n");
  CHECK(contains(error_of<IoError>([&] { WordPieceTokenizer::from_vocab_file(no_unk); }), "[UNK]"));

  const auto spm = SentencePieceTokenizer::from_file(kSpm + "nfkc.model");
  CHECK(contains(error_of<ValueError>([&] { spm.decode({300}); }), "300"));
  CHECK(contains(error_of<ValueError>([&] { spm.id_to_token(-2); }), "-2"));
  CHECK(contains(error_of<IoError>([&] { SentencePieceTokenizer::from_file(kSpm + "missing.model"); }), "missing.model"));
  const std::string model = read_file(kSpm + "nfkc.model");
  const std::string truncated = write_temp("truncated.model", model.substr(0, model.size() / 2));
  CHECK(contains(error_of<IoError>([&] { SentencePieceTokenizer::from_file(truncated); }), truncated));
  const std::string garbage = write_temp("garbage.model", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
  CHECK(contains(error_of<IoError>([&] { SentencePieceTokenizer::from_file(garbage); }), garbage));
  const std::string text = write_temp("text.model", "this is not a model\n");
  CHECK(contains(error_of<IoError>([&] { SentencePieceTokenizer::from_file(text); }), text));
  // every truncation of a model either loads or throws IoError, never crashes
  const std::string small = read_file(kSpm + "bytes.model");
  for (std::size_t n = 0; n < small.size(); n += 97) {
    try {
      const auto m = SentencePieceTokenizer::from_bytes(std::string_view(small).substr(0, n), "cut.model");
      (void)m.encode("hello world");
    } catch (const IoError& e) {
      CHECK(contains(e.what(), "cut.model"));
    }
  }
  CHECK(contains(error_of<IoError>([&] { load_tokenizer(temp_path("empty_dir_does_not_exist")); }), "no tokenizer"));

  // A sparse id near the 2^26 limit is stored as one entry (an array indexed by id took 2 GB).
  const std::string sparse = write_temp("sparse.json", R"({"a": 0, "b": 67108863})");
  const auto far = ByteLevelBPE::from_files(sparse, write_temp("no_merges.txt", ""));
  CHECK(far.vocab_size() == std::size_t(1) << 26);
  CHECK(far.decode({67108863, 0}) == "ba");
  CHECK(contains(error_of<ValueError>([&] { far.decode({5}); }), "id 5"));
  // A post-processor that adds a token the vocabulary lacks would make encode emit an unknown id.
  const std::string bad_post = write_temp("bad_post.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [7]}}}})");
  CHECK(contains(error_of<IoError>([&] { ByteLevelBPE::from_tokenizer_json(bad_post); }),
                 "post_processor adds id 7, which is not in the vocabulary"));
}

TEST_CASE("load_tokenizer picks the tokenizer a directory holds") {
  namespace fs = std::filesystem;
  const fs::path root = temp_path("load");
  fs::create_directories(root / "bert");
  fs::create_directories(root / "opt");
  fs::create_directories(root / "t5");
  fs::copy_file(kTok + "/bert-base-uncased-vocab.txt", root / "bert" / "vocab.txt", fs::copy_options::overwrite_existing);
  fs::copy_file(kTok + "/gpt2-vocab.json", root / "opt" / "vocab.json", fs::copy_options::overwrite_existing);
  fs::copy_file(kTok + "/gpt2-merges.txt", root / "opt" / "merges.txt", fs::copy_options::overwrite_existing);
  std::ofstream(root / "opt" / "tokenizer_config.json")
      << R"({"add_bos_token": true, "bos_token": {"content": "</s>"}, "eos_token": "</s>", "pad_token": "<pad>"})";
  fs::copy_file(kSpm + "nfkc.model", root / "t5" / "spiece.model", fs::copy_options::overwrite_existing);

  const auto b = load_tokenizer((root / "bert").string());
  CHECK(dynamic_cast<const WordPieceTokenizer*>(b.get()) != nullptr);
  CHECK(b->encode("a cat") == std::vector<Id>{101, 1037, 4937, 102});
  const auto o = load_tokenizer((root / "opt").string());
  CHECK(dynamic_cast<const ByteLevelBPE*>(o.get()) != nullptr);
  CHECK(o->encode("a photo of") == std::vector<Id>{o->bos_id(), 64, 4590, 286});
  CHECK(o->id_to_token(o->bos_id()) == "</s>");
  CHECK(o->eos_id() == o->bos_id());
  CHECK(o->pad_id() != kNoId);
  const auto t = load_tokenizer((root / "t5" / "spiece.model").string());
  CHECK(dynamic_cast<const SentencePieceTokenizer*>(t.get()) != nullptr);
  CHECK(t->vocab_size() == 400);
  CHECK(t->encode("").back() == 1);
  CHECK(contains(error_of<IoError>([&] { load_tokenizer((root / "nothing").string()); }), "no tokenizer"));
  fs::remove_all(root);
}
