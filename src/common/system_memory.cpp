#include "textscale/common/system_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace textscale {

namespace {

void take(AvailableMemory& least, std::uint64_t bytes, const char* limit) {
  if (least.bytes == 0 || bytes < least.bytes) least = {bytes, limit};
}

// The first number in `path` (a cgroup file holds one, or "max"); -1 when absent or "max".
long long read_number(const std::string& path) {
  std::ifstream in(path);
  long long value = -1;
  if (!(in >> value)) return -1;
  return value;
}

}  // namespace

AvailableMemory available_memory() {
  AvailableMemory least;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  long long kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") take(least, static_cast<std::uint64_t>(kib) * 1024, "free memory (MemAvailable)");
    meminfo.ignore(1 << 10, '\n');
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    std::ifstream statm("/proc/self/statm");
    long long pages = 0;
    statm >> pages;
    const std::uint64_t mapped = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    take(least, limit.rlim_cur > mapped ? limit.rlim_cur - mapped : 1, "the address-space limit (ulimit -v)");
  }
  // cgroup v2: the process's group is the one line "0::/path" of /proc/self/cgroup.
  std::ifstream cgroup("/proc/self/cgroup");
  std::string line;
  while (std::getline(cgroup, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    const long long max = read_number(dir + "/memory.max"), current = read_number(dir + "/memory.current");
    if (max > 0 && current >= 0)
      take(least, max > current ? static_cast<std::uint64_t>(max - current) : 1, "the cgroup's memory.max");
  }
  return least;
}

std::string memory_size(double bytes) {
  char text[32];
  if (bytes >= 1024.0 * 1024 * 1024)
    std::snprintf(text, sizeof text, "%.3g GiB", bytes / (1024.0 * 1024 * 1024));
  else
    std::snprintf(text, sizeof text, "%.3g MiB", bytes / (1024.0 * 1024));
  return text;
}

}  // namespace textscale
