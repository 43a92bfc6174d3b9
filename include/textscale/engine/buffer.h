// An owning, 64-byte aligned, zero-initialised array of T in host memory.
//
// Host memory serves the reference and oneDNN backends; the CUDA backend owns device buffers of
// its own and exchanges data with these through explicit copies.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace textscale::engine {

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t count) { resize(count); }

  // Discards the contents; the new elements are zero.
  void resize(std::size_t count) {
    if (count == size_) {
      zero();
      return;
    }
    data_.reset();
    size_ = 0;
    if (count == 0) return;
    std::size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    void* memory = std::aligned_alloc(64, bytes);
    if (memory == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<T*>(memory));
    size_ = count;
    zero();
  }
  void zero() {
    if (size_ != 0) std::memset(data_.get(), 0, size_ * sizeof(T));
  }

  [[nodiscard]] T* data() { return data_.get(); }
  [[nodiscard]] const T* data() const { return data_.get(); }
  [[nodiscard]] std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T[], Free> data_;
  std::size_t size_ = 0;
};

}  // namespace textscale::engine
