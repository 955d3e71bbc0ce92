// The pre-training data side: LAVIS's caption cleaning, streamed annotation files (JSON array and
// JSON lines), webdataset tar shards, and the threaded loader (shapes, seeded order, rank sharding,
// mixing ratios, bad images, errors from workers, the bounded prefetch). The data is written at test
// time into a temporary folder: solid-colour PNGs whose colour encodes the example's number, so a
// batch's pixels can be checked against its captions.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <blip2/data/annotations.hpp>
#include <blip2/data/caption_processor.hpp>
#include <blip2/data/loader.hpp>
#include <blip2/data/tar_shards.hpp>
#include <blip2/image/encode_png.hpp>
#include <blip2/image/normalize.hpp>
#include <blip2/train/image_feature_cache.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace blip2;
using namespace blip2::data;
using Bytes = std::vector<std::uint8_t>;

namespace {

const std::string kImages = std::string(BLIP2_TEST_DATA) + "/images/";

// A folder under /tmp for this run, removed at exit.
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/blip2_data_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
const std::string& tmp() {
  static TempDir dir;
  return dir.path;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = tmp() + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}
std::string write_file(const std::string& name, const Bytes& bytes) {
  return write_file(name, std::string(bytes.begin(), bytes.end()));
}

// The message of the IoError f throws (the test fails if it throws nothing or something else).
template <class F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected an IoError, got: " << e.what());
  }
  FAIL("expected an IoError, nothing was thrown");
  return {};
}
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A solid-colour PNG of w x h pixels.
Bytes solid_png(int w, int h, std::array<std::uint8_t, 3> rgb) {
  image::Image img(w, h);
  for (std::size_t i = 0; i < img.data.size(); i += 3) std::copy(rgb.begin(), rgb.end(), img.data.begin() + std::ptrdiff_t(i));
  const std::string png = image::encode_png(img);
  return Bytes(png.begin(), png.end());
}

// Example i is a solid 40x30 PNG whose red channel is 3 + 8 i, captioned "Photo NUMBER i: ...".
std::array<std::uint8_t, 3> colour_of(int i) { return {std::uint8_t(3 + 8 * i), std::uint8_t(252 - 8 * i), 90}; }
Bytes example_png(int i) { return solid_png(40, 30, colour_of(i)); }
std::string raw_caption(int i) { return "Photo NUMBER " + std::to_string(i) + ": a Red Square."; }
std::string clean_caption(int i) { return "photo number " + std::to_string(i) + " a red square"; }
constexpr int kExamples = 12;

// The example number encoded in the red channel of a batch row (eval transform keeps it solid).
int example_of_row(const Batch& b, int row) {
  const index_t s = b.pixel_values.shape()[2];
  const float x = b.pixel_values.data()[index_t(row) * 3 * s * s];
  const int v = int(std::lround((x * image::kClipStd[0] + image::kClipMean[0]) * 255.0f));
  return (v - 3) / 8;
}
std::vector<float> values(const Tensor<float>& t) { return {t.data(), t.data() + t.numel()}; }
int example_of_caption(const std::string& caption) {
  return std::stoi(caption.substr(std::string("photo number ").size()));
}

// The image folder, an annotation list of its examples, and the same as JSON lines.
const std::string& image_root() {
  static const std::string root = [] {
    for (int i = 0; i < kExamples; ++i) write_file("images/img_" + std::to_string(i) + ".png", example_png(i));
    return tmp() + "/images";
  }();
  return root;
}
std::vector<CaptionRecord> example_records(int first = 0, int count = kExamples) {
  std::vector<CaptionRecord> r;
  for (int i = first; i < first + count; ++i)
    r.push_back({image_root() + "/img_" + std::to_string(i) + ".png", raw_caption(i), nlohmann::json::object()});
  return r;
}
std::string examples_jsonl() {
  static const std::string path = [] {
    std::string text;
    for (int i = 0; i < kExamples; ++i)
      text += nlohmann::json{{"image", "img_" + std::to_string(i) + ".png"}, {"caption", raw_caption(i)}}.dump() + "\n";
    return write_file("examples.jsonl", text);
  }();
  return path;
}

// ---- a minimal tar writer (ustar, GNU 'L' long names, pax 'x' headers) ----
class TarWriter {
 public:
  // Returns the byte offset of the member's (first) header.
  std::size_t add(const std::string& name, const Bytes& data, char type = '0') {
    const std::size_t at = out_.size();
    if (name.size() > 100) {  // GNU: the full name travels in an 'L' entry before the header
      header("././@LongLink", name.size() + 1, 'L');
      block_data(Bytes(name.begin(), name.end()), true);
    }
    header(name.substr(0, 100), data.size(), type);
    block_data(data, false);
    return at;
  }
  std::size_t add(const std::string& name, const std::string& text) {
    return add(name, Bytes(text.begin(), text.end()));
  }
  // A pax header carrying the path, then the member under a short stand-in name.
  std::size_t add_pax(const std::string& name, const Bytes& data) {
    const std::size_t at = out_.size();
    std::string record = " path=" + name + "\n";
    std::size_t len = record.size() + 1;
    while (std::to_string(len).size() + record.size() != len) ++len;
    record = std::to_string(len) + record;
    header("PaxHeaders/x", record.size(), 'x');
    block_data(Bytes(record.begin(), record.end()), false);
    header("stand-in-name", data.size(), '0');
    block_data(data, false);
    return at;
  }
  Bytes finish() {
    out_.resize(out_.size() + 1024, 0);
    return out_;
  }

 private:
  void header(const std::string& name, std::size_t size, char type) {
    std::array<char, 512> h{};
    std::copy(name.begin(), name.end(), h.begin());
    std::snprintf(h.data() + 100, 8, "%07o", 0644);
    std::snprintf(h.data() + 108, 8, "%07o", 0);
    std::snprintf(h.data() + 116, 8, "%07o", 0);
    std::snprintf(h.data() + 124, 12, "%011zo", size);
    std::snprintf(h.data() + 136, 12, "%011o", 0);
    h[156] = type;
    std::memcpy(h.data() + 257, "ustar\0" "00", 8);
    std::fill(h.begin() + 148, h.begin() + 156, ' ');
    unsigned sum = 0;
    for (char c : h) sum += static_cast<unsigned char>(c);
    std::snprintf(h.data() + 148, 8, "%06o", sum);
    out_.insert(out_.end(), h.begin(), h.end());
  }
  void block_data(const Bytes& data, bool nul) {
    out_.insert(out_.end(), data.begin(), data.end());
    if (nul) out_.push_back(0);
    out_.resize((out_.size() + 511) / 512 * 512, 0);
  }
  Bytes out_;
};

// Shard with examples [first, first + count): a .png and a .txt each.
std::string example_shard(const std::string& name, int first, int count) {
  TarWriter w;
  for (int i = first; i < first + count; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "%06d", i);
    w.add(std::string(key) + ".png", example_png(i));
    w.add(std::string(key) + ".txt", raw_caption(i));
  }
  return write_file(name, w.finish());
}

// Drains the epoch; the example numbers in order (checked against the captions).
std::vector<int> epoch_examples(Loader& loader, std::vector<Batch>* batches = nullptr) {
  std::vector<int> seen;
  Batch b;
  while (loader.next(b)) {
    for (int r = 0; r < int(b.captions.size()); ++r) {
      const int e = example_of_row(b, r);
      CHECK(e == example_of_caption(b.captions[std::size_t(r)]));
      seen.push_back(e);
    }
    if (batches) batches->push_back(b);
  }
  return seen;
}

LoaderOptions eval_options(int batch, int size = 8) {
  LoaderOptions o;
  o.batch_size = batch;
  o.image_size = size;
  o.augment = false;
  o.drop_last = false;
  o.workers = 2;
  o.seed = 1234;
  return o;
}

}  // namespace

TEST_CASE("pre_caption follows LAVIS's BlipCaptionProcessor rule for rule") {
  // Expected values printed by LAVIS's own pre_caption (Python re) on the same strings.
  CHECK(pre_caption("A Man, Riding a HORSE!!") == "a man, riding a horse");
  CHECK(pre_caption("  (Two) dogs:  playing ~ fetch.  ") == "two dogs playing fetch");
  CHECK(pre_caption("a\tb") == "a\tb");  // a single whitespace character is left alone
  CHECK(pre_caption("a\t\tb") == "a b");
  CHECK(pre_caption("hello\n") == "hello");
  CHECK(pre_caption("hello\n\n") == "hello");
  CHECK(pre_caption("\ttabbed") == "\ttabbed");
  CHECK(pre_caption("it's #1; isn't it? *yes*") == "it's 1 isn't it? yes");
  CHECK(pre_caption("x  \n") == "x");
  CHECK(pre_caption("\n\nstart") == "start");
  CHECK(pre_caption("\xC3\x89" "COLE \xC5\xB8 \xC4\x80\xC4\x82 \xC4\xB0 \xD0\x94\xD0\x9E\xD0\x9C") ==
        "\xC3\xA9" "cole \xC3\xBF \xC4\x81\xC4\x83 i\xCC\x87 \xD0\xB4\xD0\xBE\xD0\xBC");
  CHECK(pre_caption("a\xC2\xA0\xC2\xA0" "b\xE3\x80\x80" "c") == "a b\xE3\x80\x80" "c");  // NBSP run; lone U+3000
  CHECK(pre_caption("bad \xFF byte") == "bad \xFF byte");
  CHECK(pre_caption("one two three four five", 3) == "one two three");
  CHECK(pre_caption("a\tb c d", 2) == "a\tb c");
  CHECK(pre_caption("") == "");
  std::string long_caption;
  for (int i = 0; i < 60; ++i) long_caption += "w" + std::to_string(i) + " ";
  const std::string cut = pre_caption(long_caption);
  CHECK(std::count(cut.begin(), cut.end(), ' ') == 49);
  CHECK(cut.substr(cut.size() - 3) == "w49");

  const CaptionProcessor with_prompt{"a photo of ", 50};
  CHECK(with_prompt("Dog.") == "a photo of dog");
  CHECK_THROWS_AS(pre_caption("x", 0), ValueError);
}

TEST_CASE("annotations: a JSON array is streamed entry by entry") {
  const std::string path = write_file("ann/array.json",
                                      "\xEF\xBB\xBF[\n"
                                      "  {\"image\": \"a.png\", \"caption\": \"A Cat.\", \"image_id\": 7},\n"
                                      "  {\n"
                                      "    \"image\": \"/abs/b.png\",\n"
                                      "    \"caption\": [\"one\", \"two [x], {y}: \\\"z\\\"\"]\n"
                                      "  },\n"
                                      "  {\"image\": \"sub/c.png\", \"caption\": \"esc \\\\ ] }\",\n"
                                      "   \"extra\": {\"k\": [1, 2]}}\n"
                                      "]\n");
  AnnotationReader reader(path, "/root/");
  std::vector<CaptionRecord> got;
  for (CaptionRecord r; reader.next(r);) got.push_back(r);
  REQUIRE(got.size() == 4);
  CHECK(got[0].image == "/root/a.png");
  CHECK(got[0].caption == "A Cat.");
  CHECK(got[0].extra == nlohmann::json{{"image_id", 7}});
  CHECK(got[1].image == "/abs/b.png");  // absolute paths are kept
  CHECK(got[1].caption == "one");
  CHECK(got[2].image == "/abs/b.png");
  CHECK(got[2].caption == "two [x], {y}: \"z\"");
  CHECK(got[3].image == "/root/sub/c.png");
  CHECK(got[3].caption == "esc \\ ] }");
  CHECK(got[3].extra["extra"]["k"] == nlohmann::json{1, 2});

  reader.rewind();
  CaptionRecord first;
  REQUIRE(reader.next(first));
  CHECK(first.caption == "A Cat.");
  CHECK(read_annotations(path, "").size() == 4);
  CHECK(read_annotations(path, "")[0].image == "a.png");
}

TEST_CASE("annotations: broken entries name the file and line") {
  auto drain = [](const std::string& path) {
    AnnotationReader reader(path, "");
    for (CaptionRecord r; reader.next(r);) {
    }
  };
  const std::string no_image = write_file("ann/no_image.json",
                                          "[\n  {\"image\": \"a.png\", \"caption\": \"x\"},\n"
                                          "  {\"image\": \"b.png\", \"caption\": \"y\"},\n  {\"caption\": \"z\"}\n]\n");
  std::string msg = io_error([&] { drain(no_image); });
  CHECK(contains(msg, no_image + ":4: no 'image' field"));

  const std::string bad_caption = write_file("ann/bad_caption.json", "[\n{\"image\": \"a.png\", \"caption\": 5}]");
  msg = io_error([&] { AnnotationReader r(bad_caption, ""); });  // the first entry is read up front
  CHECK(contains(msg, bad_caption + ":2: caption is not a string or a list of strings"));

  const std::string syntax = write_file("ann/syntax.json",
                                        "[\n  {\"image\": \"a.png\", \"caption\": \"x\"},\n  {\"image\": \"b.png\",\n"
                                        "   \"caption\": \"y\" \"z\"}\n]\n");
  msg = io_error([&] { drain(syntax); });
  CHECK(contains(msg, syntax + ":4: not valid JSON"));

  const std::string unterminated =
      write_file("ann/unterminated.json", "[\n {\"image\": \"a\", \"caption\": \"x\"},\n {\"image\": ");
  msg = io_error([&] { drain(unterminated); });
  CHECK(contains(msg, unterminated + ":3: the file ends inside the entry that starts at line 3"));

  const std::string trailing_comma = write_file("ann/comma.json", "[{\"image\": \"a\", \"caption\": \"x\"},\n]");
  CHECK(contains(io_error([&] { drain(trailing_comma); }), trailing_comma + ":2: expected an entry, found ']'"));

  const std::string not_object = write_file("ann/not_object.json", "[{\"image\": \"a\", \"caption\": \"x\"}, 3]");
  CHECK(contains(io_error([&] { drain(not_object); }), "entry is not a JSON object (it is number)"));

  const std::string empty = write_file("ann/empty.json", " [ ]\n");
  CHECK(contains(io_error([&] { AnnotationReader r(empty, ""); }), empty + ": no annotations"));
  const std::string garbage = write_file("ann/garbage.json", "\n\nnot json");
  CHECK(contains(io_error([&] { AnnotationReader r(garbage, ""); }), garbage + ":3: neither a JSON array"));
  CHECK(contains(io_error([&] { AnnotationReader r(tmp() + "/ann/missing.json", ""); }), "cannot open"));
}

TEST_CASE("annotations: JSON lines") {
  const std::string path = write_file("ann/lines.jsonl",
                                      "{\"image\": \"a.png\", \"caption\": \"first\", \"image_id\": 1}\n"
                                      "\n"
                                      "{\"image\": \"b.png\", \"caption\": [\"second\", \"third\"]}\r\n"
                                      "{\"image\": \"c.png\", \"caption\": [1, \"x\"]}\n"
                                      "{\"image\": \"d.png\", \"caption\": \"never reached\"}\n");
  AnnotationReader reader(path, "imgs");
  CaptionRecord r;
  REQUIRE(reader.next(r));
  CHECK(r.image == "imgs/a.png");
  CHECK(r.extra["image_id"] == 1);
  REQUIRE(reader.next(r));
  CHECK(r.caption == "second");
  REQUIRE(reader.next(r));
  CHECK(r.caption == "third");
  CHECK(r.image == "imgs/b.png");
  const std::string msg = io_error([&] { reader.next(r); });
  CHECK(contains(msg, path + ":4: caption is not a string or a list of strings"));

  const std::string syntax =
      write_file("ann/syntax.jsonl", "{\"image\": \"a.png\", \"caption\": \"x\"}\n{\"image\": }\n");
  AnnotationReader bad(syntax, "");
  REQUIRE(bad.next(r));
  CHECK(contains(io_error([&] { bad.next(r); }), syntax + ":2: not valid JSON"));
  const std::string blank = write_file("ann/blank.jsonl", "\n  \n");
  CHECK(contains(io_error([&] { AnnotationReader e(blank, ""); }), blank + ": no annotations"));
}

TEST_CASE("tar shards: samples grouped by key, long names, pax paths") {
  const Bytes jpeg = read_bytes(kImages + "rocket.jpg");
  const std::string long_dir(120, 'd');
  TarWriter w;
  w.add("000000.png", example_png(0));
  w.add("000000.txt", "Caption from txt.");
  w.add("000000.cls", "3");                       // not used: skipped unread
  w.add("000001.jpg", jpeg);
  w.add("000001.json", R"({"caption": "from json", "url": "http://x"})");
  w.add("dir/", Bytes{}, '5');                    // a directory
  w.add(long_dir + "/sample.PNG", example_png(2));  // GNU 'L' long name; extension case-folded
  w.add(long_dir + "/sample.txt", "long name");
  w.add_pax("pax/" + std::string(110, 'p') + ".png", example_png(3));
  const std::string pax_json = R"({"text":"p"})";
  w.add_pax("pax/" + std::string(110, 'p') + ".json", Bytes(pax_json.begin(), pax_json.end()));
  w.add("000004.txt", "no image");               // incomplete: counted and passed over
  w.add("README", "no dot: skipped");
  w.add("000005.png", example_png(5));
  w.add("000005.json", R"({"caption": "json caption", "text": "not used"})");
  w.add("000005.txt", "txt wins");
  const std::string shard = write_file("tar/mixed.tar", w.finish());

  TarShardReader reader({shard});
  std::vector<ShardSample> got;
  for (ShardSample s; reader.next(s);) got.push_back(s);
  REQUIRE(got.size() == 5);
  CHECK(got[0].key == "000000");
  CHECK(got[0].image == example_png(0));
  CHECK(got[0].caption == "Caption from txt.");
  CHECK(got[0].image_name == shard + ":000000.png");
  CHECK(got[1].key == "000001");
  CHECK(got[1].image == jpeg);
  CHECK(got[1].caption == "from json");
  CHECK(got[1].json["url"] == "http://x");
  CHECK(got[2].key == long_dir + "/sample");
  CHECK(got[2].image == example_png(2));
  CHECK(got[2].caption == "long name");
  CHECK(got[3].key == "pax/" + std::string(110, 'p'));
  CHECK(got[3].caption == "p");
  CHECK(got[4].key == "000005");
  CHECK(got[4].caption == "txt wins");
  CHECK(got[4].ordinal == 5);  // the incomplete sample 000004 keeps its place
  CHECK(reader.incomplete() == 1);
  CHECK(image::decode_image(got[1].image, got[1].image_name).width > 0);

  reader.rewind();
  ShardSample again;
  REQUIRE(reader.next(again));
  CHECK(again.key == "000000");
}

TEST_CASE("tar shards: truncated and corrupt archives name the shard and byte") {
  TarWriter w;
  w.add("000000.png", example_png(0));
  w.add("000000.txt", "a");
  const std::size_t second = w.add("000001.png", example_png(1));
  w.add("000001.txt", "b");
  const Bytes whole = w.finish();

  auto prefix = [&](std::size_t n) { return Bytes(whole.begin(), whole.begin() + std::ptrdiff_t(n)); };
  const std::string truncated = write_file("tar/truncated.tar", prefix(second + 700));
  TarShardReader reader({truncated});
  ShardSample s;
  REQUIRE(reader.next(s));
  const std::string msg = io_error([&] { reader.next(s); });
  CHECK(contains(msg, truncated + ": truncated tar (member '000001.png'"));
  CHECK(contains(msg, "at byte " + std::to_string(second)));

  const std::string cut_header = write_file("tar/cut_header.tar", prefix(second + 100));
  TarShardReader header_reader({cut_header});
  REQUIRE(header_reader.next(s));
  CHECK(contains(io_error([&] { header_reader.next(s); }),
                 "truncated tar (a header at byte " + std::to_string(second)));

  Bytes corrupt = whole;
  corrupt[second + 3] ^= 0x5A;  // inside the name: the checksum no longer matches
  const std::string bad = write_file("tar/corrupt.tar", corrupt);
  TarShardReader corrupt_reader({bad});
  REQUIRE(corrupt_reader.next(s));
  CHECK(contains(io_error([&] { corrupt_reader.next(s); }),
                 bad + ": corrupt tar header at byte " + std::to_string(second)));

  const std::string not_tar = write_file("tar/not_a_tar.tar", std::string(600, 'x'));
  TarShardReader not_tar_reader({not_tar});
  CHECK(contains(io_error([&] { not_tar_reader.next(s); }), "corrupt tar header at byte 0"));
  CHECK(contains(io_error([&] { CaptionShards missing(std::vector<std::string>{tmp() + "/tar/missing.tar"}); }),
                 "missing.tar: cannot open"));
}

TEST_CASE("tar shards: several shards in order, brace patterns") {
  CHECK(expand_shard_pattern("s-{000..002}.tar") == std::vector<std::string>{"s-000.tar", "s-001.tar", "s-002.tar"});
  CHECK(expand_shard_pattern("{a,b}-{8..10}") ==
        std::vector<std::string>{"a-8", "a-9", "a-10", "b-8", "b-9", "b-10"});
  CHECK(expand_shard_pattern("x{1..0}::y") == std::vector<std::string>{"x1", "x0", "y"});
  CHECK(expand_shard_pattern("{lit}-{0,{1..2}}") == std::vector<std::string>{"{lit}-0", "{lit}-1", "{lit}-2"});
  CHECK_THROWS_AS(expand_shard_pattern("s-{0..2.tar"), ValueError);

  example_shard("multi/part-0.tar", 0, 3);
  example_shard("multi/part-1.tar", 3, 2);
  TarShardReader reader(expand_shard_pattern(tmp() + "/multi/part-{0..1}.tar"));
  std::vector<std::string> captions;
  for (ShardSample s; reader.next(s);) captions.push_back(s.caption);
  CHECK(captions == std::vector<std::string>{raw_caption(0), raw_caption(1), raw_caption(2), raw_caption(3),
                                             raw_caption(4)});
}

TEST_CASE("loader: batches have the right shapes and matching captions") {
  auto list = std::make_shared<CaptionList>(example_records());
  LoaderOptions o = eval_options(5);
  o.drop_last = true;
  Loader loader({{list, 1.0, CaptionProcessor{"a picture: ", 50}}}, o);
  std::vector<Batch> batches;
  Batch b;
  while (loader.next(b)) batches.push_back(b);
  REQUIRE(batches.size() == 2);  // 12 examples, batches of 5, the last 2 dropped
  for (const auto& batch : batches) {
    CHECK(batch.pixel_values.shape() == Shape{5, 3, 8, 8});
    REQUIRE(batch.captions.size() == 5);
    REQUIRE(batch.images.size() == 5);
    for (int r = 0; r < 5; ++r) {
      const std::string& caption = batch.captions[std::size_t(r)];
      REQUIRE(caption.rfind("a picture: ", 0) == 0);
      const int e = example_of_caption(caption.substr(11));
      CHECK(caption.substr(11) == clean_caption(e));
      CHECK(example_of_row(batch, r) == e);
      CHECK(batch.images[std::size_t(r)] == image_root() + "/img_" + std::to_string(e) + ".png");
      // Solid images stay solid: every pixel of the plane is the same value.
      const float* p = batch.pixel_values.data() + index_t(r) * 3 * 64;
      CHECK(std::all_of(p, p + 64, [&](float v) { return v == p[0]; }));
    }
  }
  CHECK(batches[1].index == 1);
  CHECK_FALSE(loader.next(b));  // stays over until set_epoch
}

TEST_CASE("loader: order is a seeded function of (seed, epoch); each epoch is a permutation") {
  auto list = std::make_shared<CaptionList>(example_records());
  Loader a(list, eval_options(4));
  Loader b(list, eval_options(4));
  const auto first = epoch_examples(a);
  CHECK(first == epoch_examples(b));
  std::vector<int> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> all(kExamples);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);

  a.set_epoch(1);
  const auto second = epoch_examples(a);
  CHECK(second != first);
  b.set_epoch(1);
  CHECK(epoch_examples(b) == second);  // epoch 1 without replaying epoch 0 gives the same
  a.set_epoch(0);
  CHECK(epoch_examples(a) == first);

  LoaderOptions other = eval_options(4);
  other.seed = 99;
  Loader c(list, other);
  CHECK(epoch_examples(c) != first);
  LoaderOptions in_order = eval_options(4);
  in_order.shuffle = false;
  Loader d(list, in_order);
  CHECK(epoch_examples(d) == all);
}

TEST_CASE("loader: ranks see disjoint shares that cover the data") {
  example_shard("ranks/one.tar", 0, kExamples);
  for (int i = 0; i < 4; ++i) example_shard("ranks/four-" + std::to_string(i) + ".tar", 3 * i, 3);
  const std::vector<std::pair<std::string, std::shared_ptr<const Dataset>>> datasets = {
      {"in-memory list", std::make_shared<CaptionList>(example_records())},
      {"streamed JSON lines", std::make_shared<CaptionFile>(examples_jsonl(), image_root(), 5)},
      {"one shard, split by sample", std::make_shared<CaptionShards>(tmp() + "/ranks/one.tar", 4)},
      {"four shards, split by shard", std::make_shared<CaptionShards>(tmp() + "/ranks/four-{0..3}.tar", 4)},
  };
  for (const auto& [what, dataset] : datasets) {
    INFO(what);
    const int world = 3;
    std::multiset<int> union_of_ranks;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = eval_options(2);
      o.rank = rank;
      o.world_size = world;
      Loader loader(dataset, o);
      const auto mine = epoch_examples(loader);
      CHECK(!mine.empty());
      union_of_ranks.insert(mine.begin(), mine.end());
      Loader again(dataset, o);
      CHECK(epoch_examples(again) == mine);  // reproducible per rank
    }
    CHECK(union_of_ranks.size() == std::size_t(kExamples));
    for (int e = 0; e < kExamples; ++e) CHECK(union_of_ranks.count(e) == 1);
  }
}

TEST_CASE("loader: W ranks' batches, stacked in rank order, are one process's batches of W times the size") {
  const auto list = std::make_shared<CaptionList>(example_records());
  LoaderOptions whole = eval_options(6);
  whole.augment = true;  // the crops are seeded by the example, so they agree too
  std::vector<Batch> one;
  Loader single(list, whole);
  epoch_examples(single, &one);
  REQUIRE(one.size() == 2);
  for (const int world : {2, 3}) {
    INFO("world " << world);
    std::vector<std::vector<Batch>> ranks(static_cast<std::size_t>(world));
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = whole;
      o.batch_size = 6 / world;
      o.rank = rank;
      o.world_size = world;
      Loader loader(list, o);
      epoch_examples(loader, &ranks[std::size_t(rank)]);
      REQUIRE(ranks[std::size_t(rank)].size() == one.size());
    }
    for (std::size_t b = 0; b < one.size(); ++b) {
      std::vector<std::string> captions;
      std::vector<float> pixels;
      for (const auto& r : ranks) {
        captions.insert(captions.end(), r[b].captions.begin(), r[b].captions.end());
        const Tensor<float>& p = r[b].pixel_values;
        pixels.insert(pixels.end(), p.data(), p.data() + p.numel());
      }
      CHECK(captions == one[b].captions);
      const Tensor<float>& whole_pixels = one[b].pixel_values;
      CHECK(pixels == std::vector<float>(whole_pixels.data(), whole_pixels.data() + whole_pixels.numel()));
    }
  }
}

TEST_CASE("loader: streamed datasets are shuffled through a buffer, and differ per epoch") {
  auto file = std::make_shared<CaptionFile>(examples_jsonl(), image_root(), 6);
  Loader loader(file, eval_options(3));
  const auto first = epoch_examples(loader);
  CHECK(first.size() == std::size_t(kExamples));
  std::vector<int> all(kExamples);
  std::iota(all.begin(), all.end(), 0);
  CHECK(first != all);
  loader.set_epoch(1);
  CHECK(epoch_examples(loader) != first);

  auto shards = std::make_shared<CaptionShards>(tmp() + "/ranks/four-{0..3}.tar", 4);
  Loader from_tar(shards, eval_options(4));
  auto seen = epoch_examples(from_tar);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == all);
}

TEST_CASE("loader: mixing follows the ratios, batch by batch") {
  auto a = std::make_shared<CaptionList>(example_records(0, 6));
  auto b = std::make_shared<CaptionList>(example_records(6, 6));
  LoaderOptions o = eval_options(1, 4);
  o.batches_per_epoch = 200;
  Loader loader({{a, 3.0, {}}, {b, 1.0, {}}}, o);
  std::vector<Batch> batches;
  const auto seen = epoch_examples(loader, &batches);
  REQUIRE(batches.size() == 200);
  int from_a = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    from_a += batches[i].source == 0;
    CHECK((seen[i] < 6) == (batches[i].source == 0));
  }
  CHECK(from_a > 120);  // expected 150, standard deviation about 6
  CHECK(from_a < 180);

  // Every rank draws the same dataset for batch b (their batches stay in step).
  LoaderOptions rank1 = o;
  rank1.rank = 1;
  rank1.world_size = 2;
  Loader other({{a, 3.0, {}}, {b, 1.0, {}}}, rank1);
  std::vector<Batch> other_batches;
  epoch_examples(other, &other_batches);
  REQUIRE(other_batches.size() == 200);
  for (std::size_t i = 0; i < 200; ++i) CHECK(other_batches[i].source == batches[i].source);
  CHECK_THROWS_AS(Loader({{a, 1.0, {}}, {b, 1.0, {}}}, eval_options(1)), ValueError);  // needs batches_per_epoch
}

TEST_CASE("loader: bad images are skipped and counted, or raised, by option") {
  const std::string truncated = write_file("bad/truncated.jpg", read_bytes(kImages + "truncated.jpg"));
  std::vector<CaptionRecord> records = example_records(0, 6);
  records.insert(records.begin() + 2, {tmp() + "/bad/missing.png", "missing", {}});
  records.insert(records.begin() + 5, {truncated, "truncated", {}});
  auto list = std::make_shared<CaptionList>(records);

  LoaderOptions skip = eval_options(2);
  skip.shuffle = false;
  std::vector<std::string> warnings;
  skip.warn = [&](const std::string& w) { warnings.push_back(w); };
  Loader loader(list, skip);
  std::vector<Batch> batches;
  const auto seen = epoch_examples(loader, &batches);
  CHECK(seen == std::vector<int>{0, 1, 2, 3, 4, 5});  // full batches: skipped ones are replaced
  CHECK(batches.size() == 3);
  CHECK(loader.stats().skipped == 2);
  REQUIRE(warnings.size() == 2);
  CHECK(contains(warnings[0], "missing.png: cannot open"));
  CHECK(contains(warnings[1], "truncated.jpg: truncated JPEG"));

  LoaderOptions raise = skip;
  raise.bad_image = OnBadImage::raise;
  Loader strict(list, raise);
  Batch b;
  REQUIRE(strict.next(b));  // examples 0 and 1
  const std::string msg = io_error([&] { strict.next(b); });
  CHECK(contains(msg, tmp() + "/bad/missing.png: cannot open"));
  CHECK(contains(io_error([&] { strict.next(b); }), "missing.png"));  // stays failed

  // Cycling over a dataset where no image can be read is an error, not an endless skip.
  LoaderOptions cycling = skip;
  cycling.batches_per_epoch = 3;
  Loader hopeless(std::make_shared<CaptionList>(std::vector<CaptionRecord>{records[2], records[5]}), cycling);
  CHECK(contains(io_error([&] { hopeless.next(b); }), "not one image of pass 0 could be read"));

  std::vector<CaptionRecord> only_truncated = example_records(0, 1);
  only_truncated.push_back({truncated, "t", {}});
  Loader strict_decode(std::make_shared<CaptionList>(only_truncated), raise);
  CHECK(contains(io_error([&] { strict_decode.next(b); }), "truncated.jpg: truncated JPEG"));
}

TEST_CASE("loader: errors in a streamed annotation file surface in the consumer at their place") {
  std::string text;
  for (int i = 0; i < 4; ++i)
    text += nlohmann::json{{"image", "img_" + std::to_string(i) + ".png"}, {"caption", raw_caption(i)}}.dump() + "\n";
  text += "{\"image\": \"img_4.png\"}\n";
  const std::string path = write_file("bad/stream.jsonl", text);
  LoaderOptions o = eval_options(2);
  o.shuffle = false;
  Loader loader(std::make_shared<CaptionFile>(path, image_root()), o);
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(loader.next(b));
  CHECK(contains(io_error([&] { loader.next(b); }), path + ":5: no 'caption' field"));
}

TEST_CASE("loader: the prefetch stays within prefetch_batches") {
  auto list = std::make_shared<CaptionList>(example_records());
  LoaderOptions o = eval_options(2);
  o.prefetch_batches = 2;
  o.workers = 3;
  Loader loader(list, o);
  Batch b;
  REQUIRE(loader.next(b));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // workers run ahead as far as allowed
  const LoaderStats s = loader.stats();
  CHECK(s.buffered <= 4);
  CHECK(s.buffered >= 2);
  CHECK(s.max_buffered <= 4);
  int batches = 1;
  while (loader.next(b)) ++batches;
  CHECK(batches == 6);
  CHECK(loader.stats().max_buffered <= 4);
  CHECK(loader.stats().buffered == 0);

  Loader abandoned(list, o);  // destroyed mid-epoch with workers waiting: joins cleanly
  REQUIRE(abandoned.next(b));
}

TEST_CASE("loader: training augmentation is seeded per example") {
  const std::string photo = write_file("photos/rocket.jpg", read_bytes(kImages + "rocket.jpg"));
  const std::vector<CaptionRecord> records = {{photo, "A rocket.", {}}, {photo, "The same rocket.", {}}};
  auto list = std::make_shared<CaptionList>(records);
  LoaderOptions o;
  o.batch_size = 2;
  o.image_size = 32;
  o.seed = 7;
  o.shuffle = false;
  Loader a(list, o), b(list, o);
  Batch x, y;
  REQUIRE(a.next(x));
  REQUIRE(b.next(y));
  CHECK(x.pixel_values.shape() == Shape{2, 3, 32, 32});
  const auto vx = values(x.pixel_values), vy = values(y.pixel_values);
  CHECK(vx == vy);
  CHECK(std::all_of(vx.begin(), vx.end(), [](float v) { return std::isfinite(v) && std::abs(v) < 3.0f; }));
  CHECK(x.captions == std::vector<std::string>{"a rocket", "the same rocket"});
  // The two examples share a photo but not a crop; another epoch crops again.
  CHECK(!std::equal(vx.begin(), vx.begin() + 3 * 32 * 32, vx.begin() + 3 * 32 * 32));
  a.set_epoch(1);
  REQUIRE(a.next(x));
  CHECK(values(x.pixel_values) != vy);
}

TEST_CASE("image feature cache: each image encoded once, rows read back from the shards, refused for another encoder") {
  std::vector<CaptionRecord> records = example_records(0, 6);
  records.push_back({records[2].image, "Example two again.", {}});  // a second caption of an image
  records.push_back({tmp() + "/bad/not-there.png", "missing", {}});
  const auto list = std::make_shared<CaptionList>(records);
  // A stand-in encoder: image b's features [2, 3] are its channel means, then those plus one.
  long encoded = 0;
  const auto encode = [&](const Tensor<float>& pixels) {
    const index_t B = pixels.size(0), hw = pixels.size(2) * pixels.size(3);
    std::vector<float> out;
    for (index_t b = 0; b < B; ++b)
      for (int k = 0; k < 2; ++k)
        for (index_t c = 0; c < 3; ++c) {
          const float* p = pixels.data() + (b * 3 + c) * hw;
          out.push_back(std::accumulate(p, p + hw, 0.0f) / float(hw) + float(k));
        }
    encoded += B;
    return Tensor<float>::from_vector({B, 2, 3}, out);
  };
  ImageFeatureCache::BuildOptions o;
  o.image_size = 8;
  o.batch_size = 4;
  o.shard_bytes = 3 * 24;  // rows of 24 bytes: a shard after each batch of 4
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  const nlohmann::json identity = {{"encoder", "channel means"}, {"image_size", 8}};
  const std::string dir = tmp() + "/feature-cache";
  CHECK_FALSE(ImageFeatureCache::exists(dir));
  const auto cache = ImageFeatureCache::build(dir, {list}, identity, encode, o);
  CHECK(encoded == 6);
  CHECK(cache.size() == 6);
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "not-there.png"));
  CHECK(ImageFeatureCache::exists(dir));
  CHECK(std::filesystem::exists(dir + "/features-1.safetensors"));

  const auto reopened = ImageFeatureCache::open(dir, identity);
  const auto f = reopened.features({records[4].image, records[1].image, records[4].image});
  REQUIRE(f.shape() == Shape{3, 2, 3});
  for (int row = 0; row < 3; ++row) {
    const int example = row == 1 ? 1 : 4;
    const float red = (float(colour_of(example)[0]) / 255.0f - image::kClipMean[0]) / image::kClipStd[0];
    CHECK(f.data()[row * 6] == doctest::Approx(red).epsilon(1e-4));
    CHECK(f.data()[row * 6 + 3] == doctest::Approx(red + 1).epsilon(1e-4));
  }
  CHECK(values(cache.features({records[5].image})) == values(reopened.features({records[5].image})));
  CHECK_THROWS_WITH_AS(reopened.features({"nowhere.png"}), doctest::Contains("no features of nowhere.png"), ValueError);
  CHECK_THROWS_WITH_AS(ImageFeatureCache::open(dir, {{"encoder", "another"}, {"image_size", 8}}),
                       doctest::Contains("cached for another encoder"), ValueError);
  o.bad_image = OnBadImage::raise;
  CHECK(contains(io_error([&] { ImageFeatureCache::build(tmp() + "/strict-cache", {list}, identity, encode, o); }),
                 "not-there.png"));

  // The loader without decoding: image names and captions, no pixels; an image the cache lacks is
  // a bad image, skipped with a warning.
  LoaderOptions lo = eval_options(2);
  lo.shuffle = false;
  lo.decode_images = false;
  lo.has_image = [&](const std::string& image) { return cache.contains(image); };
  warnings.clear();
  lo.warn = [&](const std::string& w) { warnings.push_back(w); };
  Loader loader(list, lo);
  Batch b;
  std::vector<std::string> captions;
  while (loader.next(b)) {
    CHECK_FALSE(b.pixel_values.defined());
    REQUIRE(b.images.size() == b.captions.size());
    for (std::size_t i = 0; i < b.images.size(); ++i) {
      CHECK(cache.contains(b.images[i]));
      captions.push_back(b.captions[i]);
    }
  }
  CHECK(captions.size() == 7);
  CHECK(captions[0] == clean_caption(0));
  CHECK(captions[6] == "example two again");
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "not-there.png: not in the image feature cache"));
}
