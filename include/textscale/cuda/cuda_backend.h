// The CUDA backend (cuDNN, cuBLAS and kernels of its own) and the GPUs it can run on.
//
// Only compiled when textscale is built with CUDA (TEXTSCALE_WITH_CUDA); no CUDA header leaks
// through this one, so the trainer and the tests include it like any other.
#pragma once

#include <memory>
#include <string>

#include "textscale/engine/backend.h"
#include "textscale/engine/backend_options.h"
#include "textscale/engine/precision.h"

namespace textscale::cuda {

// How fp32 tensors are multiplied (precision.h). On the GPU, bf16 covers the dense layers' GEMMs
// and the cuDNN convolutions (bf16 operands and results, fp32 sums); the one-hot input layer's
// forward is a gather of fp32 weights, with nothing to round.
using engine::parse_precision;
using engine::Precision;
using engine::to_string;

// How convolution algorithms are chosen, once per shape and batch size (--cudnn-search):
//  - heuristic: cuDNN's heuristics; the same choice in every process, so a resumed run repeats
//    an uninterrupted one bitwise;
//  - measure: cuDNN times the candidates and the fastest is taken; faster when the heuristics
//    misjudge, but two processes may choose differently (and round differently).
using engine::AlgorithmSearch;

struct CudaOptions {
  int device = 0;  // CUDA device ordinal (the local rank under a launcher)
  Precision precision = Precision::tf32;
  AlgorithmSearch algorithm_search = AlgorithmSearch::heuristic;
  // With Precision::bf16: the cuDNN convolutions in bf16 too (false: TF32; --bf16-conv off).
  bool bf16_convolutions = true;
};

// Number of visible GPUs; 0 without a GPU or driver. Never throws.
[[nodiscard]] int device_count();

// A backend on one GPU with one stream of its own. Throws CudaError when the device cannot be used.
[[nodiscard]] std::unique_ptr<engine::Backend<float>> make_cuda_backend(const CudaOptions& options);

// The CUDA stream (a cudaStream_t) of a backend made by make_cuda_backend, for the NCCL
// communicator to order its collectives with the backend's work; null for other backends.
[[nodiscard]] void* backend_stream(engine::Backend<float>& backend);

}  // namespace textscale::cuda
