// An owning, zero-initialised array of T in a backend's memory (memory.h; host by default).
#pragma once

#include <cstddef>
#include <memory>

#include "textscale/engine/memory.h"

namespace textscale::engine {

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t count, const Memory& memory = host_memory()) { resize(count, memory); }

  // Discards the contents; the new elements are zero. Keeps the buffer's memory.
  void resize(std::size_t count) { resize(count, *memory_); }
  void resize(std::size_t count, const Memory& memory) {
    if (count == size_ && &memory == memory_) {
      zero();
      return;
    }
    data_.reset();
    size_ = 0;
    memory_ = &memory;
    data_ = Pointer(count == 0 ? nullptr : static_cast<T*>(memory.allocate(count * sizeof(T))), Release{&memory});
    size_ = count;
  }
  void zero() {
    if (size_ != 0) memory_->zero(data_.get(), size_ * sizeof(T));
  }

  [[nodiscard]] T* data() { return data_.get(); }
  [[nodiscard]] const T* data() const { return data_.get(); }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] const Memory& memory() const { return *memory_; }
  // Element access for host memory (or device memory after Memory::synchronize()).
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  struct Release {
    const Memory* memory = nullptr;
    void operator()(T* p) const {
      if (p != nullptr) memory->release(p);
    }
  };
  using Pointer = std::unique_ptr<T[], Release>;
  Pointer data_{nullptr, Release{}};
  std::size_t size_ = 0;
  const Memory* memory_ = &host_memory();
};

}  // namespace textscale::engine
