#!/usr/bin/env bash
# Configures and builds textscale into ${BUILD_DIR:-build}. Extra arguments go to cmake.
# The CUDA parts are built whenever the toolkit is in /usr/local/cuda (or CUDAToolkit_ROOT).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cuda=AUTO
if [ -x "${CUDAToolkit_ROOT:-/usr/local/cuda}/bin/nvcc" ]; then
  cuda=ON
else
  echo "build: no CUDA toolkit in ${CUDAToolkit_ROOT:-/usr/local/cuda}: building without the CUDA backend" >&2
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTEXTSCALE_CUDA="$cuda" "$@"
cmake --build "$build_dir" -j "$(nproc)"
