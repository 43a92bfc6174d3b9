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

namespace {
void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw IoError(errno_message("cannot sync '" + path + "'", error));
  }
  ::close(fd);
}
}  // namespace

void commit_file(const std::string& temporary, const std::string& path) {
  sync_path(temporary, O_RDONLY);
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    throw IoError(errno_message("cannot rename '" + temporary + "' to '" + path + "'", errno));
  std::string folder = std::filesystem::path(path).parent_path().string();
  sync_path(folder.empty() ? "." : folder, O_RDONLY | O_DIRECTORY);
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
