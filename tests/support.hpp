#pragma once
// Helpers shared by the tests: element-wise comparison and a finite-difference gradient check.
#include <doctest/doctest.h>

#include <blip2/blip2.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace blip2::testing {

// max |a - b| over all elements (shapes must agree).
template <class T, class D>
double max_abs_diff(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  REQUIRE(to_string(a.shape()) == to_string(b.shape()));
  const auto va = a.to_vector(), vb = b.to_vector();
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(double(va[i]) - double(vb[i])));
  return m;
}

template <class T>
Tensor<T> tensor(const Shape& s, std::vector<T> v) {
  return Tensor<T>::from_vector(s, v);
}

// Checks d f(inputs) / d inputs from backward() against central differences in float64.
// f must return a tensor; its elements are weighted by fixed random values so the whole Jacobian
// is exercised, not only its column sums.
inline void gradcheck(const std::string& what, std::vector<Tensor<double>> inputs,
                      const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                      double h = 1e-6, double tol = 1e-6) {
  INFO(what);
  for (auto& x : inputs) x.requires_grad_();
  const Tensor<double> out0 = f(inputs);
  Generator g(1234);
  const Tensor<double> weights = randn<double>(out0.shape(), g);
  auto objective = [&](const std::vector<Tensor<double>>& in) { return sum(f(in) * weights); };
  objective(inputs).backward();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Tensor<double> x = inputs[k];
    const Tensor<double> analytic = x.grad();
    REQUIRE_MESSAGE(analytic.defined(), what << ": no gradient reached input " << k);
    const auto a = analytic.to_vector();
    double* p = x.data();
    for (index_t i = 0; i < x.numel(); ++i) {
      NoGrad no_grad;
      const double saved = p[i];
      p[i] = saved + h;
      const double up = objective(inputs).item();
      p[i] = saved - h;
      const double down = objective(inputs).item();
      p[i] = saved;
      const double numeric = (up - down) / (2 * h);
      const double err = std::abs(numeric - a[std::size_t(i)]);
      CHECK_MESSAGE(err <= tol * std::max(1.0, std::abs(numeric)),
                    what << ": input " << k << " element " << i << " analytic " << a[std::size_t(i)] << " numeric "
                         << numeric);
    }
  }
}

}  // namespace blip2::testing
