#pragma once
// Copies: contiguous(), clone(), element-type and device conversion.
#include "../autograd/node.hpp"
#include "../backend/backend.hpp"

namespace blip2 {

template <class T, class D>
Tensor<T, D> Tensor<T, D>::clone() const {
  Tensor out = Tensor::empty(shape());
  Backend<D>::copy(data(), strides(), out.data(), out.strides(), shape());
  if (!autograd::needs_grad<T, D>({this})) return out;
  return autograd::record<T, D>("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

template <class T, class D>
Tensor<T, D> Tensor<T, D>::contiguous() const {
  return is_contiguous() ? *this : clone();
}

template <class T, class D>
template <class X>
auto Tensor<T, D>::to() const {
  if constexpr (is_device_v<X>) {
    if constexpr (std::is_same_v<X, D>) {
      return *this;
    } else {
      BLIP2_CHECK(!(GradMode::enabled() && requires_grad()), AutogradError, "to<", X::name, ">(): tensor of shape ",
                  to_string(shape()), " requires grad; moving devices is not differentiable, detach() it first");
      const Tensor c = contiguous();
      std::vector<T> host(std::size_t(c.numel()));
      Backend<D>::copy_to_host(host.data(), c.data(), c.numel());
      return Tensor<T, X>::from_vector(shape(), host);
    }
  } else {
    if constexpr (std::is_same_v<X, T>) {
      return *this;
    } else {
      BLIP2_CHECK(!(GradMode::enabled() && requires_grad()), AutogradError, "to<", dtype_name<X>, ">(): tensor of shape ",
                  to_string(shape()), " (", dtype_name<T>, ") requires grad; type conversion is not differentiable, "
                  "detach() it first");
      auto out = Tensor<X, D>::empty(shape());
      Backend<D>::copy(data(), strides(), out.data(), out.strides(), shape());
      return out;
    }
  }
}

}  // namespace blip2
