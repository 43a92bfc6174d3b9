// The dropout decision, identical on every backend and device.
//
// A counter-based hash (SplitMix64's finaliser) of (seed, element index) rather than a stateful
// generator: a kernel can compute any element's decision independently, the masks do not depend on
// thread count, and resuming a run needs only the step counter that goes into `seed`.
#pragma once

#include <cstdint>

// Also compiled into CUDA kernels.
#if defined(__CUDACC__)
#define TS_HOST_DEVICE __host__ __device__
#else
#define TS_HOST_DEVICE
#endif

namespace textscale::engine {

TS_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform number in [0, 1) with 24 bits, the same in float and double.
TS_HOST_DEVICE constexpr double uniform01(std::uint64_t seed, std::uint64_t index) {
  return static_cast<double>(mix64(seed ^ mix64(index)) >> 40) * (1.0 / 16777216.0);
}

// True when element `index` is kept by dropout with drop probability p.
TS_HOST_DEVICE constexpr bool dropout_keep(std::uint64_t seed, std::uint64_t index, double p) {
  return uniform01(seed, index) >= p;
}

// Seed for one dropout call: the run seed, the layer's position and the global step.
TS_HOST_DEVICE constexpr std::uint64_t dropout_seed(std::uint64_t run_seed, std::uint64_t layer, std::uint64_t step) {
  return mix64(run_seed ^ mix64(layer * 0x100000001b3ULL ^ mix64(step)));
}

}  // namespace textscale::engine
