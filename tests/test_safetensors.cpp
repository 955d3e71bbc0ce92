// safetensors: reading HF files, writing, and refusing corrupt files with a named error.
#include "support.hpp"

#include <blip2/io/checkpoint.hpp>
#include <blip2/io/safetensors.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace blip2;
using io::SafeTensorsFile;

namespace {
const std::string kData = BLIP2_TEST_DATA;

std::string temp_path(const std::string& name) { return "/tmp/blip2_test_" + std::to_string(::getpid()) + "_" + name; }

// Writes a file with the given JSON header and `data_bytes` zero bytes after it.
std::string write_raw(const std::string& name, const std::string& header, std::size_t data_bytes,
                      std::uint64_t claimed_len = ~std::uint64_t(0)) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = claimed_len == ~std::uint64_t(0) ? header.size() : claimed_len;
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
  return path;
}
}  // namespace

TEST_CASE("reads a transformers-written file") {
  const auto f = SafeTensorsFile::open(kData + "/hf-blip2/blip2-opt-tiny/io.safetensors");
  CHECK(f.contains("logits"));
  CHECK(f.entry("logits").shape == Shape{2, 15, 128});
  const auto ids = f.load<std::int64_t>("text_input_ids");
  CHECK(ids.shape() == Shape{2, 7});
  const auto logits = f.load<float>("logits");
  const auto as_double = f.load<double>("logits");
  CHECK(double(logits.to_vector()[17]) == as_double.to_vector()[17]);
  const auto model = SafeTensorsFile::open(kData + "/hf-blip2/blip2-opt-tiny/model/model.safetensors");
  CHECK(model.metadata().at("format") == "pt");
  CHECK(model.contains("qformer.encoder.layer.0.crossattention.attention.query.weight"));
}

TEST_CASE("write and read back every dtype") {
  Generator g(1);
  const auto a = randn<float>({3, 4}, g);
  const auto b = a.to<bf16>();
  const auto c = Tensor<std::int64_t>::from_vector({2}, {-5, 7});
  const auto u = Tensor<std::uint8_t>::from_vector({3}, {0, 128, 255});
  const std::string path = temp_path("roundtrip.safetensors");
  io::save_safetensors(path, {io::TensorRecord::from("a", a), io::TensorRecord::from("b", b),
                              io::TensorRecord::from("c", c), io::TensorRecord::from("u", u),
                              io::TensorRecord::from("h", a.to<f16>()), io::TensorRecord::from("d", a.to<double>())});
  const auto f = SafeTensorsFile::open(path);
  CHECK(f.load<float>("a").to_vector() == a.to_vector());
  CHECK(f.load<float>("b").to_vector() == b.to<float>().to_vector());
  CHECK(f.load<std::int64_t>("c").to_vector() == c.to_vector());
  CHECK(f.load<std::uint8_t>("u").to_vector() == u.to_vector());
  CHECK(f.entry("h").dtype == DType::f16);
  CHECK(f.load<double>("d").to_vector()[0] == double(a.to_vector()[0]));
  auto view = f.load<float>("a");  // a copy-on-write view: writing does not change the file
  view.data()[0] = 123.0f;
  CHECK(SafeTensorsFile::open(path).load<float>("a").to_vector()[0] == a.to_vector()[0]);
  CHECK_THROWS_WITH_AS(f.load<float>("missing"), doctest::Contains("no tensor named 'missing'"), IoError);
  std::remove(path.c_str());
}

TEST_CASE("corrupt files are refused with the file and tensor named") {
  const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK_NOTHROW(SafeTensorsFile::open(write_raw("ok", ok, 8)));
  {
    const std::string p = temp_path("short");
    std::ofstream(p, std::ios::binary) << "abc";
    CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("truncated"), IoError);
  }
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(write_raw("len", ok, 8, 1u << 20)), doctest::Contains("past the end"),
                       IoError);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(write_raw("json", "{\"t\": [", 0)), doctest::Contains("not valid JSON"),
                       IoError);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(write_raw("range", ok, 4)), doctest::Contains("tensor 't'"), IoError);
  CHECK_THROWS_WITH_AS(
      SafeTensorsFile::open(write_raw("overlap",
                                      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                      12)),
      doctest::Contains("overlap"), IoError);
  CHECK_THROWS_WITH_AS(
      SafeTensorsFile::open(write_raw("dtype", R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8)),
      doctest::Contains("unsupported dtype 'Q4'"), IoError);
  CHECK_THROWS_WITH_AS(
      SafeTensorsFile::open(write_raw("bytes", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
      doctest::Contains("need 12 bytes"), IoError);
  CHECK_THROWS_WITH_AS(
      SafeTensorsFile::open(write_raw("neg", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
      doctest::Contains("negative"), IoError);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(temp_path("does-not-exist")), doctest::Contains("cannot open"), IoError);
  // 2^40 x 2^22 float64s: the byte count 2^65 wraps to 0 in 64 bits and would pass an empty span.
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(write_raw(
                           "wrap", R"({"t":{"dtype":"F64","shape":[1099511627776,4194304],"data_offsets":[0,0]}})", 8)),
                       doctest::Contains("need more than 2^64 bytes"), IoError);
}

TEST_CASE("a sharded checkpoint's index names files in its directory only") {
  const auto dir = std::filesystem::path(temp_path("sharded"));
  std::filesystem::create_directories(dir);
  const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::filesystem::copy_file(write_raw("shard", ok, 8), dir / "model-1.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(dir / "model.safetensors");
  for (const std::string file : {"model-1.safetensors", "../shard", "/etc/passwd", "sub/model-1.safetensors", ".."}) {
    INFO(file);
    std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"t": ")" << file << R"("}})";
    if (file == "model-1.safetensors") {
      CHECK(io::Checkpoint::open(dir.string()).contains("t"));
    } else {
      CHECK_THROWS_WITH_AS(io::Checkpoint::open(dir.string()), doctest::Contains("not a file in"), IoError);
    }
  }
}
