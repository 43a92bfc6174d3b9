// How much memory this process may still allocate, to refuse a model that cannot fit before
// allocating it (an allocation that fails part-way leaves no room for a clear report).
#pragma once

#include <cstdint>
#include <string>

namespace textscale {

struct AvailableMemory {
  std::uint64_t bytes = 0;  // 0: unknown
  std::string limit;        // what sets it: "free memory (MemAvailable)", "ulimit -v", "cgroup memory.max"
};

// The least of the machine's available memory (/proc/meminfo MemAvailable), the address-space
// limit (RLIMIT_AS, `ulimit -v`) less what the process has mapped, and its cgroup's memory.max
// less memory.current.
[[nodiscard]] AvailableMemory available_memory();

// "1.25 GiB", "310 MiB".
[[nodiscard]] std::string memory_size(double bytes);

}  // namespace textscale
