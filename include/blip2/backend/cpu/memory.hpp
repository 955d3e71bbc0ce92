#pragma once
// Host memory: 64-byte aligned buffers (one cache line, one AVX-512 register).
#include <cstring>
#include <memory>
#include <new>

#include "../../core/error.hpp"
#include "../../core/shape.hpp"

namespace blip2::cpu_kernel {

inline constexpr std::size_t kAlignment = 64;

template <class T>
std::shared_ptr<T> allocate(index_t n) {
  BLIP2_CHECK(n >= 0, ValueError, "cpu allocate: negative element count ", n);
  std::size_t bytes = 0;
  BLIP2_CHECK(!__builtin_mul_overflow(std::size_t(n), sizeof(T), &bytes), Error, "cpu allocate: ", n, " elements of ",
              sizeof(T), " bytes overflow the address space");
  bytes = std::max<std::size_t>(bytes, 1);
  void* p = ::operator new(bytes, std::align_val_t(kAlignment), std::nothrow);
  BLIP2_CHECK(p, Error, "cpu allocate: out of memory allocating ", bytes, " bytes");
  return std::shared_ptr<T>(static_cast<T*>(p), [](T* q) { ::operator delete(q, std::align_val_t(kAlignment)); });
}

}  // namespace blip2::cpu_kernel
