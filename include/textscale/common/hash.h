// FNV-1a, 64-bit: a hash that is the same on every platform and standard library (unlike
// std::hash), for seeding streams from names and comparing configurations across ranks.
#pragma once

#include <cstdint>
#include <string_view>

namespace textscale {

constexpr std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

}  // namespace textscale
