// The backend factory: engine::BackendOptions -> the backend that computes with them.
#pragma once

#include <memory>

#include "textscale/engine/backend.h"
#include "textscale/engine/backend_options.h"

namespace textscale::train {

// True when `device` resolves to a GPU: cuda, or auto when this build has CUDA and the node has
// a GPU for each of its `local_size` ranks. Throws InputError for an impossible request (cuda
// without a GPU each, or in a build without CUDA).
[[nodiscard]] bool uses_gpu(engine::Device device, int local_size = 1);

// `options` with the device resolved (uses_gpu) and validated (engine::validate).
[[nodiscard]] engine::BackendOptions resolve(engine::BackendOptions options, int local_size = 1);

// The backend for `options` (resolved here if they are not): on cuda the CUDA backend on GPU
// `local_rank` (one GPU per rank) with its precision, cuDNN search and bf16 convolutions; on cpu
// the named CPU backend, oneDNN with its precision (tf32 computes in fp32) and Winograd settings,
// or the reference backend (fp32 only). A thread count > 0 becomes the process's OpenMP thread
// count whatever the device. Throws InputError for bf16 where it cannot run.
[[nodiscard]] std::unique_ptr<engine::Backend<float>> make_backend(const engine::BackendOptions& options,
                                                                   int local_rank = 0, int local_size = 1);

}  // namespace textscale::train
