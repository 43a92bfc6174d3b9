// cuBLAS is opened when the CUDA backend first calls it (src/cuda/cublas_loader.cpp), not when
// textscale starts: no GPU is needed to check either.
#define BOOST_TEST_MODULE cublas_loader
#include <cublas_v2.h>
#include <link.h>

#include <boost/test/unit_test.hpp>
#include <string>

namespace {

int count_cublas(dl_phdr_info* info, std::size_t, void* found) {
  if (std::string(info->dlpi_name).find("libcublas.so") != std::string::npos) ++*static_cast<int*>(found);
  return 0;
}

bool cublas_loaded() {
  int found = 0;
  dl_iterate_phdr(count_cublas, &found);
  return found > 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(cublas_is_loaded_on_first_use) {
  BOOST_TEST(!cublas_loaded(), "libcublas is loaded before the first cuBLAS call (linked, not opened on use)");
  BOOST_TEST(std::string(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED)) == "CUBLAS_STATUS_NOT_SUPPORTED");
  BOOST_TEST(cublas_loaded());
  BOOST_TEST(std::string(cublasGetStatusString(CUBLAS_STATUS_SUCCESS)).size() > 0);
}
