#!/usr/bin/env bash
# Installs the Debian 12 packages textscale builds and tests with. Idempotent: does nothing
# (and needs no network) when everything is present. Run as root, or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake git pkg-config clang-format curl time
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-program-options-dev libboost-test-dev
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev
  zlib1g-dev libssl-dev
  nlohmann-json3-dev
  python3-h5py python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
