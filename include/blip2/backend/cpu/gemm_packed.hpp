#pragma once
// Cache-blocked float32 GEMM in the BLIS / GotoBLAS style, row-major:
//   C[M, N] = alpha * op(A)[M, K] op(B)[K, N] + beta * C.
//
// Loops, outside in (per thread, over that thread's rectangle of C):
//   pc over K in steps of kc        one pass per K block; beta applies on the first only
//     ic over M in steps of MC      pack A[ic.., pc..] into MR-row micro-panels (once per pc)
//       jc over N in steps of nc    pack B[pc.., jc..] into NR-column micro-panels: kc x nc floats,
//                                   sized to stay in L2 (about 1 MiB)
//         ir over the A panels      the A micro-panel (MR x kc, ~14 KiB) stays in L1 ...
//           jr over the B panels    ... while the kernel streams B micro-panels from L2
// Threads split C by columns (each reads half of the weights; A is small and packed by both) or, when
// N is narrow, by rows. B may be bf16 or f16: pack_b converts it to float32 panels. Inside an OpenMP parallel region (gemm_batched across heads) everything runs
// on the calling thread.
#include <algorithm>
#include <new>

#include "gemm_kernel.hpp"
#include "gemm_pack.hpp"
#include "parallel.hpp"

namespace blip2::cpu_kernel::gemm_detail {

template <class TB = float>
struct GemmArgs {
  bool trans_a, trans_b;
  index_t M, N, K;
  float alpha;
  const float* A;
  index_t lda;
  const TB* B;
  index_t ldb;
  float beta;
  float* C;
  index_t ldc;

  // op(A) starting at row i, column k; op(B) starting at row k, column j.
  const float* a_at(index_t i, index_t k) const { return trans_a ? A + k * lda + i : A + i * lda + k; }
  const TB* b_at(index_t k, index_t j) const { return trans_b ? B + j * ldb + k : B + k * ldb + j; }
};

// Per-thread packing buffers, 64-byte aligned, kept for the thread's lifetime and grown on demand.
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { release(); }
  float* get(std::size_t n) {
    if (n > cap_) {
      release();
      p_ = static_cast<float*>(::operator new(n * sizeof(float), std::align_val_t(64)));
      cap_ = n;
    }
    return p_;
  }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
    p_ = nullptr;
    cap_ = 0;
  }
  float* p_ = nullptr;
  std::size_t cap_ = 0;
};

inline PackBuffer& pack_buffer_a() {
  static thread_local PackBuffer buf;
  return buf;
}
inline PackBuffer& pack_buffer_b() {
  static thread_local PackBuffer buf;
  return buf;
}

// Block sizes for the kernel K (floats). KC: depth of one pass; NC: B block width (kc * NC * 4 bytes
// of L2); MC: rows of A packed at once (only its MR-row micro-panel needs to stay in L1).
template <class K>
struct Blocking {
  static constexpr index_t KC = 256, NC = 1024, MC = 1008;  // 1008 = 72 * 14
};

// Splits n into equal steps no larger than max_step, each a multiple of `unit` (fewer ragged blocks).
inline index_t balanced_step(index_t n, index_t max_step, index_t unit) {
  const index_t blocks = (n + max_step - 1) / max_step;
  const index_t step = (n + blocks - 1) / blocks;
  return (step + unit - 1) / unit * unit;
}

// One thread's share: rows [m0, m1) and columns [n0, n1) of C.
template <class Kern, class TB>
void packed_block(const GemmArgs<TB>& g, index_t m0, index_t m1, index_t n0, index_t n1) {
  constexpr index_t MR = Kern::MR, NR = Kern::NR;
  using Blk = Blocking<Kern>;
  const index_t kc_step = balanced_step(g.K, Blk::KC, 8);
  const index_t nc_step = balanced_step(n1 - n0, Blk::NC, NR);
  const index_t mc_step = balanced_step(m1 - m0, Blk::MC, MR);
  float* pa = pack_buffer_a().get(std::size_t((mc_step + MR) * kc_step));
  float* pb = pack_buffer_b().get(std::size_t((nc_step + NR) * kc_step));
  for (index_t pc = 0; pc < g.K; pc += kc_step) {
    const index_t kc = std::min(kc_step, g.K - pc);
    const float beta = pc == 0 ? g.beta : 1.0f;
    for (index_t ic = m0; ic < m1; ic += mc_step) {
      const index_t mc = std::min(mc_step, m1 - ic);
      pack_a<int(MR)>(g.trans_a, g.a_at(ic, pc), g.lda, mc, kc, pa);
      for (index_t jc = n0; jc < n1; jc += nc_step) {
        const index_t nc = std::min(nc_step, n1 - jc);
        pack_b<int(NR)>(g.trans_b, g.b_at(pc, jc), g.ldb, kc, nc, pb);
        for (index_t ir = 0; ir < mc; ir += MR) {
          const index_t mr = std::min(MR, mc - ir);
          const KernelFn kern = Kern::get(int(mr));
          float* crow = g.C + (ic + ir) * g.ldc + jc;
          for (index_t jr = 0; jr < nc; jr += NR)
            kern(kc, pa + ir * kc, pb + jr * kc, crow + jr, g.ldc, std::min(NR, nc - jr), g.alpha, beta);
        }
      }
    }
  }
}

// Splits C over the threads (columns when there are enough of them, else rows) and runs the blocks.
// Products under about 2^18 multiply-adds per thread stay on one thread.
template <class Kern = DefaultKernel, class TB = float>
void gemm_packed(const GemmArgs<TB>& g) {
  constexpr index_t MR = Kern::MR, NR = Kern::NR;
  const index_t col_panels = (g.N + NR - 1) / NR, row_panels = (g.M + MR - 1) / MR;
  const index_t min_macs = index_t(1) << 18;
  const index_t nt = num_threads();
  if (col_panels >= 2 * nt || col_panels >= row_panels) {
    const index_t grain = std::max<index_t>(1, min_macs / std::max<index_t>(1, g.M * NR * g.K));
    parallel_for(col_panels, grain, [&](index_t lo, index_t hi) {
      packed_block<Kern>(g, 0, g.M, lo * NR, std::min(g.N, hi * NR));
    });
  } else {
    const index_t grain = std::max<index_t>(1, min_macs / std::max<index_t>(1, g.N * MR * g.K));
    parallel_for(row_panels, grain, [&](index_t lo, index_t hi) {
      packed_block<Kern>(g, lo * MR, std::min(g.M, hi * MR), 0, g.N);
    });
  }
}

}  // namespace blip2::cpu_kernel::gemm_detail
