#include "textscale/common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <string_view>

#include "textscale/common/error.h"
#include "textscale/common/log.h"

namespace textscale {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

namespace {

// Whether the tag "<host>-<pid>" names a process of this host that no longer runs.
bool dead_here(std::string_view tag, const std::string& host) {
  const auto dash = tag.rfind('-');
  if (dash == std::string_view::npos || tag.substr(0, dash) != host) return false;
  const std::string_view digits = tag.substr(dash + 1);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  const auto pid = static_cast<pid_t>(std::stol(std::string(digits)));
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;  // EPERM: it runs, as another user
}

}  // namespace

std::string process_tag() {
  return host_name() + "-" + std::to_string(::getpid());
}

std::string temporary_path(const std::string& path) {
  const std::filesystem::path p(path);
  return (p.parent_path() / ("." + p.filename().string() + ".tmp-" + process_tag())).string();
}

std::vector<std::string> remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string name = target.filename().string(), host = host_name();
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::vector<std::string> prefixes{"." + name + ".tmp-"};
  for (const char* kind : {".tmp-", ".spool-", ".stdin-", ".tokens-"}) prefixes.push_back(name + kind);
  std::vector<std::string> removed;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const std::string entry = it->path().filename().string();
    for (const std::string& prefix : prefixes) {
      if (!entry.starts_with(prefix) || !dead_here(std::string_view(entry).substr(prefix.size()), host)) continue;
      const std::string stale = (target.parent_path() / entry).string();
      std::error_code remove_error;
      if (fs::remove(it->path(), remove_error)) {
        TS_LOG(warn, "removed " << stale
                                << ": a temporary file of a process of this host that no longer runs "
                                   "(it was killed while writing)");
        removed.push_back(stale);
      }
      break;
    }
  }
  return removed;
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

void write_text_file(const std::string& path, const std::string& content, const std::string& shown_as) {
  const std::string& name = shown_as.empty() ? path : shown_as;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(errno_message("cannot create '" + name + "'", errno));
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(path.c_str());
      throw IoError(errno_message("cannot write '" + name + "'", error));
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(path.c_str());
    throw IoError(errno_message("cannot write '" + name + "'", error));
  }
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
