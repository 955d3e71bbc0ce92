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

}  // namespace blip2::testing
