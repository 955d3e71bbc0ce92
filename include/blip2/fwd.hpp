#pragma once
// Forward declarations of blip2's central types.
#include "core/device.hpp"
#include "core/dtype.hpp"

namespace blip2 {

template <class T, class D = cpu> class Tensor;
template <class D> struct Backend;
namespace autograd {
template <class T, class D> struct Node;
}
namespace detail {
template <class T, class D> struct TensorImpl;
}

}  // namespace blip2
