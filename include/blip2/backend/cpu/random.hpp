#pragma once
// Counter-based random fills (see core/random.hpp): value i depends only on (seed, first + i).
#include "../../core/random.hpp"
#include "../../core/shape.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel {

template <class T>
void fill_uniform(T* dst, index_t n, std::uint64_t seed, std::uint64_t first, double lo, double hi) {
  parallel_for(n, 16384, [&](index_t a, index_t b) {
    for (index_t i = a; i < b; ++i) dst[i] = T(lo + (hi - lo) * Generator::uniform(seed, first + std::uint64_t(i)));
  });
}

template <class T>
void fill_normal(T* dst, index_t n, std::uint64_t seed, std::uint64_t first, double mean, double stddev) {
  parallel_for(n, 16384, [&](index_t a, index_t b) {
    for (index_t i = a; i < b; ++i) dst[i] = T(mean + stddev * Generator::normal(seed, first + std::uint64_t(i)));
  });
}

// Dropout mask: 0 with probability p, else 1/(1-p).
template <class T>
void fill_dropout_mask(T* dst, index_t n, std::uint64_t seed, std::uint64_t first, double p) {
  const T keep = T(1.0 / (1.0 - p));
  parallel_for(n, 16384, [&](index_t a, index_t b) {
    for (index_t i = a; i < b; ++i) dst[i] = Generator::uniform(seed, first + std::uint64_t(i)) < p ? T(0) : keep;
  });
}

}  // namespace blip2::cpu_kernel
