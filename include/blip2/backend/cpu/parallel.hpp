#pragma once
// Work splitting over OpenMP threads. Without OpenMP (BLIP2_OPENMP=OFF) everything runs inline.
#include <algorithm>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace blip2 {

// Threads the CPU back end uses (OpenMP's setting; 1 without OpenMP).
inline int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline void set_num_threads(int n) {
#if defined(_OPENMP)
  omp_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

namespace cpu_kernel {

// Calls f(begin, end, chunk) over [0, n) split into one contiguous chunk per thread, when each chunk
// gets at least `grain` items of work; serially (one chunk) otherwise or inside a parallel region.
template <class F>
void parallel_chunks(std::int64_t n, std::int64_t grain, F&& f) {
#if defined(_OPENMP)
  const std::int64_t want = std::min<std::int64_t>(omp_get_max_threads(), grain > 0 ? n / grain : n);
  if (want > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(int(want))
    {
      const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const std::int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
      if (lo < hi) f(lo, hi, t);
    }
    return;
  }
#endif
  if (n > 0) f(std::int64_t(0), n, std::int64_t(0));
}

// Upper bound on the chunk index parallel_chunks passes (size per-thread scratch with it).
inline std::int64_t max_chunks() { return num_threads(); }

template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  parallel_chunks(n, grain, [&](std::int64_t lo, std::int64_t hi, std::int64_t) { f(lo, hi); });
}

}  // namespace cpu_kernel
}  // namespace blip2
