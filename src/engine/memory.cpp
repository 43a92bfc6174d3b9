#include "textscale/engine/memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace textscale::engine {

namespace {

class HostMemory final : public Memory {
 public:
  [[nodiscard]] std::string name() const override { return "host"; }
  [[nodiscard]] void* allocate(std::size_t bytes) const override {
    void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (memory == nullptr) throw std::bad_alloc();
    std::memset(memory, 0, bytes);
    return memory;
  }
  void release(void* pointer) const noexcept override { std::free(pointer); }
  void zero(void* pointer, std::size_t bytes) const override { std::memset(pointer, 0, bytes); }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) const override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) const override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  [[nodiscard]] bool is_host() const override { return true; }
};

}  // namespace

std::size_t Memory::mark() const {
  marks_.push_back(std::chrono::steady_clock::now());
  return marks_.size() - 1;
}
double Memory::seconds_between(std::size_t a, std::size_t b) const {
  return std::chrono::duration<double>(marks_.at(b) - marks_.at(a)).count();
}
void Memory::forget_marks() const {
  marks_.clear();
}

const Memory& host_memory() {
  static const HostMemory memory;
  return memory;
}

}  // namespace textscale::engine
