// Versions of the CUDA libraries linked into this build, and the devices visible now.
// Only compiled when textscale is built with CUDA; no CUDA header leaks through this one.
#pragma once

#include <string>

namespace textscale::cuda {

// "cuda runtime 13.0, cudnn 9.x.y, nccl 2.x.y, N GPU(s)" — never throws; a machine without a GPU
// or driver reports "no GPU (reason)".
[[nodiscard]] std::string library_versions();

}  // namespace textscale::cuda
