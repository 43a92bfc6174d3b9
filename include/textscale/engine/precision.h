// How a backend multiplies fp32 tensors. Storage, master weights and every reduction (batch-norm
// statistics, loss, gradient norms, optimizer steps) stay fp32 or fp64 in every mode:
//  - fp32: full fp32 arithmetic, the reference for the others;
//  - tf32: TF32 tensor-core products (10-bit mantissa inputs, fp32 accumulation); GPUs only, a
//    CPU computes it in fp32;
//  - bf16: bf16 products with fp32 accumulation, in the convolutions and the dense layers. On
//    the GPU the convolutions' results are bf16 too (cuDNN, cuda_backend.cu); on the CPU every
//    result is fp32 (oneDNN's AVX512-BF16/AMX kernels, dnnl_backend.h).
#pragma once

#include <string>

namespace textscale::engine {

enum class Precision { fp32, tf32, bf16 };
[[nodiscard]] Precision parse_precision(const std::string& text);  // throws InputError
[[nodiscard]] std::string to_string(Precision precision);

}  // namespace textscale::engine
