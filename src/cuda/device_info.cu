#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include <sstream>

#include "textscale/cuda/device_info.h"

namespace textscale::cuda {

std::string library_versions() {
  std::ostringstream out;
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  out << "cuda runtime " << runtime / 1000 << "." << (runtime % 1000) / 10;
  const size_t cudnn = cudnnGetVersion();
  out << ", cudnn " << cudnn / 10000 << "." << (cudnn % 10000) / 100 << "." << cudnn % 100;
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess)
    out << ", nccl " << nccl / 10000 << "." << (nccl % 10000) / 100 << "." << nccl % 100;
  return out.str();
}

std::string device_summary() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess) return std::string("no GPU (") + cudaGetErrorString(status) + ")";
  return std::to_string(devices) + " GPU(s)";
}

}  // namespace textscale::cuda
