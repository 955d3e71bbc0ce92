#pragma once
// Error hierarchy. Every failure blip2 reports is a blip2::Error; subclasses say which kind, and the
// message names the op, tensor, shape, dtype, device or file involved.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace blip2 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};
// Shapes that do not fit an op (message names the op and every shape).
class ShapeError : public Error { using Error::Error; };
// An element type an op or conversion cannot take.
class DTypeError : public Error { using Error::Error; };
// A device that is absent, or tensors on different devices.
class DeviceError : public Error { using Error::Error; };
// An index or argument outside its valid range.
class ValueError : public Error { using Error::Error; };
// Autograd misuse (backward of a non-scalar, of a tensor without a graph, ...).
class AutogradError : public Error { using Error::Error; };
// Files: missing, truncated, corrupt.
class IoError : public Error { using Error::Error; };
// A collective between data-parallel ranks that failed (MPI, NCCL), or ranks that disagree.
class CommunicatorError : public Error { using Error::Error; };

namespace detail {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace blip2

// Throws ErrorType with the streamed message when cond is false.
#define BLIP2_CHECK(cond, ErrorType, ...)                              \
  do {                                                                 \
    if (!(cond)) throw ErrorType(::blip2::detail::cat(__VA_ARGS__));   \
  } while (0)
