// The run directory's lock and the removal of stale temporary files, on a local file system:
// - flock(): a second lock on a held directory is refused naming the holder's PID; a lock file
//   left by a dead holder is taken; the file is gone once the holder releases it;
// - the exclusive-creation lock (what file systems without flock() get): a held lock is refused,
//   a lock file of a dead process of this host or of this Slurm job is stale and taken over, one
//   of a live process or of another host is not;
// - remove_stale_temporaries removes a dead process's files of the target only.
#define BOOST_TEST_MODULE run_lock
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/train/run_lock.h"

using namespace textscale;
namespace fs = std::filesystem;

namespace {

struct Folder {
  fs::path path = fs::temp_directory_path() / ("run-lock-test-" + std::to_string(::getpid()));
  Folder() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Folder() { fs::remove_all(path); }
};

std::string host() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// A PID that no longer runs: a child that has exited and been reaped.
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

void write_lock(const fs::path& folder, const std::string& holder_host, long pid, const std::string& job = "") {
  std::ofstream(folder / ".lock") << R"({"host": ")" << holder_host << R"(", "pid": )" << pid
                                  << (job.empty() ? "" : R"(, "slurm_job_id": ")" + job + "\"") << "}\n";
}

// The InputError message of taking the lock, or "" when it was taken.
std::string refusal(const fs::path& folder, bool use_flock) {
  try {
    train::RunLock lock(folder.string(), use_flock);
    return "";
  } catch (const InputError& error) {
    return error.what();
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(flock_lock) {
  Folder folder;
  {
    train::RunLock held(folder.path.string());
    BOOST_TEST(held.flocked());
    const std::string message = refusal(folder.path, true);
    BOOST_TEST(message.find("in use by process " + std::to_string(::getpid()) + " on host " + host()) !=
               std::string::npos);
  }
  BOOST_TEST(!fs::exists(folder.path / ".lock"));
  write_lock(folder.path, host(), dead_pid());
  BOOST_TEST(refusal(folder.path, true).empty());
}

BOOST_AUTO_TEST_CASE(exclusive_creation_lock) {
  Folder folder;
  {
    train::RunLock held(folder.path.string(), false);
    BOOST_TEST(!held.flocked());
    const std::string message = refusal(folder.path, false);
    BOOST_TEST(message.find("in use by process " + std::to_string(::getpid())) != std::string::npos);
    BOOST_TEST(message.find("delete") != std::string::npos);
  }
  BOOST_TEST(!fs::exists(folder.path / ".lock"));
  write_lock(folder.path, host(), dead_pid());  // a killed run of this host
  BOOST_TEST(refusal(folder.path, false).empty());
  write_lock(folder.path, host(), ::getppid());  // a live process
  BOOST_TEST(refusal(folder.path, false).find("in use by process " + std::to_string(::getppid())) != std::string::npos);
  write_lock(folder.path, "elsewhere", dead_pid());  // another host: cannot be proved dead
  BOOST_TEST(refusal(folder.path, false).find("on host elsewhere") != std::string::npos);
  write_lock(folder.path, "elsewhere", 12345, "777");  // this Slurm job, requeued
  ::setenv("SLURM_JOB_ID", "777", 1);
  BOOST_TEST(refusal(folder.path, false).empty());
  ::setenv("SLURM_JOB_ID", "778", 1);
  write_lock(folder.path, "elsewhere", 12345, "777");  // another job
  BOOST_TEST(refusal(folder.path, false).find("(Slurm job 777)") != std::string::npos);
  ::unsetenv("SLURM_JOB_ID");
}

BOOST_AUTO_TEST_CASE(stale_temporaries) {
  Folder folder;
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  const fs::path target = folder.path / "out.h5";
  for (const std::string& name : {".out.h5.tmp-" + host() + "-" + dead, "out.h5.tokens-" + host() + "-" + dead,
                                  "out.h5.tmp-" + host() + "-" + live, "out.h5.spool-elsewhere-" + dead,
                                  "other.h5.tmp-" + host() + "-" + dead, "out.h5.tmp-" + dead})
    std::ofstream(folder.path / name) << "x";
  const auto removed = remove_stale_temporaries(target.string());
  BOOST_TEST(removed.size() == 2u);
  BOOST_TEST(!fs::exists(folder.path / (".out.h5.tmp-" + host() + "-" + dead)));
  BOOST_TEST(!fs::exists(folder.path / ("out.h5.tokens-" + host() + "-" + dead)));
  BOOST_TEST(fs::exists(folder.path / ("out.h5.tmp-" + host() + "-" + live)));
  BOOST_TEST(fs::exists(folder.path / ("out.h5.spool-elsewhere-" + dead)));
  BOOST_TEST(fs::exists(folder.path / ("other.h5.tmp-" + host() + "-" + dead)));
  BOOST_TEST(fs::exists(folder.path / ("out.h5.tmp-" + dead)));
  BOOST_TEST(temporary_path((folder.path / "a.json").string()) ==
             (folder.path / (".a.json.tmp-" + host() + "-" + live)).string());
}
