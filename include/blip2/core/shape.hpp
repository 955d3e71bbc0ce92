#pragma once
// Runtime shapes and strides (in elements), and the broadcasting rules (NumPy's).
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "error.hpp"

namespace blip2 {

using index_t = std::int64_t;
using Shape = std::vector<index_t>;
using Strides = std::vector<index_t>;

inline std::string to_string(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// The element count of `s`; a negative dimension, or a product past 2^63 - 1, is a ShapeError
// (shapes come from files too, and a wrapped count would size an allocation).
inline index_t numel(const Shape& s) {
  index_t n = 1;
  for (index_t d : s) {
    BLIP2_CHECK(d >= 0, ShapeError, "shape ", to_string(s), " has a negative dimension");
    BLIP2_CHECK(!__builtin_mul_overflow(n, d, &n), ShapeError, "shape ", to_string(s), " has more than 2^63 elements");
  }
  return n;
}

// Row-major strides of `s` (checked as numel checks them).
inline Strides contiguous_strides(const Shape& s) {
  numel(s);
  Strides st(s.size());
  index_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Wraps a possibly negative axis into [0, rank); names the op on failure.
inline std::size_t normalize_axis(index_t axis, std::size_t rank, const char* op) {
  const index_t r = index_t(rank);
  BLIP2_CHECK(axis >= -r && axis < r, ValueError, op, ": axis ", axis, " out of range for rank ", rank);
  return std::size_t(axis < 0 ? axis + r : axis);
}

inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const index_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const index_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    BLIP2_CHECK(da == db || da == 1 || db == 1, ShapeError, op, ": shapes ", to_string(a), " and ",
                to_string(b), " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides that read a tensor of shape `s`/`st` as if it had the broadcast shape `target`.
inline Strides broadcast_strides(const Shape& s, const Strides& st, const Shape& target) {
  Strides out(target.size(), 0);
  const std::size_t off = target.size() - s.size();
  for (std::size_t i = 0; i < s.size(); ++i) out[off + i] = s[i] == 1 ? 0 : st[i];
  return out;
}

}  // namespace blip2
