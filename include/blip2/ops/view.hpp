#pragma once
// Views that share storage (reshape, permute, transpose, slice, expand, unsqueeze, squeeze) and the
// copying shape ops built on them (concat, split). Each records its backward when needed.
#include <numeric>

#include "sum_to.hpp"

namespace blip2 {

template <class T, class D>
Tensor<T, D> Tensor<T, D>::reshape(const Shape& new_shape_in) const {
  Shape new_shape = new_shape_in;
  index_t known = 1, infer = -1;
  for (std::size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      BLIP2_CHECK(infer < 0, ShapeError, "reshape: more than one -1 in ", to_string(new_shape_in));
      infer = index_t(i);
    } else {
      BLIP2_CHECK(new_shape[i] >= 0, ShapeError, "reshape: negative dimension in ", to_string(new_shape_in));
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    BLIP2_CHECK(known > 0 && numel() % known == 0, ShapeError, "reshape: cannot reshape ", to_string(shape()), " to ",
                to_string(new_shape_in));
    new_shape[std::size_t(infer)] = numel() / known;
  }
  BLIP2_CHECK(blip2::numel(new_shape) == numel(), ShapeError, "reshape: cannot reshape ", to_string(shape()), " (",
              numel(), " elements) to ", to_string(new_shape_in));
  const Tensor src = contiguous();
  Tensor out = make_view(src, new_shape, contiguous_strides(new_shape), src.offset());
  if (!autograd::needs_grad<T, D>({&src})) return out;
  Shape old = shape();
  return autograd::record<T, D>("reshape", out, {src}, [old](const Tensor& g) {
    return std::vector<Tensor>{g.contiguous().reshape(old)};
  });
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::permute(const std::vector<index_t>& order) const {
  const std::size_t r = shape().size();
  BLIP2_CHECK(order.size() == r, ShapeError, "permute: ", order.size(), " axes given for shape ", to_string(shape()));
  Shape s(r);
  Strides st(r);
  std::vector<index_t> inverse(r, -1);
  for (std::size_t i = 0; i < r; ++i) {
    const std::size_t a = normalize_axis(order[i], r, "permute");
    BLIP2_CHECK(inverse[a] < 0, ShapeError, "permute: axis ", order[i], " repeated for shape ", to_string(shape()));
    inverse[a] = index_t(i);
    s[i] = shape()[a];
    st[i] = strides()[a];
  }
  Tensor out = make_view(*this, s, st, offset());
  if (!autograd::needs_grad<T, D>({this})) return out;
  return autograd::record<T, D>("permute", out, {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::transpose(index_t a, index_t b) const {
  std::vector<index_t> order(shape().size());
  std::iota(order.begin(), order.end(), index_t(0));
  std::swap(order[normalize_axis(a, order.size(), "transpose")], order[normalize_axis(b, order.size(), "transpose")]);
  return permute(order);
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::slice(index_t axis_in, index_t start, index_t end, index_t step) const {
  const std::size_t axis = normalize_axis(axis_in, shape().size(), "slice");
  const index_t n = shape()[axis];
  BLIP2_CHECK(step > 0, ValueError, "slice: step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<index_t>(start, 0, n);
  end = std::clamp<index_t>(end, start, n);
  Shape s = shape();
  Strides st = strides();
  s[axis] = (end - start + step - 1) / step;
  st[axis] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * strides()[axis]);
  if (!autograd::needs_grad<T, D>({this})) return out;
  Shape full = shape();
  return autograd::record<T, D>("slice", out, {*this}, [full, axis, start, end, step](const Tensor& g) {
    Tensor z = Tensor::zeros(full);
    Tensor dst = z.slice(index_t(axis), start, end, step);
    Backend<D>::copy(g.data(), g.strides(), dst.data(), dst.strides(), g.shape());
    return std::vector<Tensor>{z};
  });
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::expand(const Shape& target) const {
  BLIP2_CHECK(target.size() >= shape().size(), ShapeError, "expand: cannot expand ", to_string(shape()), " to ",
              to_string(target));
  const std::size_t lead = target.size() - shape().size();
  for (std::size_t i = 0; i < shape().size(); ++i)
    BLIP2_CHECK(shape()[i] == target[lead + i] || shape()[i] == 1, ShapeError, "expand: cannot expand ",
                to_string(shape()), " to ", to_string(target));
  Tensor out = make_view(*this, target, broadcast_strides(shape(), strides(), target), offset());
  if (!autograd::needs_grad<T, D>({this})) return out;
  Shape from = shape();
  return autograd::record<T, D>("expand", out, {*this}, [from](const Tensor& g) {
    return std::vector<Tensor>{detail::sum_to(g, from)};
  });
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::unsqueeze(index_t axis) const {
  Shape s = shape();
  s.insert(s.begin() + std::ptrdiff_t(normalize_axis(axis, s.size() + 1, "unsqueeze")), 1);
  return reshape(s);
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::squeeze(index_t axis_in) const {
  const std::size_t axis = normalize_axis(axis_in, shape().size(), "squeeze");
  BLIP2_CHECK(shape()[axis] == 1, ShapeError, "squeeze: axis ", axis_in, " of shape ", to_string(shape()),
              " has size ", shape()[axis], ", not 1");
  Shape s = shape();
  s.erase(s.begin() + std::ptrdiff_t(axis));
  return reshape(s);
}

// Joins tensors along `axis`; all other dimensions must agree.
template <class T, class D>
Tensor<T, D> concat(const std::vector<Tensor<T, D>>& parts, index_t axis_in) {
  BLIP2_CHECK(!parts.empty(), ValueError, "concat: no tensors given");
  const Shape& first = parts[0].shape();
  const std::size_t axis = normalize_axis(axis_in, first.size(), "concat");
  Shape out_shape = first;
  out_shape[axis] = 0;
  for (const auto& p : parts) {
    bool ok = p.shape().size() == first.size();
    for (std::size_t i = 0; ok && i < first.size(); ++i) ok = i == axis || p.shape()[i] == first[i];
    BLIP2_CHECK(ok, ShapeError, "concat: shape ", to_string(p.shape()), " does not match ", to_string(first),
                " outside axis ", axis_in);
    out_shape[axis] += p.shape()[axis];
  }
  auto out = Tensor<T, D>::empty(out_shape);
  std::vector<index_t> starts;
  index_t at = 0;
  bool grad = false;
  for (const auto& p : parts) {
    auto dst = out.slice(index_t(axis), at, at + p.shape()[axis]);
    Backend<D>::copy(p.data(), p.strides(), dst.data(), dst.strides(), p.shape());
    starts.push_back(at);
    at += p.shape()[axis];
    grad = grad || autograd::needs_grad<T, D>({&p});
  }
  if (!grad) return out;
  starts.push_back(at);
  return autograd::record<T, D>("concat", out, parts, [starts, axis](const Tensor<T, D>& g) {
    std::vector<Tensor<T, D>> gs;
    for (std::size_t i = 0; i + 1 < starts.size(); ++i) gs.push_back(g.slice(index_t(axis), starts[i], starts[i + 1]));
    return gs;
  });
}

// Views of consecutive pieces of `sizes` along `axis` (their sum must be the axis length).
template <class T, class D>
std::vector<Tensor<T, D>> split(const Tensor<T, D>& x, const std::vector<index_t>& sizes, index_t axis) {
  const std::size_t a = normalize_axis(axis, x.shape().size(), "split");
  index_t total = 0;
  for (index_t s : sizes) total += s;
  BLIP2_CHECK(total == x.shape()[a], ShapeError, "split: sizes sum to ", total, " but axis ", axis, " of ",
              to_string(x.shape()), " has ", x.shape()[a]);
  std::vector<Tensor<T, D>> out;
  index_t at = 0;
  for (index_t s : sizes) {
    out.push_back(x.slice(axis, at, at + s));
    at += s;
  }
  return out;
}

}  // namespace blip2
