// The CUDA backend (cuDNN, cuBLAS and kernels of its own) and the GPUs it can run on.
//
// Only compiled when textscale is built with CUDA (TEXTSCALE_WITH_CUDA); no CUDA header leaks
// through this one, so the trainer and the tests include it like any other.
#pragma once

#include <memory>
#include <string>

#include "textscale/engine/backend.h"

namespace textscale::cuda {

// How fp32 tensors are multiplied:
//  - fp32: full fp32 arithmetic (no tensor-core shortcuts), the reference for the others;
//  - tf32: fp32 storage, TF32 tensor-core products (10-bit mantissa inputs, fp32 accumulation);
//  - bf16: fp32 storage and master weights, bf16 tensor-core products for the GEMMs (fp32
//    accumulation) and TF32 for the convolutions; every reduction (batch-norm statistics, loss,
//    gradient norms, optimizer steps) in fp32 or fp64.
enum class Precision { fp32, tf32, bf16 };
[[nodiscard]] Precision parse_precision(const std::string& text);  // throws InputError
[[nodiscard]] std::string to_string(Precision precision);

// How convolution algorithms are chosen, once per shape and batch size:
//  - heuristic: cuDNN's heuristics; the same choice in every process, so a resumed run repeats
//    an uninterrupted one bitwise;
//  - measure: cuDNN times the candidates and the fastest is taken; faster when the heuristics
//    misjudge, but two processes may choose differently (and round differently).
// The environment variable TEXTSCALE_CUDNN_SEARCH (heuristic | measure) overrides the default.
enum class AlgorithmSearch { heuristic, measure };

struct CudaOptions {
  int device = 0;  // CUDA device ordinal (the local rank under a launcher)
  Precision precision = Precision::tf32;
  AlgorithmSearch algorithm_search = AlgorithmSearch::heuristic;
};

// Number of visible GPUs; 0 without a GPU or driver. Never throws.
[[nodiscard]] int device_count();

// A backend on one GPU with one stream of its own. Throws CudaError when the device cannot be used.
[[nodiscard]] std::unique_ptr<engine::Backend<float>> make_cuda_backend(const CudaOptions& options);

// The CUDA stream (a cudaStream_t) of a backend made by make_cuda_backend, for the NCCL
// communicator to order its collectives with the backend's work; null for other backends.
[[nodiscard]] void* backend_stream(engine::Backend<float>& backend);

}  // namespace textscale::cuda
