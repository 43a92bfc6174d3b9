// cuBLAS, loaded when the CUDA backend first calls it.
//
// Linking libcublas makes every start of textscale about a second slower, for every command and
// on machines without a GPU: loading cuBLAS and cuBLASLt (relocating and initialising them) took
// 1.3 s for an empty program linked with them against 0.01 s without, on a 2-core AMD Zen 5
// (2026-12-08). The CUDA toolkit has no lazily loading form of cuBLAS, so these definitions of the
// functions the backend calls find the library's own on first use (dlopen) and forward to them;
// a missing library is then a clear error naming it.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <string>

#include "textscale/common/error.h"

namespace {

const std::string kLibrary = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);

void* library() {
  static void* const handle = [] {
    void* h = dlopen(kLibrary.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef TEXTSCALE_CUDA_LIBRARY_DIR
    if (!h) h = dlopen((std::string(TEXTSCALE_CUDA_LIBRARY_DIR) + "/" + kLibrary).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    return h;
  }();
  if (!handle)
    throw textscale::CudaError("cannot load cuBLAS (" + kLibrary + ", from the CUDA toolkit textscale was built with" +
                               "): " + (dlerror() ? dlerror() : "not found"));
  return handle;
}

// The library's `name`, of the type of our definition `Fn`.
template <typename Fn>
Fn* resolve(Fn*, const char* name) {
  void* symbol = dlsym(library(), name);
  if (!symbol) throw textscale::CudaError(kLibrary + " has no " + name);
  return reinterpret_cast<Fn*>(symbol);
}

}  // namespace

// Each resolves once; the declarations come from cublas_api.h, so a signature that differs from
// the header's does not compile.
extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  static auto* const real = resolve(&cublasCreate_v2, "cublasCreate_v2");
  return real(handle);
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  static auto* const real = resolve(&cublasDestroy_v2, "cublasDestroy_v2");
  return real(handle);
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  static auto* const real = resolve(&cublasSetStream_v2, "cublasSetStream_v2");
  return real(handle, stream);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  // The header also declares an inline overload taking a cudaDataType compute type: name ours.
  using GemmEx = cublasStatus_t(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                                cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  static auto* const real = resolve(static_cast<GemmEx*>(&cublasGemmEx), "cublasGemmEx");
  return real(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType,
              algo);
}

const char* cublasGetStatusName(cublasStatus_t status) {
  static auto* const real = resolve(&cublasGetStatusName, "cublasGetStatusName");
  return real(status);
}

const char* cublasGetStatusString(cublasStatus_t status) {
  static auto* const real = resolve(&cublasGetStatusString, "cublasGetStatusString");
  return real(status);
}

}  // extern "C"
