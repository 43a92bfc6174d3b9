#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (unless --no-build), runs ctest.
# Real-data tests read ${TEXTSCALE_DATA:-../shared/data} and are reported as skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
if [ "${1:-}" != "--no-build" ]; then
  bash .ci/install-deps.sh
  BUILD_DIR=$build_dir bash .ci/build.sh
fi
"$build_dir/bin/textscale" --version  # the CPU and the instruction set oneDNN's kernels use
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 900
