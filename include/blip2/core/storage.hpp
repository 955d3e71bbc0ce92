#pragma once
// Storage: a reference-counted buffer of T on device D. Views share it; the buffer is released by the
// back end that allocated it (or by whatever owns an external buffer, such as a memory map).
#include <memory>

#include "shape.hpp"

namespace blip2 {

template <class D> struct Backend;  // backend/backend.hpp

template <class T, class D>
class Storage {
 public:
  Storage() = default;
  // Fresh, uninitialised buffer of n elements.
  explicit Storage(index_t n) : data_(Backend<D>::template allocate<T>(n)), size_(n) {}
  // External buffer kept alive by `owner` (for example a memory-mapped checkpoint).
  Storage(T* data, index_t n, std::shared_ptr<const void> owner)
      : data_(std::move(owner), data), size_(n) {}

  T* data() const { return const_cast<T*>(data_.get()); }
  index_t size() const { return size_; }

 private:
  std::shared_ptr<const T> data_;
  index_t size_ = 0;
};

}  // namespace blip2
