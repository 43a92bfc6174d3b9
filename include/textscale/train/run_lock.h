// The lock that keeps a second run out of a run directory while one uses it.
//
// `<dir>/.lock` holds the holder's host, PID, Slurm job id (SLURM_JOB_ID, when set) and start
// time, for the message that refuses a second run. Where the file system honours flock(), the
// lock is an exclusive flock() on that file, released by the kernel when the holder exits however
// it exits. Where flock() fails as unsupported (ENOLCK, EOPNOTSUPP, ENOSYS: NFS without lock
// support, Lustre mounted without flock), the lock is the file's exclusive creation instead: a
// file left by a killed holder is taken over only when it is provably stale (its host is this
// host and its process no longer runs, or it names this process's Slurm job, which Slurm runs
// once at a time: a requeued job retakes its own lock); otherwise the run is refused.
#pragma once

#include <string>

namespace textscale::train {

class RunLock {
 public:
  // Takes the lock of `directory` (which exists). Throws InputError naming the holder when
  // another run holds it, IoError when the lock file cannot be created. `use_flock` false takes
  // the exclusive-creation lock even where flock() works (for the tests).
  explicit RunLock(const std::string& directory, bool use_flock = true);
  // Removes the lock file and releases the lock.
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // Whether the lock is a flock() (false: the exclusive-creation lock).
  [[nodiscard]] bool flocked() const { return flocked_; }

 private:
  // One attempt each; false: try again (the file changed meanwhile, or flock() proved unsupported).
  bool try_flock();
  bool try_exclusive();
  void write_holder();

  std::string directory_, path_;
  int fd_ = -1;
  bool use_flock_ = true, flocked_ = false;
};

}  // namespace textscale::train
