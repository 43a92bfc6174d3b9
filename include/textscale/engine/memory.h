// Where a backend's tensors live, and how the host reaches them.
//
// Every Buffer is allocated from a Memory: host memory for the CPU backends, device memory for
// the CUDA backend. Backend operations take pointers into their backend's memory only. Host code
// that reads or writes a buffer directly (initialisation, checkpoints, MPI collectives on host
// data, synchronised batch-norm statistics) first calls `synchronize()`, which waits until the
// work queued on the device is done; the hot paths (input batches, logits) use `copy_to_device`
// and `copy_to_host` instead.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace textscale::engine {

class Memory {
 public:
  virtual ~Memory() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  // Zeroed bytes, at least 64-byte aligned; throws std::bad_alloc (or a device error) on failure.
  [[nodiscard]] virtual void* allocate(std::size_t bytes) const = 0;
  virtual void release(void* pointer) const noexcept = 0;
  // Sets `bytes` bytes to zero, ordered with the backend's queued work.
  virtual void zero(void* pointer, std::size_t bytes) const = 0;
  // Host -> this memory, ordered after the queued work; `src` may be reused when it returns.
  virtual void copy_to_device(void* dst, const void* src, std::size_t bytes) const = 0;
  // This memory -> host, after the queued work; the data is in `dst` when it returns.
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) const = 0;
  // Waits until the queued work is done; afterwards the host may access the memory directly.
  virtual void synchronize() const {}
  // True when host code may dereference pointers into this memory without synchronising.
  [[nodiscard]] virtual bool is_host() const { return false; }
  // Host memory to stage copies to and from this memory: page-locked for a device, so that
  // copy_to_device from it runs asynchronously. A copy from staging memory may still be running
  // when copy_to_device returns: do not overwrite the source before the next synchronize() or
  // copy_to_host. For host memory, host memory itself.
  [[nodiscard]] virtual const Memory& staging() const { return *this; }

  // Timing marks ordered with the queued work (textscale bench --profile): mark() records one and
  // returns its number; once the work queued before mark b is done (synchronize()),
  // seconds_between(a, b) is the time from a to b; forget_marks() drops them all (so one Profile
  // at a time, from one thread, uses a memory's marks). Here the host
  // clock at mark(), when the work before it is done for memory the host computes in; a device's
  // memory records events on its queue instead, so that timing a layer does not drain the queue.
  virtual std::size_t mark() const;
  [[nodiscard]] virtual double seconds_between(std::size_t a, std::size_t b) const;
  virtual void forget_marks() const;

 private:
  mutable std::vector<std::chrono::steady_clock::time_point> marks_;
};

// Plain, 64-byte aligned host memory (the reference and oneDNN backends).
const Memory& host_memory();

}  // namespace textscale::engine
