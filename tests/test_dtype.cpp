// Half-precision conversions: round to nearest, ties to even, specials preserved.
#include "support.hpp"

#include <cstring>
#include <limits>

using namespace blip2;

namespace {
// Checks that `got` (decoded to double) is a nearest representable value to x, ties to even,
// by comparing with its neighbours in the format.
template <class H>
void check_nearest(float x, H got) {
  const double v = double(x), g = double(float(got));
  if (std::isinf(g)) return;  // overflow is checked separately
  const std::uint16_t b = got.bits;
  const double up = double(float(H::from_bits(std::uint16_t(b + 1))));
  const double down = double(float(H::from_bits(std::uint16_t(b - 1))));
  const double e = std::abs(g - v);
  if ((b & 0x7fffu) != 0x7fffu && !std::isnan(up) && (b & 0x7fffu) != 0) {
    CHECK_MESSAGE(e <= std::abs(up - v), x << " -> " << g << " but " << up << " is nearer");
    CHECK_MESSAGE(e <= std::abs(down - v), x << " -> " << g << " but " << down << " is nearer");
    if (e == std::abs(up - v) || e == std::abs(down - v)) CHECK_MESSAGE((b & 1u) == 0, x << ": tie not to even");
  }
}
float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST_CASE("bfloat16 and float16 round to nearest even over many floats") {
  Generator gen(7);
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t bits = std::uint32_t(Generator::uniform(11, std::uint64_t(i)) * 4294967296.0);
    const float x = from_bits(bits);
    if (std::isnan(x)) continue;
    check_nearest(x, bf16(x));
    if (std::abs(x) < 65504.0f) check_nearest(x, f16(x));
  }
}

TEST_CASE("half types: exact values, ties, subnormals and specials") {
  CHECK(float(bf16(1.0f)) == 1.0f);
  CHECK(bf16(1.0f + 0x1.0p-8f).bits == bf16(1.0f).bits);                   // tie to even (down)
  CHECK(bf16(1.0f + 3 * 0x1.0p-8f).bits == bf16(1.0f + 0x1.0p-6f).bits);   // tie to even (up)
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(float(bf16(std::numeric_limits<float>::infinity()))));
  CHECK(float(f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(float(f16(65520.0f))));                      // rounds up to infinity
  CHECK(float(f16(65519.0f)) == 65504.0f);
  CHECK(float(f16(0x1.0p-24f)) == 0x1.0p-24f);                  // smallest subnormal
  CHECK(float(f16(0x1.0p-25f)) == 0.0f);                        // tie to even: zero
  CHECK(float(f16(0x1.8p-25f)) == 0x1.0p-24f);
  CHECK(float(f16(-0x1.0p-14f)) == -0x1.0p-14f);                // smallest normal
  CHECK(f16(0.1f).bits == 0x2e66);
  CHECK(std::isnan(float(f16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::signbit(float(f16(-0.0f))));
  for (std::uint32_t h = 0; h < 0x10000; ++h) {  // every finite half survives a round trip
    const f16 v = f16::from_bits(std::uint16_t(h));
    if (!std::isnan(float(v))) CHECK(f16(float(v)).bits == h);
    const bf16 w = bf16::from_bits(std::uint16_t(h));
    if (!std::isnan(float(w))) CHECK(bf16(float(w)).bits == h);
  }
}

TEST_CASE("tensor conversion between element types") {
  auto x = Tensor<float>::from_vector({4}, {1.5f, -2.25f, 3.0f, 1e-3f});
  auto h = x.to<bf16>();
  auto back = h.to<float>();
  CHECK(back.to_vector()[0] == 1.5f);
  CHECK(back.to_vector()[1] == -2.25f);
  CHECK(std::abs(back.to_vector()[3] - 1e-3f) < 1e-5f);
  auto d = x.to<double>();
  CHECK(d.to_vector()[2] == 3.0);
  auto i = x.to<std::int64_t>();
  CHECK(i.to_vector()[1] == -2);
  CHECK(dtype_name<bf16> == "bfloat16");
}

TEST_CASE("float to integer conversion saturates instead of being undefined; sizes that overflow are refused") {
  constexpr auto i64max = std::numeric_limits<std::int64_t>::max(), i64min = std::numeric_limits<std::int64_t>::min();
  CHECK(convert_scalar<std::int64_t>(4e40f) == i64max);
  CHECK(convert_scalar<std::int64_t>(-4e40) == i64min);
  CHECK(convert_scalar<std::int64_t>(9.3e18f) == i64max);  // just past 2^63
  CHECK(convert_scalar<std::int64_t>(std::numeric_limits<float>::quiet_NaN()) == 0);
  CHECK(convert_scalar<std::int32_t>(std::numeric_limits<double>::infinity()) == std::numeric_limits<std::int32_t>::max());
  CHECK(convert_scalar<std::uint8_t>(-3.0f) == 0);
  CHECK(convert_scalar<std::uint8_t>(300.0f) == 255);
  CHECK(convert_scalar<std::int64_t>(-7.9) == -7);  // in range: truncation, as a cast
  CHECK(convert_scalar<std::int32_t>(bf16(1e20f)) == std::numeric_limits<std::int32_t>::max());
  const auto t = Tensor<float>::from_vector({3}, {1e30f, -2.5f, std::numeric_limits<float>::quiet_NaN()}).to<std::int64_t>();
  CHECK(t.to_vector() == std::vector<std::int64_t>{i64max, -2, 0});

  CHECK(numel({3, 4}) == 12);
  CHECK_THROWS_WITH_AS(numel({std::int64_t(1) << 40, std::int64_t(1) << 40}), doctest::Contains("more than 2^63 elements"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(numel({2, -3}), doctest::Contains("[2,-3] has a negative dimension"), ShapeError);
  CHECK_THROWS_AS(Tensor<float>::empty({std::int64_t(1) << 62, 4}), ShapeError);
  CHECK_THROWS_WITH_AS(Tensor<double>::empty({std::int64_t(1) << 62}), doctest::Contains("overflow the address space"), Error);
}
