#pragma once
// Seeded, counter-based random numbers: element i of a draw depends only on (seed, offset + i), so
// the CPU and CUDA back ends produce the same dropout masks and initialisations.
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace blip2 {

namespace detail {
inline constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace detail

// A stream of random numbers; each call to `next_block` reserves `n` counters.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
  std::uint64_t seed() const { return seed_; }
  // Reserves n draws and returns the first counter of the block.
  std::uint64_t next_block(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }
  // Uniform in [0, 1) for counter c.
  static double uniform(std::uint64_t seed, std::uint64_t c) {
    return double(detail::splitmix64(seed ^ detail::splitmix64(c)) >> 11) * 0x1.0p-53;
  }
  // Standard normal for counter c (Box-Muller over two derived uniforms).
  static double normal(std::uint64_t seed, std::uint64_t c) {
    const double u1 = uniform(seed, 2 * c) + 0x1.0p-54, u2 = uniform(seed, 2 * c + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double uniform() { return uniform(seed_, next_block(1)); }
  // The position in the stream: a generator restored to (seed, offset) continues identically
  // (training checkpoints keep it).
  std::uint64_t offset() const { return offset_; }
  void set_offset(std::uint64_t offset) { offset_ = offset; }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

// Uniform integer in [0, n), n > 0.
inline std::uint64_t uniform_below(Generator& g, std::uint64_t n) {
  const auto k = std::uint64_t(g.uniform() * double(n));
  return k < n ? k : n - 1;
}
// Uniform integer in [lo, hi].
inline int uniform_int(Generator& g, int lo, int hi) { return lo + int(uniform_below(g, std::uint64_t(hi - lo + 1))); }
// Fisher-Yates shuffle drawing from g.
template <class T>
void shuffle(std::vector<T>& v, Generator& g) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_below(g, i)]);
}

}  // namespace blip2
