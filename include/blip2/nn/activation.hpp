#pragma once
// Activation functions chosen by the name a Hugging Face config gives them.
#include <string>

#include "../ops/elementwise.hpp"

namespace blip2::nn {

enum class Activation { relu, gelu, gelu_tanh, silu };

// Maps config names ("gelu", "gelu_new", "relu", "silu", ...) to an activation; ValueError otherwise.
inline Activation activation_from_name(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::gelu_tanh;
  if (name == "silu" || name == "swish") return Activation::silu;
  throw ValueError("unsupported activation function '" + name + "' (relu, gelu, gelu_new, silu)");
}

template <class T, class D>
Tensor<T, D> activate(Activation a, const Tensor<T, D>& x) {
  switch (a) {
    case Activation::relu: return relu(x);
    case Activation::gelu: return gelu(x);
    case Activation::gelu_tanh: return gelu_tanh(x);
    case Activation::silu: return silu(x);
  }
  return x;
}

}  // namespace blip2::nn
