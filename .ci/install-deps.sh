#!/usr/bin/env bash
# Installs the Debian 12 packages textscale builds and tests with, and playwright-core (npm) for
# the test of serve's page in Chromium, into ${TEXTSCALE_NODE_DIR:-~/.cache/textscale/node}.
# Idempotent: does nothing (and needs no network) when everything is present. Run as root, or
# with sudo available.
set -euo pipefail

packages=(
  build-essential cmake git pkg-config clang-format curl time
  clang-14 libfuzzer-14-dev
  iproute2
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-program-options-dev libboost-test-dev
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev
  zlib1g-dev libssl-dev
  nlohmann-json3-dev libcpp-httplib-dev
  python3-h5py python3-numpy
  nodejs chromium
)
# playwright-core, at the version tests/cli/package.json names, drives Chromium in
# tests/cli/test_serve_page.sh (it downloads no browser: the test uses Debian's /usr/bin/chromium).
node_dir=${TEXTSCALE_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/textscale/node}

install_playwright() {
  local installed playwright_version
  playwright_version=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' "$(dirname "$0")/../tests/cli/package.json")
  installed=$(node -p "require('$node_dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
  if [ "$installed" = "$playwright_version" ]; then
    echo "install-deps: playwright-core $installed present in $node_dir"
    return
  fi
  echo "install-deps: installing playwright-core $playwright_version into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-save --no-audit --no-fund --loglevel=error "playwright-core@$playwright_version"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless a Node.js that brings its own (NodeSource's) is installed.
command -v npm > /dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
install_playwright
