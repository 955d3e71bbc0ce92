#pragma once
// Matrix products with autograd: matmul over batched, broadcast [..., M, K] x [..., K, N], and
// linear(x, W, b) = x W^T + b with W stored as [out, in] (the PyTorch / Hugging Face layout).
// Transposed views are read in place by the GEMM, never copied.
#include "reduce.hpp"

namespace blip2 {

namespace detail {
// A batch of matrices as the GEMM reads it: base pointer, whether it is transposed, leading
// dimension and batch stride. Copies to contiguous only when the strides allow neither layout.
template <class T, class D>
struct MatrixBatch {
  Tensor<T, D> holder;
  bool trans = false;
  index_t ld = 0, batch_stride = 0;

  MatrixBatch(const Tensor<T, D>& t, const Shape& batch) {
    const std::size_t r = t.shape().size();
    const index_t rows = t.shape()[r - 2], cols = t.shape()[r - 1];
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    holder = t.detach().expand(full);
    if (!fits(rows, cols)) holder = holder.contiguous(), fits(rows, cols);
  }

 private:
  bool fits(index_t rows, index_t cols) {
    const Shape& s = holder.shape();
    const Strides& st = holder.strides();
    const std::size_t r = s.size();
    const index_t rs = st[r - 2], cs = st[r - 1];
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) {  // row-major: (i, j) at i*ld + j
      trans = false;
      ld = rows == 1 ? cols : rs;
    } else if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) {  // transposed: (i, j) at j*ld + i
      trans = true;
      ld = cols == 1 ? rows : cs;
    } else {
      return false;
    }
    ld = std::max<index_t>(ld, 1);
    // the batch dimensions must collapse to one stride (0 when all are broadcast)
    index_t stride = -1, expect = 0;
    for (std::size_t i = r - 2; i-- > 0;) {
      if (s[i] == 1) continue;
      if (stride < 0) stride = st[i];
      else if (st[i] != expect) return false;
      expect = st[i] * s[i];
    }
    batch_stride = stride < 0 ? 0 : stride;
    return true;
  }
};
}  // namespace detail

template <class T, class D>
Tensor<T, D> matmul(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  static_assert(is_compute_v<T>, "matmul: compute in float32/float64");
  const Shape &sa = a.shape(), &sb = b.shape();
  BLIP2_CHECK(sa.size() >= 2 && sb.size() >= 2, ShapeError, "matmul: needs at least 2-d operands, got ", to_string(sa),
              " and ", to_string(sb));
  const index_t M = sa[sa.size() - 2], K = sa.back(), N = sb.back();
  BLIP2_CHECK(sb[sb.size() - 2] == K, ShapeError, "matmul: inner dimensions differ: ", to_string(sa), " x ", to_string(sb));
  const Shape batch = broadcast_shapes(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2), "matmul");
  const detail::MatrixBatch<T, D> A(a, batch), B(b, batch);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  auto out = Tensor<T, D>::empty(out_shape);
  Backend<D>::gemm_batched(A.trans, B.trans, M, N, K, T(1), A.holder.data(), A.ld, A.batch_stride, B.holder.data(),
                           B.ld, B.batch_stride, T(0), out.data(), N, M * N, numel(batch));
  if (!autograd::needs_grad<T, D>({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  const Tensor<T, D> as = gb ? a.detach() : Tensor<T, D>(), bs = ga ? b.detach() : Tensor<T, D>();
  return autograd::record<T, D>("matmul", out, {a, b}, [ga, gb, as, bs, sa, sb](const Tensor<T, D>& g) {
    Tensor<T, D> da, db;
    if (ga) da = detail::sum_to(matmul(g, bs.transpose(-1, -2)), sa);
    if (gb) db = detail::sum_to(matmul(as.transpose(-1, -2), g), sb);
    return std::vector<Tensor<T, D>>{da, db};
  });
}

// y = x W^T (+ b): x [..., in], W [out, in], b [out] or undefined. A frozen W (no requires_grad)
// costs no weight gradient and keeps no reference to x.
template <class T, class D>
Tensor<T, D> linear(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& b = Tensor<T, D>()) {
  static_assert(is_compute_v<T>, "linear: compute in float32/float64");
  BLIP2_CHECK(w.dim() == 2 && x.dim() >= 1 && x.shape().back() == w.shape()[1], ShapeError, "linear: input ",
              to_string(x.shape()), " does not fit weight ", to_string(w.shape()), " ([out, in])");
  BLIP2_CHECK(!b.defined() || (b.dim() == 1 && b.shape()[0] == w.shape()[0]), ShapeError, "linear: bias ",
              to_string(b.shape()), " does not fit weight ", to_string(w.shape()));
  const index_t in = w.shape()[1], out_f = w.shape()[0];
  const Tensor<T, D> x2 = x.detach().contiguous().reshape({-1, in});
  const index_t rows = x2.shape()[0];
  const Tensor<T, D> wc = w.detach().contiguous();
  auto y = Tensor<T, D>::empty({rows, out_f});
  if (b.defined()) copy_(y, b.detach());
  Backend<D>::gemm_batched(false, true, rows, out_f, in, T(1), x2.data(), in, 0, wc.data(), in, 0,
                           b.defined() ? T(1) : T(0), y.data(), out_f, 0, 1);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor<T, D> out = y.reshape(out_shape);
  if (!autograd::needs_grad<T, D>({&x, &w, &b})) return out;
  const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  const Tensor<T, D> xs = gw ? x2 : Tensor<T, D>();
  const Shape xshape = x.shape();
  return autograd::record<T, D>("linear", out, {x, w, b}, [gx, gw, gb, xs, wc, xshape, in, out_f](const Tensor<T, D>& g) {
    const Tensor<T, D> g2 = g.contiguous().reshape({-1, out_f});
    Tensor<T, D> dx, dw, db;
    if (gx) dx = matmul(g2, wc).reshape(xshape);
    if (gw) dw = matmul(g2.transpose(0, 1), xs);
    if (gb) db = sum(g2, {0});
    (void)in;
    return std::vector<Tensor<T, D>>{dx, dw, db};
  });
}

// y = x W^T (+ b) with W [out, in] stored as bf16/f16 (a frozen weight; compute in float32). The
// mixed-precision GEMM reads W in its storage type (Backend<D>::gemm_batched_mixed), so no float32
// copy of W is made. Gradients flow to x (and b), never to W.
template <class T, class W, class D, std::enable_if_t<is_half_v<W> && is_compute_v<T>, int> = 0>
Tensor<T, D> linear(const Tensor<T, D>& x, const Tensor<W, D>& w, const Tensor<T, D>& b = Tensor<T, D>()) {
  static_assert(std::is_same_v<T, float>, "linear: bf16/f16 weights compute in float32");
  BLIP2_CHECK(w.dim() == 2 && x.dim() >= 1 && x.shape().back() == w.shape()[1], ShapeError, "linear: input ",
              to_string(x.shape()), " does not fit weight ", to_string(w.shape()), " ([out, in], ", dtype_name<W>, ")");
  BLIP2_CHECK(!b.defined() || (b.dim() == 1 && b.shape()[0] == w.shape()[0]), ShapeError, "linear: bias ",
              to_string(b.shape()), " does not fit weight ", to_string(w.shape()));
  const index_t in = w.shape()[1], out_f = w.shape()[0];
  const Tensor<W, D> wc = w.contiguous();
  const Tensor<T, D> x2 = x.detach().contiguous().reshape({-1, in});
  const index_t rows = x2.shape()[0];
  auto y = Tensor<T, D>::empty({rows, out_f});
  if (b.defined()) copy_(y, b.detach());
  Backend<D>::gemm_batched_mixed(false, true, rows, out_f, in, 1.0f, x2.data(), in, 0, wc.data(), in, 0,
                                 b.defined() ? 1.0f : 0.0f, y.data(), out_f, 0, 1);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor<T, D> out = y.reshape(out_shape);
  if (!autograd::needs_grad<T, D>({&x, &b})) return out;
  const bool gx = x.requires_grad(), gb = b.defined() && b.requires_grad();
  const Shape xshape = x.shape();
  return autograd::record<T, D>("linear", out, {x, b}, [=](const Tensor<T, D>& g) {
    const Tensor<T, D> g2 = g.contiguous().reshape({-1, out_f});
    Tensor<T, D> dx, db;
    if (gx) {  // dx = g W
      dx = Tensor<T, D>::empty({g2.size(0), in});
      Backend<D>::gemm_batched_mixed(false, false, g2.size(0), in, out_f, 1.0f, g2.data(), out_f, 0, wc.data(), in, 0,
                                     0.0f, dx.data(), in, 0, 1);
      dx = dx.reshape(xshape);
    }
    if (gb) db = sum(g2, {0});
    return std::vector<Tensor<T, D>>{dx, db};
  });
}

}  // namespace blip2
