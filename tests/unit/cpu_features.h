// What the CPU offers, for tests whose paths depend on it: the flags Linux lists in /proc/cpuinfo.
#pragma once

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace textscale::testing {

// Whether the first processor's flags include `flag` (a whole word, e.g. "amx_bf16").
inline bool cpu_has_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string word;
    while (words >> word)
      if (word == flag) return true;
    return false;
  }
  return false;
}

// AMX with bf16 tiles (Intel Sapphire Rapids and later), which oneDNN prefers for bf16 when present.
inline bool cpu_has_amx() {
  return cpu_has_flag("amx_bf16");
}

// For a test program's main: removes a leading "--only-if-amx" from `args` and returns true when
// the program should then report itself skipped (exit 77) because the CPU has no AMX. ctest runs
// the bf16 tests a second time with oneDNN capped at AVX512_CORE_BF16 (DNNL_MAX_CPU_ISA, read once
// per process), the other bf16 path of an AMX CPU; elsewhere that run would repeat the first one.
inline bool skip_unless_amx(std::vector<char*>& args) {
  if (args.size() < 2 || std::string(args[1]) != "--only-if-amx") return false;
  args.erase(args.begin() + 1);
  if (cpu_has_amx()) return false;
  std::printf("SKIP: this CPU has no AMX, so capping oneDNN at AVX512_CORE_BF16 changes nothing\n");
  return true;
}

}  // namespace textscale::testing
