// What the CPU offers, for tests whose paths depend on it: the flags Linux lists in /proc/cpuinfo.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace textscale::testing
