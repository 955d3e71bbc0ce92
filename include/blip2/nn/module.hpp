#pragma once
// Module: a named tree of parameters, as torch.nn.Module. Names compose with dots into the
// checkpoint keys ("qformer.encoder.layer.0.attention.self.query.weight"). Tensors are handles, so
// the registry and the member variables see the same storage.
#include <memory>
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
  index_t parameter_count() const {
    index_t n = 0;
    for (auto& [name, p] : named_parameters()) n += p.numel();
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
  std::vector<std::pair<std::string, TensorT>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace blip2::nn
