// Image preprocessing: decoding to RGB as PIL does, PIL-exact bicubic resize, CLIP normalisation
// against transformers' BlipImageProcessor, augmentation, and refusing truncated or corrupt files.
#include "support.hpp"

#include <unistd.h>

#include <blip2/image/augment.hpp>
#include <blip2/image/decode.hpp>
#include <blip2/image/normalize.hpp>
#include <blip2/image/resize.hpp>
#include <blip2/io/safetensors.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <set>
#include <sstream>

using namespace blip2;
using namespace blip2::image;

namespace {
const std::string kData = BLIP2_TEST_DATA;
const std::string kImages = kData + "/images/";

std::string temp_path(const std::string& name) { return "/tmp/blip2_test_" + std::to_string(::getpid()) + "_" + name; }

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string write_bytes(const std::string& name, const std::vector<std::uint8_t>& bytes) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

const io::SafeTensorsFile& fixture() {
  static const io::SafeTensorsFile f = io::SafeTensorsFile::open(kData + "/hf-blip2/preprocess.safetensors");
  return f;
}

// An [H, W, 3] uint8 fixture array as an Image.
Image fixture_image(const std::string& key) {
  const auto t = fixture().load<std::uint8_t>(key);
  REQUIRE(t.dim() == 3);
  REQUIRE(t.shape()[2] == 3);
  return Image(int(t.shape()[1]), int(t.shape()[0]), t.to_vector());
}

struct Agreement {
  double percent_equal = 0;
  int max_diff = 0;
};

Agreement compare(const Image& a, const Image& b) {
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  std::size_t equal = 0;
  int worst = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    const int d = std::abs(int(a.data[i]) - int(b.data[i]));
    equal += d == 0;
    worst = std::max(worst, d);
  }
  return {100.0 * double(equal) / double(std::max<std::size_t>(1, a.data.size())), worst};
}

std::string describe(const Agreement& g) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(3) << g.percent_equal << "% equal, max diff " << g.max_diff;
  return os.str();
}

// The fixture's images, and the largest |pixel_values - transformers'| each may show. Our pixels
// equal PIL's; transformers 5.17's processor itself differs from PIL's uint8 resize by 1 level on
// about 0.3% of pixels (0.015 after normalisation) and by 2 levels on the 10x10 palette image
// (0.030), as the fixture's README says.
struct FixtureCase {
  const char* file;
  double pixel_values_tol;
};
const FixtureCase kCases[] = {{"astronaut.png", 0.016}, {"camera.png", 0.016}, {"chelsea.png", 0.016},
                              {"logo.png", 0.016},      {"palette_color.png", 0.031},
                              {"retina.jpg", 0.016},    {"rocket.jpg", 0.016}};

std::string key_of(const std::string& file) {
  std::string k = file;
  for (auto& c : k)
    if (c == '.') c = '_';
  return k;
}

// ---- a small PNG writer (stored deflate blocks) for colour types the sample files lack ----
void put_be32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(std::uint8_t(x >> s));
}
void put_chunk(std::vector<std::uint8_t>& png, const char* type, const std::vector<std::uint8_t>& data) {
  put_be32(png, std::uint32_t(data.size()));
  const std::size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, image::detail::crc32(png.data() + start, png.size() - start));
}
// A zlib stream of one stored (uncompressed) deflate block holding `raw`.
std::vector<std::uint8_t> zlib_stored(const std::vector<std::uint8_t>& raw) {
  REQUIRE(raw.size() < 65536);
  std::vector<std::uint8_t> z = {0x78, 0x01, 0x01};  // zlib header; final stored block
  const std::uint16_t len = std::uint16_t(raw.size()), nlen = std::uint16_t(~len);
  z.push_back(std::uint8_t(len & 0xFF));
  z.push_back(std::uint8_t(len >> 8));
  z.push_back(std::uint8_t(nlen & 0xFF));
  z.push_back(std::uint8_t(nlen >> 8));
  z.insert(z.end(), raw.begin(), raw.end());
  std::uint32_t a = 1, b = 0;
  for (auto c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);
  return z;
}
// A PNG of w x h pixels whose rows (without filter bytes) are `rows`, filter type 0 everywhere; with
// idat_keep, the pixel stream is cut to that many bytes (the chunks stay valid).
std::vector<std::uint8_t> make_png(int w, int h, int bit_depth, int colour_type, const std::vector<std::uint8_t>& rows,
                                   const std::vector<std::vector<std::uint8_t>>& extra_chunks = {},
                                   const std::vector<std::string>& extra_types = {}, std::size_t idat_keep = ~std::size_t(0)) {
  std::vector<std::uint8_t> png = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  std::vector<std::uint8_t> ihdr;
  put_be32(ihdr, std::uint32_t(w));
  put_be32(ihdr, std::uint32_t(h));
  ihdr.insert(ihdr.end(), {std::uint8_t(bit_depth), std::uint8_t(colour_type), 0, 0, 0});
  put_chunk(png, "IHDR", ihdr);
  for (std::size_t i = 0; i < extra_chunks.size(); ++i) put_chunk(png, extra_types[i].c_str(), extra_chunks[i]);
  const std::size_t row_bytes = rows.size() / std::size_t(h);
  std::vector<std::uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rows.begin() + std::ptrdiff_t(y * row_bytes), rows.begin() + std::ptrdiff_t((y + 1) * row_bytes));
  }
  if (idat_keep < raw.size()) raw.resize(idat_keep);
  put_chunk(png, "IDAT", zlib_stored(raw));
  put_chunk(png, "IEND", {});
  return png;
}

// ---- a direct double-precision rendering of PIL's bicubic resize, as a test oracle ----
double cubic(double x) {
  x = std::abs(x);
  if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
  if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
  return 0;
}
// One axis: out[i] = round(sum_j in[j] w_ij / sum_j w_ij) over j in PIL's window.
void resample_line(const std::vector<double>& in, std::vector<double>& out) {
  const int n = int(in.size()), m = int(out.size());
  const double scale = double(n) / m, fs = std::max(1.0, scale), support = 2 * fs;
  for (int i = 0; i < m; ++i) {
    const double centre = (i + 0.5) * scale;
    const int lo = std::max(0, int(centre - support + 0.5)), hi = std::min(n, int(centre + support + 0.5));
    double num = 0, den = 0;
    for (int j = lo; j < hi; ++j) {
      const double w = cubic((j + 0.5 - centre) / fs);
      num += in[std::size_t(j)] * w;
      den += w;
    }
    out[std::size_t(i)] = std::min(255.0, std::max(0.0, std::floor(num / den + 0.5)));
  }
}
Image oracle_resize(const Image& img, int w, int h) {
  Image mid(w, img.height), out(w, h);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < img.height; ++y) {
      std::vector<double> in(std::size_t(img.width)), o(std::size_t(w), 0.0);
      for (int x = 0; x < img.width; ++x) in[std::size_t(x)] = img.at(x, y, c);
      if (w == img.width) o = in; else resample_line(in, o);
      for (int x = 0; x < w; ++x) mid.at(x, y, c) = std::uint8_t(o[std::size_t(x)]);
    }
    for (int x = 0; x < w; ++x) {
      std::vector<double> in(std::size_t(img.height)), o(std::size_t(h), 0.0);
      for (int y = 0; y < img.height; ++y) in[std::size_t(y)] = mid.at(x, y, c);
      if (h == img.height) o = in; else resample_line(in, o);
      for (int y = 0; y < h; ++y) out.at(x, y, c) = std::uint8_t(o[std::size_t(y)]);
    }
  }
  return out;
}

// A test picture with edges, gradients and noise (exercises clamping at 0 and 255).
Image test_picture(int w, int h, std::uint64_t seed) {
  Image img(w, h);
  Generator g(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.at(x, y, 0) = std::uint8_t((x * 255) / std::max(1, w - 1));
      img.at(x, y, 1) = ((x / 7 + y / 5) % 2) ? 255 : 0;
      img.at(x, y, 2) = std::uint8_t(g.uniform() * 256);
    }
  return img;
}

template <class F>
void check_io_error_naming(const std::string& path, F&& f, const std::string& also = "") {
  try {
    f();
    FAIL("no IoError for " << path);
  } catch (const IoError& e) {
    const std::string msg = e.what();
    MESSAGE(msg);
    CHECK_MESSAGE(msg.find(path) != std::string::npos, msg);
    if (!also.empty()) CHECK_MESSAGE(msg.find(also) != std::string::npos, msg);
  }
}
}  // namespace

TEST_CASE("decoded RGB equals PIL's convert(\"RGB\")") {
  for (const auto& c : kCases) {
    const std::string file = c.file;
    const std::string key = key_of(file) + ".decoded_rgb_u8";
    if (!fixture().contains(key)) continue;
    INFO(file);
    const Image ours = load_image(kImages + file);
    const Image pil = fixture_image(key);
    const Agreement g = compare(ours, pil);
    MESSAGE(file << " decode vs PIL: " << describe(g));
    // PNG exactly; JPEG too, since jpeg_decode.hpp follows libjpeg-turbo's arithmetic.
    CHECK(g.max_diff == 0);
  }
}

TEST_CASE("bicubic resize equals PIL's on PIL-decoded pixels") {
  for (const auto& c : kCases) {
    const std::string file = c.file;
    const std::string k = key_of(file);
    if (!fixture().contains(k + ".decoded_rgb_u8")) continue;
    INFO(file);
    const Image src = fixture_image(k + ".decoded_rgb_u8");
    for (int size : {224, 364}) {
      const std::string rk = k + ".resized" + std::to_string(size) + "_bicubic_u8";
      if (!fixture().contains(rk)) continue;
      const Agreement g = compare(resize_bicubic(src, size, size), fixture_image(rk));
      MESSAGE(file << " resize " << size << " (PIL-decoded input): " << describe(g));
      CHECK(g.max_diff == 0);
    }
  }
}

TEST_CASE("decode + resize from the file matches PIL's resized arrays") {
  for (const auto& c : kCases) {
    const std::string file = c.file;
    const std::string k = key_of(file);
    INFO(file);
    const Image decoded = load_image(kImages + file);
    for (int size : {224, 364}) {
      const std::string rk = k + ".resized" + std::to_string(size) + "_bicubic_u8";
      if (!fixture().contains(rk)) continue;
      const Agreement g = compare(resize_bicubic(decoded, size, size), fixture_image(rk));
      MESSAGE(file << " decode+resize " << size << " vs PIL: " << describe(g));
      CHECK(g.max_diff == 0);
    }
  }
}

TEST_CASE("preprocess gives transformers' pixel_values") {
  for (const auto& c : kCases) {
    const std::string file = c.file;
    const std::string k = key_of(file);
    INFO(file);
    const auto expected = fixture().load<float>(k + ".pixel_values");
    const auto ours = preprocess(kImages + file, 224);
    CHECK(ours.shape() == Shape{1, 3, 224, 224});
    const double err = testing::max_abs_diff(ours, expected);
    const auto a = ours.to_vector(), b = expected.to_vector();
    std::size_t off = 0;
    for (std::size_t i = 0; i < a.size(); ++i) off += std::abs(double(a[i]) - double(b[i])) > 1e-5;
    std::ostringstream os;
    os << file << " pixel_values max |ours - transformers| = " << err << ", " << std::setprecision(3)
       << 100.0 * double(off) / double(a.size()) << "% of values differ by more than 1e-5";
    MESSAGE(os.str());
    CHECK(err <= c.pixel_values_tol);
    // What is left is transformers' own resize: from PIL's resized bytes the values are ours exactly.
    const auto from_pil = to_pixel_values(fixture_image(k + ".resized224_bicubic_u8"));
    CHECK(testing::max_abs_diff(from_pil, ours) == 0.0);
  }
}

TEST_CASE("pixel_values layout and batch") {
  Image img(2, 1, {0, 128, 255, 10, 20, 30});
  const auto t = to_pixel_values(img);
  CHECK(t.shape() == Shape{1, 3, 1, 2});
  const auto v = t.to_vector();
  CHECK(v[0] == doctest::Approx((0 / 255.0 - kClipMean[0]) / kClipStd[0]).epsilon(1e-6));
  CHECK(v[1] == doctest::Approx((10 / 255.0 - kClipMean[0]) / kClipStd[0]).epsilon(1e-6));
  CHECK(v[2] == doctest::Approx((128 / 255.0 - kClipMean[1]) / kClipStd[1]).epsilon(1e-6));
  CHECK(v[5] == doctest::Approx((30 / 255.0 - kClipMean[2]) / kClipStd[2]).epsilon(1e-6));
  const auto b = to_pixel_values(std::vector<Image>{img, horizontal_flip(img)});
  CHECK(b.shape() == Shape{2, 3, 1, 2});
  CHECK(b.to_vector()[6] == v[1]);
  CHECK_THROWS_AS(to_pixel_values(std::vector<Image>{img, Image(1, 1)}), ShapeError);
}

TEST_CASE("resize matches a double-precision rendering of PIL's algorithm") {
  const Image src = test_picture(97, 61, 7);
  struct Size {
    int w, h;
  };
  for (Size s : {Size{40, 29}, Size{150, 130}, Size{97, 23}, Size{31, 61}, Size{224, 224}, Size{13, 200}}) {
    INFO(s.w << "x" << s.h);
    const Agreement g = compare(resize_bicubic(src, s.w, s.h), oracle_resize(src, s.w, s.h));
    MESSAGE("97x61 -> " << s.w << "x" << s.h << " vs double oracle: " << describe(g));
    CHECK(g.max_diff <= 1);
    CHECK(g.percent_equal >= 99.9);
  }
  CHECK(resize_bicubic(src, 97, 61).data == src.data);
  CHECK_THROWS_AS(resize_bicubic(src, 0, 5), ValueError);
}

TEST_CASE("resize does not depend on the thread count") {
  const Image src = test_picture(300, 200, 3);
  const int saved = num_threads();
  set_num_threads(1);
  const Image one = resize_bicubic(src, 224, 224);
  set_num_threads(std::max(2, saved));
  const Image many = resize_bicubic(src, 224, 224);
  set_num_threads(saved);
  CHECK(one.data == many.data);
}

TEST_CASE("PNG colour types become RGB as PIL converts them") {
  SUBCASE("grey + alpha: grey replicated, alpha dropped") {
    const auto png = make_png(2, 1, 8, 4, {10, 0, 200, 255});
    const Image img = decode_image(png, "la.png");
    CHECK(img.data == std::vector<std::uint8_t>{10, 10, 10, 200, 200, 200});
  }
  SUBCASE("RGBA: alpha dropped, not composited") {
    const auto png = make_png(1, 1, 8, 6, {50, 60, 70, 0});
    CHECK(decode_image(png).data == std::vector<std::uint8_t>{50, 60, 70});
  }
  SUBCASE("palette with transparency: the palette colour") {
    const std::vector<std::uint8_t> plte = {1, 2, 3, 250, 128, 7};
    const auto png = make_png(3, 1, 8, 3, {1, 0, 1}, {plte, {0, 255}}, {"PLTE", "tRNS"});
    CHECK(decode_image(png).data == std::vector<std::uint8_t>{250, 128, 7, 1, 2, 3, 250, 128, 7});
  }
  SUBCASE("2-bit grey scales to 0, 85, 170, 255") {
    const auto png = make_png(4, 1, 2, 0, {0x1B});  // 00 01 10 11
    CHECK(decode_image(png).data == std::vector<std::uint8_t>{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255});
  }
  SUBCASE("16-bit grey clamps to 255 (PIL's I;16 -> RGB)") {
    const auto png = make_png(3, 1, 16, 0, {0x00, 0x7F, 0x01, 0x00, 0xAB, 0xCD});
    CHECK(decode_image(png).data == std::vector<std::uint8_t>{127, 127, 127, 255, 255, 255, 255, 255, 255});
  }
  SUBCASE("16-bit RGB keeps the high byte") {
    const auto png = make_png(1, 1, 16, 2, {0x12, 0xFF, 0x80, 0x00, 0xFE, 0x01});
    CHECK(decode_image(png).data == std::vector<std::uint8_t>{0x12, 0x80, 0xFE});
  }
}

// Small JPEGs written by libjpeg-turbo 2.1.5 (cjpeg's library) with chroma layouts and coding modes
// the sample files lack, and FNV-1a hashes of the RGB that libjpeg-turbo decodes from them with its
// defaults (islow IDCT, fancy upsampling), which are PIL's settings.
struct JpegCase {
  const char* what;
  int width, height;
  std::uint64_t rgb_fnv1a;
  const char* hex;
};
const JpegCase kJpegCases[] = {
    {"h2v1 (4:2:2), progressive, restart interval 2", 19, 11, 0xa590c6f05aefd6c1ull,
     "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c"
     "0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffdb00430103040405040509050509140d0b0d"
     "1414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414ffc20011"
     "08000b001303012100021101031101ffc40017000101010100000000000000000000000006000507ffc4001701010101010000000000"
     "0000000000000006050307ffdd00040002ffda000c030100021003100000016fc8a24943681fffd04430e11debb0acffc4001a100003"
     "010003000000000000000000000002030401051112ffda000801010001050234ae59a9969ae8ffd00e3a5f0e2d22ffd1abb0b103989f"
     "ffc4002611000004040407000000000000000000000102112100030531041322512425547182e1f0ffda0008010301013f01c21f034d"
     "a3e4986e2cafa86c0ddbdc737e9c3ef28fffd0a1713593489fa8804541705674ddef789ca130c01bc7ffc40024110001020502070000"
     "0000000000000000010002030405111206214144517181a1d2ffda0008010201013f01a6cc42a46704badc077f0b1d467966fafa5fff"
     "d09800d70c33b8e8774d7bac17ffc400221001000102040700000000000000000000010002110312212213243141526191ffda000801"
     "0100063f0271336e4e8ce2db97cdbaa1ed7d67ffd0372fb588b727ffd1c94ad3478d2d8f929d27ffc4001d1001000202020300000000"
     "000000000000011131002141615181f0ffda0008010100013f2191560d059d7dde1095a3746081f7c719ffd074278d415c4090043559"
     "ffd18a97826d3bd358721af19fffda000c030100020003000000108dffd0acffc4001c11010100020203000000000000000000000111"
     "002131914151c1ffda0008010301013f10529da4948ae890782c01c2862ddfc8eb3fffd0016182601d4aa06a022b1de24c60bcbef3ff"
     "c4001b11010100030101010000000000000000000111002131415161ffda0008010201013f10ba54b52d46851efbc922ec71d830ff00"
     "ffd011410782fd8d2fef73a2f33fffc4001b10010101000203000000000000000000000111210041315161ffda0008010100013f1028"
     "d7ade44c61ddfb4cd72e55468d152d014bb12f7fffd06b85c00758075f38368d1547b1df3fffd15e08f9221d06955cdbbc0010f53cff"
     "d9"},
    {"h1v2 (4:4:0)", 13, 14, 0x71c288b07048eb5bull,
     "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c"
     "0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffdb00430103040405040509050509140d0b0d"
     "1414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414ffc00011"
     "08000e000d03011200021101031101ffc4001500010100000000000000000000000000000706ffc40025100001030303030500000000"
     "0000000000010203040506112131411222710013425161ffc4001501010100000000000000000000000000000706ffc4002611000201"
     "0108010501000000000000000001020311000405061221314171131422425161ffda000c03010002110311003f006fae5bf16dab7644"
     "d82e3cb7dc8bded3aea54169c82a00240235491bf1bfd1edf77ac88f19322532992d38e7b49613d891841233b8f8636e7f0003265c1e"
     "0bd1932d5247df6019085af65e80ef4e0d78fe900d95b3361d835f849815dd64988a1d00a1d048a8abe91ce9e37eff006c0978506f8b"
     "b6a6aa95029a1ea738541b509686c1c1c13d2a29235eae381e4d4ae912eb536448a6d42552232885260c694eb4cb5a60f4a5b29192a0"
     "a51d37579f56b71ce18ec4a522f49147d5d59987928e01af3e36eaceb15e33263e3dec11c1129e16457671d7c9a39554d695141b0207"
     "35b7ffd9"},
    {"h4v1 (4:1:1)", 21, 6, 0x8b9ddb41b904b3c9ull,
     "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c"
     "0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffdb00430103040405040509050509140d0b0d"
     "1414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414ffc00011"
     "080006001503014100021101031101ffc400160001010100000000000000000000000000080007ffc400231000010402010403010000"
     "000000000000010203041105063100212241126172f0ffc40014010100000000000000000000000000000007ffc40023110001030302"
     "070000000000000000000001020311040512004106132122314251ffda000c03010002110311003f00dbb27ad47d730f36436a7172d9"
     "6d2db8a52c140f99af1140f00f27d91f6051b6bf2b2bbde22229c088d3b22db0ea507ba1b71d4a484dd827cac123b59f44da534cd360"
     "e022391d99528a004d1769c279fc81cff5757476fdb9177a0a3b02cc36d871415edd85090260883992463331d76d0ef195b289ca4b4d"
     "b17972832482080b250529126088851dbe78d7ffd9"},
    {"grey", 7, 5, 0xa04fd1a5353b67fcull,
     "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c"
     "0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffc0000b080005000701011100ffc400140001"
     "00000000000000000000000000000006ffc4001f1000020104020300000000000000000000020305010611120821000407ffda000801"
     "0100003f006fc49e2bdb7f05baa9725b333387352d1ac8e717baf51205244a75702b5816db283bdf18cf55cf9fffd9"},
};

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(std::uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::uint64_t fnv1a(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

TEST_CASE("JPEG chroma layouts and progressive coding decode as libjpeg-turbo does") {
  for (const auto& c : kJpegCases) {
    INFO(std::string(c.what));
    const Image img = decode_image(from_hex(c.hex), c.what);
    CHECK(img.width == c.width);
    CHECK(img.height == c.height);
    CHECK(fnv1a(img.data) == c.rgb_fnv1a);
  }
}

TEST_CASE("BMP and GIF decode") {
  // 2x2 24-bit bottom-up BMP: rows padded to 8 bytes.
  std::vector<std::uint8_t> bmp = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,
                                   1, 0, 24, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0x13, 0x0B, 0, 0, 0x13, 0x0B, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 0};
  // bottom row (y = 1): blue, white; top row (y = 0): red, green. Stored as BGR.
  for (int b : {255, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0}) bmp.push_back(std::uint8_t(b));
  const Image img = decode_image(bmp, "tiny.bmp");
  CHECK(img.width == 2);
  CHECK(img.height == 2);
  CHECK(img.data == std::vector<std::uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255});
  auto cut = bmp;
  cut.resize(bmp.size() - 3);
  const std::string bmp_path = write_bytes("cut.bmp", cut);
  check_io_error_naming(bmp_path, [&] { load_image(bmp_path); }, "truncated");
  std::remove(bmp_path.c_str());

  // The classic 1x1 GIF: a two-colour global table, pixel index 0 (white).
  const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 255, 255, 255, 0, 0, 0,
                                         0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B};
  CHECK(decode_image(gif, "one.gif").data == std::vector<std::uint8_t>{255, 255, 255});
  for (std::size_t keep : {std::size_t(10), std::size_t(20), std::size_t(31), std::size_t(33)}) {
    INFO("GIF cut to " << keep << " bytes");
    CHECK_THROWS_AS(decode_image(std::vector<std::uint8_t>(gif.begin(), gif.begin() + std::ptrdiff_t(keep)), "g.gif"),
                    IoError);
  }
}

TEST_CASE("images that would crash stb_image or exhaust memory are refused before decoding") {
  // A BMP header for a w x h 24-bit image with `compression`, and 16 bytes of pixels.
  auto bmp = [](std::uint32_t w, std::uint32_t h, std::uint32_t compression) {
    std::vector<std::uint8_t> b = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0};
    for (std::uint32_t v : {w, h}) for (int k = 0; k < 4; ++k) b.push_back(std::uint8_t(v >> (8 * k)));
    b.insert(b.end(), {1, 0, 24, 0});
    for (int k = 0; k < 4; ++k) b.push_back(std::uint8_t(compression >> (8 * k)));
    b.resize(54 + 16, 0);
    return b;
  };
  CHECK_NOTHROW(decode_image(bmp(2, 2, 0)));
  CHECK_THROWS_WITH_AS(decode_image(bmp(20000, 20000, 0xFFFFFFFFu), "big.bmp"),
                       doctest::Contains("big.bmp: BMP declares 20000x20000 pixels"), IoError);
  CHECK_THROWS_WITH_AS(decode_image(bmp(300, 300, 0xFFFFFFFEu), "odd.bmp"),
                       doctest::Contains("unsupported BMP compression 4294967294"), IoError);
  CHECK_THROWS_WITH_AS(decode_image(bmp(0x7FFFFFFF, 0x7FFFFFFF, 0), "huge.bmp"), doctest::Contains("decompression bomb"),
                       IoError);
  // A 20000 x 20000 GIF of a few bytes: refused from its declared size, before any allocation.
  const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0x20, 0x4E, 0x20, 0x4E, 0x80, 0, 0, 255, 255, 255,
                                         0, 0, 0, 0x2C, 0, 0, 0, 0, 0x20, 0x4E, 0x20, 0x4E, 0, 2, 2, 0x44, 0x01, 0, 0x3B};
  CHECK_THROWS_WITH_AS(decode_image(gif, "bomb.gif"), doctest::Contains("bomb.gif: GIF declares 20000x20000"), IoError);
  // A JPEG whose Huffman table codes 16 x 255 symbols (at most 256 exist).
  auto jpg = read_bytes(kImages + "rocket.jpg");
  std::size_t dht = 2;
  while (!(jpg[dht] == 0xFF && jpg[dht + 1] == 0xC4)) dht += 2 + ((std::size_t(jpg[dht + 2]) << 8) | jpg[dht + 3]);
  for (int i = 0; i < 16; ++i) jpg[dht + 5 + std::size_t(i)] = 255;
  CHECK_THROWS_WITH_AS(decode_image(jpg, "dht.jpg"), doctest::Contains("codes 4080 symbols; at most 256"), IoError);
}

TEST_CASE("truncated, corrupt and missing files are IoErrors naming the file") {
  SUBCASE("the sample truncated JPEG") {
    const std::string path = kImages + "truncated.jpg";
    check_io_error_naming(path, [&] { load_image(path); }, "truncated JPEG");
    check_io_error_naming(path, [&] { preprocess(path, 224); });
  }
  SUBCASE("a JPEG cut inside its scan, and one missing only its EOI marker") {
    const auto jpg = read_bytes(kImages + "rocket.jpg");
    for (std::size_t keep : {jpg.size() * 6 / 10, jpg.size() - 2, jpg.size() - 1, std::size_t(3), std::size_t(300)}) {
      INFO("kept " << keep << " of " << jpg.size() << " bytes");
      const std::string path = write_bytes("cut.jpg", std::vector<std::uint8_t>(jpg.begin(), jpg.begin() + std::ptrdiff_t(keep)));
      check_io_error_naming(path, [&] { load_image(path); }, "truncated JPEG");
      std::remove(path.c_str());
    }
    auto trailing = jpg;  // bytes after EOI are ignored, as PIL ignores them
    trailing.insert(trailing.end(), {0, 1, 2, 3});
    CHECK(decode_image(trailing).data == load_image(kImages + "rocket.jpg").data);
  }
  SUBCASE("PNGs cut anywhere, with a flipped bit, or with an IDAT that does not inflate to the image") {
    const auto png = read_bytes(kImages + "palette_color.png");
    const auto big = read_bytes(kImages + "chelsea.png");
    for (const auto* bytes : {&png, &big})
      for (std::size_t keep : {bytes->size() / 2, bytes->size() - 12, bytes->size() - 1, std::size_t(20)}) {
        INFO("kept " << keep << " of " << bytes->size() << " bytes");
        const std::string path = write_bytes("cut.png", std::vector<std::uint8_t>(bytes->begin(), bytes->begin() + std::ptrdiff_t(keep)));
        check_io_error_naming(path, [&] { load_image(path); }, "truncated PNG");
        std::remove(path.c_str());
      }
    auto flipped = big;
    flipped[big.size() / 2] ^= 0x10;
    const std::string fpath = write_bytes("flipped.png", flipped);
    check_io_error_naming(fpath, [&] { load_image(fpath); }, "CRC");
    std::remove(fpath.c_str());
    // Valid chunks, but the pixel stream stops early: stb_image must refuse it.
    const std::vector<std::uint8_t> rows(4 * 4 * 3, 77);
    CHECK_NOTHROW(decode_image(make_png(4, 4, 8, 2, rows)));
    check_io_error_naming("short.png", [&] { decode_image(make_png(4, 4, 8, 2, rows, {}, {}, 30), "short.png"); });
  }
  SUBCASE("garbage, empty and missing files") {
    std::vector<std::uint8_t> junk(1000);
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = std::uint8_t(i * 37 + 11);
    const std::string junk_path = write_bytes("junk.png", junk);
    check_io_error_naming(junk_path, [&] { load_image(junk_path); });
    std::remove(junk_path.c_str());
    const std::string empty_path = write_bytes("empty.jpg", {});
    check_io_error_naming(empty_path, [&] { load_image(empty_path); });
    std::remove(empty_path.c_str());
    // A JPEG with only a comment between SOI and EOI: no frame, no scan.
    const std::string bad_path = write_bytes("bad.jpg", {0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, 'h', 'i', 0xFF, 0xD9});
    check_io_error_naming(bad_path, [&] { load_image(bad_path); }, "corrupt JPEG");
    std::remove(bad_path.c_str());
    const std::string missing = kImages + "no_such_image.png";
    check_io_error_naming(missing, [&] { load_image(missing); });
  }
}

TEST_CASE("coffee.png (outside the fixture) decodes") {
  const Image img = load_image(kImages + "coffee.png");
  CHECK(img.width == 600);
  CHECK(img.height == 400);
  const Agreement g = compare(resize_bicubic(img, 364, 364), oracle_resize(img, 364, 364));
  MESSAGE("coffee.png 600x400 -> 364x364 vs double oracle: " << describe(g));
  CHECK(g.max_diff <= 1);
  CHECK(g.percent_equal >= 99.9);
}

TEST_CASE("random resized crop: seeded, inside the image, torchvision's parameters") {
  for (auto [w, h] : {std::pair{640, 427}, std::pair{100, 100}, std::pair{31, 500}, std::pair{2000, 3}, std::pair{1, 1}}) {
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
      Generator g1(seed), g2(seed);
      const CropBox a = random_resized_crop_box(w, h, g1), b = random_resized_crop_box(w, h, g2);
      CHECK((a.x == b.x && a.y == b.y && a.width == b.width && a.height == b.height));
      REQUIRE(a.width > 0);
      REQUIRE(a.height > 0);
      REQUIRE(a.x >= 0);
      REQUIRE(a.y >= 0);
      REQUIRE(a.x + a.width <= w);
      REQUIRE(a.y + a.height <= h);
      if (w == 640) {  // the tries always succeed here: area and ratio within torchvision's bounds
        const double frac = double(a.width) * a.height / (double(w) * h);
        CHECK(frac >= 0.49);
        CHECK(frac <= 1.0);
        const double ratio = double(a.width) / a.height;
        CHECK(ratio >= 0.74);
        CHECK(ratio <= 1.34);
      }
    }
  }
  // A very wide image never fits the ratio range: the fallback is a centre crop of ratio 4/3.
  Generator g(5);
  const CropBox fb = random_resized_crop_box(2000, 3, g);
  CHECK(fb.height == 3);
  CHECK(fb.width == 4);
  CHECK(fb.x == (2000 - 4) / 2);
  CHECK(fb.y == 0);

  const Image src = load_image(kImages + "chelsea.png");
  Generator ga(42), gb(42), gc(43);
  const Image a = random_resized_crop(src, 224, 224, ga), b = random_resized_crop(src, 224, 224, gb);
  CHECK(a.width == 224);
  CHECK(a.height == 224);
  CHECK(a.data == b.data);
  std::set<std::vector<std::uint8_t>> distinct;
  for (int i = 0; i < 5; ++i) distinct.insert(random_resized_crop(src, 64, 64, gc).data);
  CHECK(distinct.size() == 5);
  // The crop then resize is PIL's crop then resize.
  Generator gd(42);
  const CropBox box = random_resized_crop_box(src.width, src.height, gd);
  CHECK(a.data == resize_bicubic(crop(src, box.x, box.y, box.width, box.height), 224, 224).data);
}

TEST_CASE("horizontal flip") {
  const Image src = test_picture(5, 3, 1);
  const Image f = horizontal_flip(src);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) CHECK(f.at(x, y, c) == src.at(4 - x, y, c));
  CHECK(horizontal_flip(f).data == src.data);
  Generator g(0);
  CHECK(random_horizontal_flip(src, g, 0.0).data == src.data);
  CHECK(random_horizontal_flip(src, g, 1.0).data == f.data);
  int flipped = 0;
  Generator h(9), h2(9);
  for (int i = 0; i < 400; ++i) {
    const bool a = random_horizontal_flip(src, h).data == f.data;
    const bool b = random_horizontal_flip(src, h2).data == f.data;
    CHECK(a == b);
    flipped += a;
  }
  CHECK(flipped > 150);
  CHECK(flipped < 250);
}
