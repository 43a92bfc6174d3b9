// One check macro per CUDA library. Each keeps the failing expression, file:line and the
// library's own message, and throws CudaError (error.h), so that `main` reports it with the rank.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include "textscale/common/error.h"

namespace textscale::cuda::detail {

[[noreturn]] void throw_cuda(cudaError_t status, const char* expression, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t status, const char* expression, const char* file, int line);
[[noreturn]] void throw_cudnn(cudnnStatus_t status, const char* expression, const char* file, int line);
[[noreturn]] void throw_nccl(ncclResult_t status, const char* expression, const char* file, int line);

}  // namespace textscale::cuda::detail

#define TS_CHECK_CUDA(expression)                                                                                      \
  do {                                                                                                                 \
    const cudaError_t ts_status_ = (expression);                                                                       \
    if (ts_status_ != cudaSuccess) ::textscale::cuda::detail::throw_cuda(ts_status_, #expression, __FILE__, __LINE__); \
  } while (0)
#define TS_CHECK_CUBLAS(expression)                                                         \
  do {                                                                                      \
    const cublasStatus_t ts_status_ = (expression);                                         \
    if (ts_status_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::textscale::cuda::detail::throw_cublas(ts_status_, #expression, __FILE__, __LINE__); \
  } while (0)
#define TS_CHECK_CUDNN(expression)                                                         \
  do {                                                                                     \
    const cudnnStatus_t ts_status_ = (expression);                                         \
    if (ts_status_ != CUDNN_STATUS_SUCCESS)                                                \
      ::textscale::cuda::detail::throw_cudnn(ts_status_, #expression, __FILE__, __LINE__); \
  } while (0)
#define TS_CHECK_NCCL(expression)                                                         \
  do {                                                                                    \
    const ncclResult_t ts_status_ = (expression);                                         \
    if (ts_status_ != ncclSuccess && ts_status_ != ncclInProgress)                        \
      ::textscale::cuda::detail::throw_nccl(ts_status_, #expression, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch: a bad configuration shows up here, not at the next call.
#define TS_CHECK_LAUNCH() TS_CHECK_CUDA(cudaGetLastError())
