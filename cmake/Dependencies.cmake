# Every external dependency is found here, once, and exposed as an imported target.
# A missing required dependency stops the configure step with the Debian package to install.

find_package(Threads REQUIRED)

macro(textscale_require found what package)
  if(NOT ${found})
    message(FATAL_ERROR "textscale needs ${what}: install it with `apt-get install ${package}` "
                        "(or run .ci/install-deps), then configure again.")
  endif()
endmacro()

# MPI (Open MPI): launch, bootstrap and CPU all-reduce.
find_package(MPI COMPONENTS CXX)
textscale_require(MPI_CXX_FOUND "MPI (Open MPI)" "libopenmpi-dev openmpi-bin")

# HDF5, serial C library. Each rank opens the file read-only and reads its own
# contiguous hyperslab of rows (datasets are chunked by rows), so MPI-IO is not
# needed for reading shards, and the serial library links statically into the
# GPU validation binary.
set(HDF5_PREFER_PARALLEL FALSE)
find_package(HDF5 COMPONENTS C)
textscale_require(HDF5_FOUND "HDF5 (C library)" "libhdf5-dev")
if(HDF5_IS_PARALLEL)
  message(STATUS "HDF5 found is the parallel build; textscale uses it in serial mode")
endif()
add_library(textscale::hdf5 INTERFACE IMPORTED)
target_include_directories(textscale::hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_link_libraries(textscale::hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(textscale::hdf5 INTERFACE ${HDF5_C_DEFINITIONS})

find_package(Boost 1.74 COMPONENTS program_options unit_test_framework)
textscale_require(Boost_FOUND "Boost.ProgramOptions and Boost.Test"
                  "libboost-program-options-dev libboost-test-dev")

find_package(dnnl CONFIG)
textscale_require(dnnl_FOUND "oneDNN" "libdnnl-dev")

find_package(ZLIB)
textscale_require(ZLIB_FOUND "zlib" "zlib1g-dev")
find_package(nlohmann_json 3 CONFIG)
textscale_require(nlohmann_json_FOUND "nlohmann/json" "nlohmann-json3-dev")
find_package(OpenSSL)
textscale_require(OPENSSL_FOUND "OpenSSL (libcrypto, for SHA-256)" "libssl-dev")

# cpp-httplib, the HTTP server of `textscale serve`: Debian's compiled library, through pkg-config.
find_package(PkgConfig)
textscale_require(PKG_CONFIG_FOUND "pkg-config (to find cpp-httplib)" "pkg-config")
pkg_check_modules(CPP_HTTPLIB IMPORTED_TARGET cpp-httplib)
textscale_require(CPP_HTTPLIB_FOUND "cpp-httplib (the HTTP server of textscale serve)" "libcpp-httplib-dev")

# CUDA toolkit + cuDNN + NCCL, by default from /usr/local/cuda.
set(TEXTSCALE_WITH_CUDA OFF)
if(NOT TEXTSCALE_CUDA STREQUAL "OFF")
  if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS ${CUDAToolkit_ROOT}/bin/nvcc)
    set(CMAKE_CUDA_COMPILER ${CUDAToolkit_ROOT}/bin/nvcc)
  endif()
  find_package(CUDAToolkit)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_ROOT}/include)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_ROOT}/lib64)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_ROOT}/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_ROOT}/lib64)
  if(CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(TEXTSCALE_WITH_CUDA ON)
  elseif(TEXTSCALE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TEXTSCALE_CUDA=ON but the CUDA toolkit, cuDNN or NCCL was not found "
      "(toolkit: ${CUDAToolkit_FOUND}, cudnn: ${CUDNN_LIBRARY}, nccl: ${NCCL_LIBRARY}). "
      "Set CUDAToolkit_ROOT, or configure with -DTEXTSCALE_CUDA=OFF.")
  endif()
endif()
if(TEXTSCALE_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)   # H100 / H200
  endif()
  enable_language(CUDA)
  # The engine's headers are C++20, which nvcc 12+ compiles, but CMake 3.25 (Debian 12) knows no
  # CUDA20 dialect for nvcc: ask for CUDA17 and make its flag C++20.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA17_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA17_EXTENSION_COMPILE_OPTION "-std=c++20")
  add_library(textscale::cudnn INTERFACE IMPORTED)
  target_include_directories(textscale::cudnn INTERFACE ${CUDNN_INCLUDE_DIR})
  target_link_libraries(textscale::cudnn INTERFACE ${CUDNN_LIBRARY})
  add_library(textscale::nccl INTERFACE IMPORTED)
  target_include_directories(textscale::nccl INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(textscale::nccl INTERFACE ${NCCL_LIBRARY})
  message(STATUS "CUDA backend: ON (toolkit ${CUDAToolkit_VERSION}, ${CUDNN_LIBRARY}, ${NCCL_LIBRARY}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "CUDA backend: OFF")
endif()
