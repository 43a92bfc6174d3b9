#include <string>

#include "check.h"

namespace textscale::cuda::detail {

namespace {
[[noreturn]] void fail(const char* library, const std::string& message, const char* expression, const char* file,
                       int line) {
  throw CudaError(std::string(library) + " error: " + message + " in " + expression + " at " + file + ":" +
                  std::to_string(line));
}
}  // namespace

void throw_cuda(cudaError_t status, const char* expression, const char* file, int line) {
  fail("CUDA", std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")", expression, file, line);
}
void throw_cublas(cublasStatus_t status, const char* expression, const char* file, int line) {
  fail("cuBLAS", std::string(cublasGetStatusName(status)) + " (" + cublasGetStatusString(status) + ")", expression,
       file, line);
}
void throw_cudnn(cudnnStatus_t status, const char* expression, const char* file, int line) {
  char last[512] = "";
  cudnnGetLastErrorString(last, sizeof last);
  fail("cuDNN", std::string(cudnnGetErrorString(status)) + (last[0] ? std::string(": ") + last : ""), expression, file,
       line);
}
void throw_nccl(ncclResult_t status, const char* expression, const char* file, int line) {
  fail("NCCL", ncclGetErrorString(status), expression, file, line);
}

}  // namespace textscale::cuda::detail
