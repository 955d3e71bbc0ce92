#pragma once
// A whole file mapped read-only into memory (copy-on-write, so tensors that view it may be
// modified without touching the file). Checkpoints are loaded through it without reading them.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "../core/error.hpp"

namespace blip2::io {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    BLIP2_CHECK(fd >= 0, IoError, path, ": cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw IoError(path + ": not a regular file");
    }
    auto f = std::shared_ptr<MappedFile>(new MappedFile(path, std::size_t(st.st_size)));
    if (f->size_ > 0) {
      void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw IoError(path + ": cannot map (" + std::strerror(errno) + ")");
      }
      f->data_ = static_cast<unsigned char*>(p);
    }
    ::close(fd);
    return f;
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, std::size_t size) : path_(std::move(path)), size_(size) {}
  std::string path_;
  std::size_t size_;
  unsigned char* data_ = nullptr;
};

}  // namespace blip2::io
