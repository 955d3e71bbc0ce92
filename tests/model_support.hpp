#pragma once
// Helpers for the parity tests against the Hugging Face fixtures (tests/data/hf-blip2, see its
// README for the tolerances used here).
#include <blip2/io/checkpoint.hpp>

#include "support.hpp"

namespace blip2::testing {

inline const std::string kFixtures = std::string(BLIP2_TEST_DATA) + "/hf-blip2/";

// Forward activations and logits: max |a - b| <= 1e-4 * max(1, max |b|).
template <class T>
void check_activation(const std::string& what, const Tensor<T>& ours, const Tensor<T>& ref, double rel = 1e-4) {
  INFO(what);
  REQUIRE(to_string(ours.shape()) == to_string(ref.shape()));
  const auto a = ours.to_vector(), b = ref.to_vector();
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  CHECK_MESSAGE(diff <= rel * scale, what << ": max abs diff " << diff << " (scale " << scale << ")");
}

// Gradients: max |a - b| <= rel * max |b| of the same tensor.
template <class T>
void check_gradient(const std::string& what, const Tensor<T>& ours, const Tensor<T>& ref, double rel = 1e-3) {
  INFO(what);
  REQUIRE_MESSAGE(ours.defined(), what << ": no gradient");
  REQUIRE(to_string(ours.shape()) == to_string(ref.shape()));
  const auto a = ours.to_vector(), b = ref.to_vector();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  CHECK_MESSAGE(diff <= rel * std::max(scale, 1e-30), what << ": max abs diff " << diff << " (max |ref| " << scale << ")");
}

// The LAVIS fixtures' gradient check: every parameter that trains has "grad.<name>" in
// `grads_file` and matches it to max(1e-3 * max |ref|, 1e-6) (the floor covers the attention key
// biases, analytically zero and stored as noise); a frozen one has no gradient and no entry; the
// file holds nothing else. Returns how many were compared. Works for models on any device.
template <class Model>
std::size_t check_trained_gradients(const Model& model, const std::string& grads_file) {
  const auto grads = io::SafeTensorsFile::open(grads_file);
  std::size_t checked = 0;
  for (const auto& named : model.named_parameters()) {  // no structured bindings: doctest captures them
    const std::string& name = named.first;
    const auto& p = named.second;
    INFO(name);
    if (!p.impl().requires_grad) {
      CHECK_MESSAGE(!grads.contains("grad." + name), name << " is frozen here but trains in the reference");
      CHECK_MESSAGE(!p.grad().defined(), name << ": frozen, yet it has a gradient");
      continue;
    }
    REQUIRE_MESSAGE(grads.contains("grad." + name), name << " trains here but not in the reference");
    REQUIRE_MESSAGE(p.grad().defined(), name << ": no gradient");
    const auto ref = grads.load<float>("grad." + name).to_vector();
    const auto ours = p.grad().template to<cpu>().to_vector();
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      diff = std::max(diff, std::abs(double(ours[i]) - double(ref[i])));
      scale = std::max(scale, std::abs(double(ref[i])));
    }
    CHECK_MESSAGE(diff <= std::max(1e-3 * scale, 1e-6), name << ": max abs diff " << diff << " (max |ref| " << scale << ")");
    ++checked;
  }
  CHECK(checked == grads.entries().size());
  return checked;
}

}  // namespace blip2::testing
