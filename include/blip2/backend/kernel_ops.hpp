#pragma once
// The elementwise and reduction operators every back end implements, with their scalar definitions
// and derivatives. CPU kernels vectorise the common ones; CUDA kernels call these directly.
#include <cmath>

#if defined(__CUDACC__)
#define BLIP2_HD __host__ __device__
#else
#define BLIP2_HD
#endif

namespace blip2 {

// y = f(x; alpha). The *_scalar ops take their constant from alpha.
enum class UnaryOp {
  neg, exp, log, tanh, relu, gelu_erf, gelu_tanh, silu, sigmoid, sqrt, rsqrt, square, abs,
  add_scalar, mul_scalar, pow_scalar, clamp_min
};
enum class BinaryOp { add, sub, mul, div, eq };
enum class ReduceOp { sum, max };

namespace kernel {

template <class T> BLIP2_HD inline T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }
template <class T> inline constexpr T kSqrt2OverPi = T(0.7978845608028654);
template <class T> inline constexpr T kGeluCubic = T(0.044715);

template <class T>
BLIP2_HD inline T unary(UnaryOp op, T x, T a) {
  using std::abs; using std::erf; using std::exp; using std::log; using std::pow; using std::sqrt; using std::tanh;
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return log(x);
    case UnaryOp::tanh: return tanh(x);
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::gelu_erf: return T(0.5) * x * (T(1) + erf(x * T(0.7071067811865476)));
    case UnaryOp::gelu_tanh:
      return T(0.5) * x * (T(1) + tanh(kSqrt2OverPi<T> * (x + kGeluCubic<T> * x * x * x)));
    case UnaryOp::silu: return x * sigmoid(x);
    case UnaryOp::sigmoid: return sigmoid(x);
    case UnaryOp::sqrt: return sqrt(x);
    case UnaryOp::rsqrt: return T(1) / sqrt(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::abs: return abs(x);
    case UnaryOp::add_scalar: return x + a;
    case UnaryOp::mul_scalar: return x * a;
    case UnaryOp::pow_scalar: return pow(x, a);
    case UnaryOp::clamp_min: return x > a ? x : a;
  }
  return x;
}

// dy/dx given x and y = unary(op, x, a).
template <class T>
BLIP2_HD inline T unary_derivative(UnaryOp op, T x, T y, T a) {
  using std::erf; using std::exp; using std::pow; using std::tanh;
  switch (op) {
    case UnaryOp::neg: return T(-1);
    case UnaryOp::exp: return y;
    case UnaryOp::log: return T(1) / x;
    case UnaryOp::tanh: return T(1) - y * y;
    case UnaryOp::relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::gelu_erf:
      return T(0.5) * (T(1) + erf(x * T(0.7071067811865476))) + x * T(0.3989422804014327) * exp(T(-0.5) * x * x);
    case UnaryOp::gelu_tanh: {
      const T t = tanh(kSqrt2OverPi<T> * (x + kGeluCubic<T> * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * kSqrt2OverPi<T> * (T(1) + T(3) * kGeluCubic<T> * x * x);
    }
    case UnaryOp::silu: {
      const T s = sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::sigmoid: return y * (T(1) - y);
    case UnaryOp::sqrt: return T(0.5) / y;
    case UnaryOp::rsqrt: return T(-0.5) * y * y * y;
    case UnaryOp::square: return T(2) * x;
    case UnaryOp::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case UnaryOp::add_scalar: return T(1);
    case UnaryOp::mul_scalar: return a;
    case UnaryOp::pow_scalar: return a * pow(x, a - T(1));
    case UnaryOp::clamp_min: return x > a ? T(1) : T(0);
  }
  return T(0);
}

template <class T>
BLIP2_HD inline T binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::eq: return a == b ? T(1) : T(0);
  }
  return a;
}

// Softmax treats entries at or below this as masked out; a row with all entries masked yields zeros.
template <class T> inline constexpr T kMaskedBelow = T(-1e30);

}  // namespace kernel
}  // namespace blip2
