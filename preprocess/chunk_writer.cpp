#include "textscale/preprocess/chunk_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include "textscale/common/checksum.h"
#include "textscale/common/error.h"

namespace textscale::preprocess {

namespace {
constexpr std::size_t kPage = 4096;
}

ChunkWriter::ChunkWriter(std::string path, bool direct) : path_(std::move(path)) {
  if (direct) fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT);
  direct_ = fd_ >= 0;
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(errno_message("cannot open '" + path_ + "' for writing", errno));
  for (int t = 0; t < kThreads; ++t) threads_.emplace_back([this] { run(); });
}

ChunkWriter::~ChunkWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    changed_.notify_all();
  }
  for (std::thread& thread : threads_) thread.join();
  for (unsigned char* buffer : all_) std::free(buffer);
  ::close(fd_);
  if (retired_fd_ >= 0) ::close(retired_fd_);
}

void ChunkWriter::rethrow_locked() {
  if (error_) std::rethrow_exception(error_);
}

unsigned char* ChunkWriter::acquire(int stream, std::size_t bytes) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return error_ || !free_[stream].empty() || allocated_[stream] < kBuffersPerStream; });
  rethrow_locked();
  std::vector<unsigned char*>& pool = free_[stream];
  if (!pool.empty()) {
    unsigned char* buffer = pool.back();
    pool.pop_back();
    return buffer;
  }
  auto* buffer = static_cast<unsigned char*>(std::aligned_alloc(kPage, bytes));
  if (!buffer) throw std::bad_alloc();
  ++allocated_[stream];
  all_.push_back(buffer);
  return buffer;
}

void ChunkWriter::submit(int stream, unsigned char* buffer, std::size_t bytes, std::uint64_t offset,
                         std::uint32_t* checksum) {
  std::lock_guard<std::mutex> lock(mutex_);
  rethrow_locked();
  jobs_.push_back(Job{stream, buffer, bytes, offset, checksum});
  changed_.notify_all();
}

void ChunkWriter::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return error_ || (jobs_.empty() && busy_ == 0); });
  rethrow_locked();
}

bool ChunkWriter::direct() {
  std::lock_guard<std::mutex> lock(mutex_);
  return direct_;
}

void ChunkWriter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    const Job job = jobs_.front();
    jobs_.pop_front();
    ++busy_;
    lock.unlock();
    std::exception_ptr failure;
    try {
      write(job);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    --busy_;
    free_[job.stream].push_back(job.buffer);
    if (failure && !error_) error_ = failure;
    changed_.notify_all();
  }
}

void ChunkWriter::write(const Job& job) {
  if (job.checksum) *job.checksum = fletcher32(job.buffer, job.bytes);
  for (std::size_t done = 0; done < job.bytes;) {
    const int fd = fd_;
    const ssize_t wrote = ::pwrite(fd, job.buffer + done, job.bytes - done, static_cast<off_t>(job.offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && errno == EINVAL) {
      // The file system accepted O_DIRECT at open but refuses it for writes: use the page cache
      // (a second descriptor; the first stays open for writes other threads have in progress).
      std::lock_guard<std::mutex> lock(mutex_);
      if (fd != fd_) continue;  // another thread has switched already
      if (!direct_) throw IoError(errno_message("cannot write '" + path_ + "'", EINVAL));
      const int buffered = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
      if (buffered < 0) throw IoError(errno_message("cannot open '" + path_ + "' for writing", errno));
      retired_fd_ = fd_;
      fd_ = buffered;
      direct_ = false;
      continue;
    }
    if (wrote <= 0) throw IoError(errno_message("cannot write '" + path_ + "'", wrote < 0 ? errno : ENOSPC));
    done += static_cast<std::size_t>(wrote);
  }
}

}  // namespace textscale::preprocess
