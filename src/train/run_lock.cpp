#include "textscale/train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/log.h"

namespace textscale::train {

namespace {

std::string this_slurm_job() {
  const char* id = std::getenv("SLURM_JOB_ID");
  return id ? id : "";
}

// What a lock file says about its holder; `known` false when it says nothing readable (its
// holder has not written it yet, or was killed before it did).
struct Holder {
  std::string text, host, slurm_job, started;
  long pid = 0;
  bool known = false;
};

Holder read_holder(const std::string& path) {
  Holder h;
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  h.text = text.str();
  try {
    const auto record = nlohmann::json::parse(h.text);
    h.host = record.at("host").get<std::string>();
    h.pid = record.at("pid").get<long>();
    h.slurm_job = record.value("slurm_job_id", "");
    h.started = record.value("started", "");
    h.known = h.pid > 0;
  } catch (const std::exception&) {
    h.known = false;
  }
  return h;
}

std::string describe(const Holder& h) {
  if (!h.known) return "another run (its lock file does not name it yet)";
  std::string text = "process " + std::to_string(h.pid) + " on host " + h.host;
  if (!h.slurm_job.empty()) text += " (Slurm job " + h.slurm_job + ")";
  if (!h.started.empty()) text += ", started " + h.started;
  return text;
}

// Whether a holder that still has its lock is provably gone: a process of this host that no
// longer runs, or an earlier run of this Slurm job on another host (Slurm runs a job once at a
// time: a requeued job retakes the lock its first run left on a file system that kept it).
bool provably_gone(const Holder& h) {
  if (!h.known) return false;
  const std::string host = host_name(), job = this_slurm_job();
  if (h.host == host) return h.pid != ::getpid() && ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH;
  return !job.empty() && h.slurm_job == job;
}

[[noreturn]] void refuse(const std::string& directory, const Holder& h, bool flocked) {
  throw InputError(
      "run directory '" + directory + "' is in use by " + describe(h) +
      ": two runs would mix their files; wait for that run to end, or choose another --run-dir" +
      (flocked ? std::string()
               : " (this file system does not honour flock(): if that run is gone, delete " + directory + "/.lock)"));
}

bool unsupported(int error) {
  return error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS || error == EINVAL;
}

}  // namespace

RunLock::RunLock(const std::string& directory, bool use_flock)
    : directory_(directory), path_(directory + "/.lock"), use_flock_(use_flock) {
  for (int attempt = 0; attempt < 8; ++attempt)
    if (use_flock_ ? try_flock() : try_exclusive()) return;
  throw IoError("cannot take the lock '" + path_ + "': it keeps changing");
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // before the lock goes: a run that opened the file meanwhile retries
  ::close(fd_);
}

bool RunLock::try_flock() {
  bool created = true;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0 && errno == EEXIST) {
    created = false;
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0 && errno == ENOENT) return false;  // its holder removed it meanwhile
  }
  if (fd_ < 0) throw IoError(errno_message("cannot create the lock file '" + path_ + "'", errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    // The file may have been removed by the holder between our open and our flock.
    struct stat held {
    }, named{};
    if (::fstat(fd_, &held) != 0 || ::stat(path_.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    flocked_ = true;
    write_holder();
    return true;
  }
  const int error = errno;
  if (unsupported(error)) {
    use_flock_ = false;
    if (created) {  // an exclusive creation: ours
      write_holder();
      return true;
    }
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  const Holder holder = read_holder(path_);
  if ((error == EWOULDBLOCK || error == EAGAIN) && provably_gone(holder)) {
    TS_LOG(warn, "run directory " << directory_ << ": taking over the lock of " << describe(holder)
                                  << ", which no longer runs");
    write_holder();  // a run after us finds the flock held and this process named
    return true;
  }
  ::close(fd_);
  fd_ = -1;
  if (error == EWOULDBLOCK || error == EAGAIN) refuse(directory_, holder, true);
  throw IoError(errno_message("cannot lock '" + path_ + "'", error));
}

bool RunLock::try_exclusive() {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ >= 0) {
    write_holder();
    return true;
  }
  if (errno != EEXIST) throw IoError(errno_message("cannot create the lock file '" + path_ + "'", errno));
  const Holder holder = read_holder(path_);
  if (!provably_gone(holder)) refuse(directory_, holder, false);
  // Removed unless another run took it over since we read it.
  if (read_holder(path_).text == holder.text) ::unlink(path_.c_str());
  TS_LOG(warn, "run directory " << directory_ << ": removed the stale lock of " << describe(holder)
                                << ", which no longer runs");
  return false;
}

void RunLock::write_holder() {
  nlohmann::json record{{"host", host_name()}, {"pid", static_cast<long>(::getpid())}, {"started", utc_now_iso8601()}};
  if (const std::string job = this_slurm_job(); !job.empty()) record["slurm_job_id"] = job;
  const std::string text = record.dump() + "\n";
  // Synced: other hosts read it from a network file system.
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd_) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw IoError(errno_message("cannot write the lock file '" + path_ + "'", error));
  }
}

}  // namespace textscale::train
