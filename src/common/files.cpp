#include "textscale/common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include "textscale/common/error.h"

namespace textscale {

std::string temporary_path(const std::string& path) {
  const std::filesystem::path p(path);
  return (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
}

void sync_file(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw IoError(errno_message("cannot sync '" + path + "'", error));
  }
  ::close(fd);
}

void commit_file(const std::string& temporary, const std::string& path) {
  sync_file(temporary);
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    throw IoError(errno_message("cannot rename '" + temporary + "' to '" + path + "'", errno));
  std::string folder = std::filesystem::path(path).parent_path().string();
  sync_file(folder.empty() ? "." : folder, true);
}

namespace {
std::string format_utc_now(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, format, &utc);
  return buffer;
}
}  // namespace

std::string utc_now_iso8601() {
  return format_utc_now("%Y-%m-%dT%H:%M:%SZ");
}

std::string utc_now_compact() {
  return format_utc_now("%Y%m%d-%H%M%S");
}

}  // namespace textscale
