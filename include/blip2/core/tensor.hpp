#pragma once
// Tensor<T, D>: element type T and device D fixed at compile time, shape and strides at run time.
// A Tensor is a handle: copies share the same data, and views (reshape, permute, slice, expand) share
// storage without copying. Autograd state (requires_grad, grad, the node that made it) lives in the
// shared implementation, as in PyTorch.
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "../fwd.hpp"
#include "error.hpp"
#include "shape.hpp"
#include "storage.hpp"

namespace blip2 {

namespace detail {
template <class T, class D>
struct TensorImpl {
  Storage<T, D> storage;
  Shape shape;
  Strides strides;
  index_t offset = 0;
  bool requires_grad = false;                    // a leaf that collects gradients
  std::shared_ptr<TensorImpl> grad;              // accumulated gradient of a leaf
  std::shared_ptr<autograd::Node<T, D>> grad_fn;  // the op that produced this tensor
};
}  // namespace detail

template <class T, class D>
class Tensor {
  static_assert(is_device_v<D>, "Tensor<T, D>: D must be a device tag (blip2::cpu or blip2::cuda)");

 public:
  using value_type = T;
  using device_type = D;
  using Impl = detail::TensorImpl<T, D>;

  Tensor() = default;  // undefined (no data); defined() is false
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  // ---- creation (contents uninitialised for empty) ----
  static Tensor empty(const Shape& shape) {
    for (index_t d : shape)
      BLIP2_CHECK(d >= 0, ShapeError, "Tensor::empty: negative dimension in shape ", to_string(shape));
    auto impl = std::make_shared<Impl>();
    impl->storage = Storage<T, D>(blip2::numel(shape));
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    return Tensor(std::move(impl));
  }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    Backend<D>::fill(t.data(), t.numel(), value);
    return t;
  }
  static Tensor zeros(const Shape& shape) { return full(shape, convert_scalar<T>(0)); }
  static Tensor ones(const Shape& shape) { return full(shape, convert_scalar<T>(1)); }
  static Tensor scalar(T value) { return full({}, value); }
  // Copies host values (row-major) into a new tensor of the given shape.
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values) {
    BLIP2_CHECK(index_t(values.size()) == blip2::numel(shape), ShapeError, "Tensor::from_vector: ", values.size(),
                " values for shape ", to_string(shape));
    Tensor t = empty(shape);
    Backend<D>::copy_from_host(t.data(), values.data(), t.numel());
    return t;
  }
  // Wraps external memory without copying; `owner` keeps it alive.
  static Tensor from_external(T* data, const Shape& shape, std::shared_ptr<const void> owner) {
    auto impl = std::make_shared<Impl>();
    impl->storage = Storage<T, D>(data, blip2::numel(shape), std::move(owner));
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    return Tensor(std::move(impl));
  }

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  const Strides& strides() const { return checked().strides; }
  index_t offset() const { return checked().offset; }
  index_t dim() const { return index_t(shape().size()); }
  index_t size(index_t axis) const { return shape()[normalize_axis(axis, shape().size(), "Tensor::size")]; }
  index_t numel() const { return blip2::numel(shape()); }
  T* data() const { return checked().storage.data() + checked().offset; }
  const Storage<T, D>& storage() const { return checked().storage; }
  bool is_contiguous() const {
    index_t expect = 1;
    for (std::size_t i = shape().size(); i-- > 0;) {
      if (shape()[i] != 1 && strides()[i] != expect) return false;
      expect *= shape()[i];
    }
    return true;
  }
  // Whether two handles share one implementation (the same tensor, not just equal values).
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- host access ----
  // Values in row-major order, copied to the host.
  std::vector<T> to_vector() const;
  // The single value of a one-element tensor.
  T item() const {
    BLIP2_CHECK(numel() == 1, ShapeError, "Tensor::item: tensor of shape ", to_string(shape()),
                " has ", numel(), " elements, not 1");
    return to_vector()[0];
  }

  // ---- views and copies (ops/view.hpp, ops/convert.hpp) ----
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<index_t>& order) const;
  Tensor transpose(index_t a, index_t b) const;
  Tensor slice(index_t axis, index_t start, index_t end, index_t step = 1) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(index_t axis) const;
  Tensor squeeze(index_t axis) const;
  Tensor contiguous() const;
  Tensor clone() const;
  // to<U>() converts the element type, to<Device>() moves to another device; both copy.
  template <class X> auto to() const;

  // ---- autograd (autograd/engine.hpp) ----
  bool requires_grad() const { return defined() && (impl_->requires_grad || impl_->grad_fn); }
  // Marks a leaf as a parameter whose gradient is accumulated into grad().
  Tensor& requires_grad_(bool on = true) {
    static_assert(is_compute_v<T>, "requires_grad_: only float32/float64 tensors take gradients");
    BLIP2_CHECK(!checked().grad_fn, AutogradError,
                "requires_grad_: tensor of shape ", to_string(shape()), " is not a leaf; use detach()");
    impl_->requires_grad = on;
    return *this;
  }
  // Accumulated gradient (undefined until a backward pass reaches this leaf).
  Tensor grad() const { return checked().grad ? Tensor(checked().grad) : Tensor(); }
  void zero_grad() const { checked().grad.reset(); }
  const std::shared_ptr<autograd::Node<T, D>>& grad_fn() const { return checked().grad_fn; }
  // Same data, cut off from the graph.
  Tensor detach() const {
    auto impl = std::make_shared<Impl>();
    impl->storage = checked().storage;
    impl->shape = shape();
    impl->strides = strides();
    impl->offset = offset();
    return Tensor(std::move(impl));
  }
  // Reverse-mode differentiation from this scalar (or with an explicit output gradient).
  void backward() const;
  void backward(const Tensor& grad_output) const;

  Impl& impl() const { return checked(); }
  const std::shared_ptr<Impl>& impl_ptr() const { return impl_; }

 private:
  Impl& checked() const {
    BLIP2_CHECK(impl_, Error, "use of an undefined Tensor<", dtype_name<T>, ", ", D::name, ">");
    return *impl_;
  }
  std::shared_ptr<Impl> impl_;
};

// A view of `base` with new geometry, sharing storage (no autograd bookkeeping).
template <class T, class D>
Tensor<T, D> make_view(const Tensor<T, D>& base, Shape shape, Strides strides, index_t offset) {
  auto impl = std::make_shared<detail::TensorImpl<T, D>>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor<T, D>(std::move(impl));
}

template <class T, class D>
std::vector<T> Tensor<T, D>::to_vector() const {
  const Tensor c = is_contiguous() ? *this : contiguous();
  std::vector<T> out(std::size_t(c.numel()));
  Backend<D>::copy_to_host(out.data(), c.data(), c.numel());
  return out;
}

template <class T, class D>
std::ostream& operator<<(std::ostream& os, const Tensor<T, D>& t) {
  os << "Tensor<" << dtype_name<T> << ", " << D::name << ">" << to_string(t.shape()) << " {";
  const auto v = t.to_vector();
  for (std::size_t i = 0; i < v.size() && i < 16; ++i) os << (i ? ", " : "") << convert_scalar<double>(v[i]);
  return os << (v.size() > 16 ? ", ...}" : "}");
}

}  // namespace blip2
