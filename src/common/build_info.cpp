#include "textscale/common/build_info.h"

#include <hdf5.h>
#include <mpi.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <sstream>

#include "textscale/build_config.h"
#ifdef TEXTSCALE_WITH_CUDA
#include "textscale/cuda/device_info.h"
#endif

namespace textscale {

BuildInfo build_info() {
  BuildInfo info;
  info.version = TEXTSCALE_VERSION;
  info.git_revision = TEXTSCALE_GIT_REVISION;
  info.build_type = TEXTSCALE_BUILD_TYPE;
  std::ostringstream libraries;
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  libraries << "hdf5 " << major << "." << minor << "." << release;
  const dnnl_version_t* dnnl = dnnl_version();
  libraries << ", onednn " << dnnl->major << "." << dnnl->minor << "." << dnnl->patch;
  libraries << ", mpi " << MPI_VERSION << "." << MPI_SUBVERSION;
#ifdef OMPI_MAJOR_VERSION
  libraries << " (open mpi " << OMPI_MAJOR_VERSION << "." << OMPI_MINOR_VERSION << "." << OMPI_RELEASE_VERSION << ")";
#endif
#ifdef TEXTSCALE_WITH_CUDA
  info.cuda = true;
  libraries << ", " << cuda::library_versions();
#endif
  info.libraries = libraries.str();
  return info;
}

std::string device_summary() {
#ifdef TEXTSCALE_WITH_CUDA
  return cuda::device_summary();
#else
  return "CPU only build";
#endif
}

std::string version_line() {
  const BuildInfo info = build_info();
  std::ostringstream out;
  out << "textscale " << info.version << " (rev " << info.git_revision << ", " << info.build_type << ", cuda "
      << (info.cuda ? "on" : "off") << ")";
  return out.str();
}

}  // namespace textscale
