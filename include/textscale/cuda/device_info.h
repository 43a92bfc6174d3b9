// Versions of the CUDA libraries linked into this build, and the devices visible now.
// Only compiled when textscale is built with CUDA; no CUDA header leaks through this one.
#pragma once

#include <string>

namespace textscale::cuda {

// "cuda runtime 13.0, cudnn 9.x.y, nccl 2.x.y": the libraries this binary runs with. Touches no
// device.
[[nodiscard]] std::string library_versions();
// "N GPU(s)", or "no GPU (reason)" on a machine without a GPU or driver. Never throws.
[[nodiscard]] std::string device_summary();

}  // namespace textscale::cuda
