// main() for the GPU test programs: without a visible GPU they print why and exit 77, which
// ctest reports as skipped (SKIP_RETURN_CODE), never as passed.
#pragma once

#include <boost/test/unit_test.hpp>
#include <cstdio>

#include "textscale/cuda/cuda_backend.h"

inline bool gpu_test_init() {
  return true;
}

// `init` registers what the program adds to the test tree at run time (conformance suites).
inline int gpu_test_main(int argc, char* argv[], bool (*init)() = &gpu_test_init) {
  if (textscale::cuda::device_count() == 0) {
    std::printf("SKIP: no CUDA device is visible; this test needs a GPU\n");
    return 77;
  }
  return boost::unit_test::unit_test_main(init, argc, argv);
}
