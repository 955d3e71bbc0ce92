#pragma once
// Device memory: a caching allocator. cudaMalloc and cudaFree are slow and synchronise the device,
// so freed blocks are kept in free lists keyed by (device, bucket size) and handed out again to the
// next request of the same bucket. Sizes are rounded up to a bucket: multiples of 512 bytes up to
// 1 MiB, above that eight buckets per power of two (at most 12.5% slack). When cudaMalloc runs out
// of memory, the cached blocks of that device are released and the allocation is tried once more.
//
// All kernels and copies run on the legacy default stream, so a block freed on the host while a
// kernel may still use it is safe to reuse: the next user's work is queued after it.
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "../../core/shape.hpp"
#include "error.hpp"

namespace blip2::cuda_kernel {

struct MemoryStats {
  std::size_t in_use_bytes = 0;        // handed out and not yet freed (bucket sizes)
  std::size_t cached_bytes = 0;        // held in free lists, ready for reuse
  std::size_t device_allocations = 0;  // cudaMalloc calls so far
  std::size_t reuses = 0;              // requests served from a free list
  std::size_t device_frees = 0;        // cudaFree calls so far (by release_all / out-of-memory retry)
};

class CachingAllocator {
 public:
  // The process-wide allocator. Deliberately never destroyed: blocks freed during static
  // destruction go back to a free list instead of calling into a CUDA runtime that is shutting down.
  static CachingAllocator& instance() {
    static CachingAllocator* a = new CachingAllocator();
    return *a;
  }

  static std::size_t bucket_size(std::size_t bytes) {
    constexpr std::size_t kSmall = 512, kLarge = std::size_t(1) << 20;
    if (bytes <= kLarge) return std::max<std::size_t>(kSmall, (bytes + kSmall - 1) / kSmall * kSmall);
    std::size_t p = kLarge;
    while (p * 2 <= bytes) p *= 2;
    const std::size_t step = p / 8;
    return (bytes + step - 1) / step * step;
  }

  // A block of at least `bytes` on the current device; `bucket` and `device` receive what release needs.
  void* allocate(std::size_t bytes, std::size_t& bucket, int& device) {
    bucket = bucket_size(bytes);
    BLIP2_CUDA_CHECK(cudaGetDevice(&device));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(Key{device, bucket});
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= bucket;
        stats_.in_use_bytes += bucket;
        ++stats_.reuses;
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bucket);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_device(device);
      e = cudaMalloc(&p, bucket);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      const MemoryStats s = stats();
      throw DeviceError(::blip2::detail::cat("cuda allocate: cudaMalloc of ", bucket, " bytes on device ", device, " failed: ",
                                    cudaGetErrorName(e), ": ", cudaGetErrorString(e), " (", s.in_use_bytes,
                                    " bytes in use, ", s.cached_bytes, " cached)"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.device_allocations;
    stats_.in_use_bytes += bucket;
    return p;
  }

  // Returns a block to its free list (no CUDA call).
  void release(void* p, std::size_t bucket, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_[Key{device, bucket}].push_back(p);
    stats_.in_use_bytes -= bucket;
    stats_.cached_bytes += bucket;
  }

  // cudaFree every cached block on every device (blocks in use are untouched).
  void release_all() { release_where([](int) { return true; }); }
  void release_device(int device) { release_where([device](int d) { return d == device; }); }

  MemoryStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct Key {
    int device;
    std::size_t bucket;
    bool operator==(const Key& o) const { return device == o.device && bucket == o.bucket; }
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const { return std::hash<std::size_t>()(k.bucket) ^ std::size_t(k.device); }
  };

  template <class Pred>
  void release_where(Pred pred) {
    std::vector<std::pair<int, void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [key, list] : free_) {
        if (!pred(key.device)) continue;
        for (void* p : list) blocks.emplace_back(key.device, p);
        stats_.cached_bytes -= key.bucket * list.size();
        list.clear();
      }
    }
    if (blocks.empty()) return;
    int current = 0;
    BLIP2_CUDA_CHECK(cudaGetDevice(&current));
    for (auto& [device, p] : blocks) {
      if (device != current) BLIP2_CUDA_CHECK(cudaSetDevice(device));
      BLIP2_CUDA_CHECK(cudaFree(p));
      if (device != current) BLIP2_CUDA_CHECK(cudaSetDevice(current));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.device_frees += blocks.size();
  }

  CachingAllocator() = default;
  mutable std::mutex mutex_;
  std::unordered_map<Key, std::vector<void*>, KeyHash> free_;
  MemoryStats stats_;
};

// n elements of T on the current device, returned to the cache when the last owner lets go.
template <class T>
std::shared_ptr<T> allocate(index_t n) {
  BLIP2_CHECK(n >= 0, ValueError, "cuda allocate: negative element count ", n);
  std::size_t bucket = 0;
  int device = 0;
  void* p = CachingAllocator::instance().allocate(std::size_t(n) * sizeof(T), bucket, device);
  return std::shared_ptr<T>(static_cast<T*>(p),
                            [bucket, device](T* q) { CachingAllocator::instance().release(q, bucket, device); });
}

// Frees every cached (unused) block back to the driver, as torch.cuda.empty_cache().
inline void empty_cache() { CachingAllocator::instance().release_all(); }
inline MemoryStats memory_stats() { return CachingAllocator::instance().stats(); }

}  // namespace blip2::cuda_kernel
