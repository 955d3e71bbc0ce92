#pragma once
// Module: a named tree of parameters, as torch.nn.Module. Names compose with dots into the
// checkpoint keys ("qformer.encoder.layer.0.attention.self.query.weight"). Tensors are handles, so
// the registry and the member variables see the same storage. Frozen weights may be stored in a half
// type (bf16/f16) while the module computes in T; they load by name like parameters but never train.
#include <memory>
#include <variant>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace blip2::nn {

template <class T, class D>
class Module {
 public:
  using TensorT = Tensor<T, D>;
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter below this module, with its dotted name, in registration order.
  std::vector<std::pair<std::string, TensorT>> named_parameters() const {
    std::vector<std::pair<std::string, TensorT>> out;
    collect("", out);
    return out;
  }
  // The parameters that currently take gradients.
  std::vector<TensorT> trainable_parameters() const {
    std::vector<TensorT> out;
    for (auto& [name, p] : named_parameters())
      if (p.impl().requires_grad) out.push_back(p);
    return out;
  }
  using HalfWeight = std::variant<Tensor<bf16, D>, Tensor<f16, D>>;
  // Every half-precision weight below this module, with its dotted name.
  std::vector<std::pair<std::string, HalfWeight>> named_half_weights() const {
    std::vector<std::pair<std::string, HalfWeight>> out;
    collect_half("", out);
    return out;
  }
  index_t parameter_count() const {
    index_t n = 0;
    for (auto& [name, p] : named_parameters()) n += p.numel();
    for (auto& [name, w] : named_half_weights()) n += std::visit([](const auto& t) { return t.numel(); }, w);
    return n;
  }
  // Bytes the weights occupy in their storage types.
  std::size_t weight_bytes() const {
    std::size_t n = 0;
    for (auto& [name, p] : named_parameters()) n += std::size_t(p.numel()) * sizeof(T);
    for (auto& [name, w] : named_half_weights()) n += std::visit([](const auto& t) { return std::size_t(t.numel()) * 2; }, w);
    return n;
  }
  // Freezes (false) or unfreezes (true) every parameter below this module.
  void set_requires_grad(bool on) {
    for (auto& [name, p] : named_parameters()) p.requires_grad_(on);
  }
  void train(bool on = true) {
    training_ = on;
    for (auto& [name, m] : children_) m->train(on);
  }
  bool training() const { return training_; }

  // Registration is public so plain Module objects can serve as named containers ("encoder.layers").
  TensorT register_parameter(std::string name, TensorT t) {
    params_.emplace_back(std::move(name), t);
    return t;
  }
  // A weight stored as W: a parameter when W is T, otherwise a frozen half-precision weight.
  template <class W>
  Tensor<W, D> register_weight(std::string name, Tensor<W, D> t) {
    if constexpr (std::is_same_v<W, T>) {
      return register_parameter(std::move(name), t);
    } else {
      static_assert(is_half_v<W>, "register_weight: weights are stored as the compute type, bf16 or f16");
      half_.emplace_back(std::move(name), t);
      return t;
    }
  }
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, TensorT>>& out) const {
    for (auto& [name, p] : params_) out.emplace_back(prefix + name, p);
    for (auto& [name, m] : children_) m->collect(prefix + name + ".", out);
  }
  void collect_half(const std::string& prefix, std::vector<std::pair<std::string, HalfWeight>>& out) const {
    for (auto& [name, w] : half_) out.emplace_back(prefix + name, w);
    for (auto& [name, m] : children_) m->collect_half(prefix + name + ".", out);
  }
  std::vector<std::pair<std::string, TensorT>> params_;
  std::vector<std::pair<std::string, HalfWeight>> half_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace blip2::nn
