// What this binary is: version, git revision, build options and the versions of the libraries it
// was built and runs with. Recorded in every output file and run directory.
#pragma once

#include <string>

namespace textscale {

struct BuildInfo {
  std::string version;       // textscale's own version, e.g. "0.1.0"
  std::string git_revision;  // `git describe --always --dirty` at build time
  std::string build_type;    // CMake build type
  bool cuda = false;         // built with the CUDA backend
  std::string libraries;     // "hdf5 1.10.8, onednn 2.6.3, open mpi ..., cuda ..., cudnn ..., nccl ..."
};

[[nodiscard]] BuildInfo build_info();
// One line: "textscale 0.1.0 (rev abc123, Release, cuda on)".
[[nodiscard]] std::string version_line();
// The accelerators this process can see ("2 GPU(s)", "no GPU (...)", "CPU only build").
[[nodiscard]] std::string device_summary();

}  // namespace textscale
