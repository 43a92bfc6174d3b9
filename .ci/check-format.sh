#!/usr/bin/env bash
# Fails when a C++ file differs from .clang-format's style (fix with: clang-format -i FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cpp' '*.cu' 2>/dev/null || find include src preprocess tests -name '*.h' -o -name '*.cpp' -o -name '*.cu')
clang-format --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files follow .clang-format"
