// Writes whole, page-aligned buffers at given offsets of one file on background threads, with
// O_DIRECT where the file system allows it, so that encoding goes on while the disk works.
// Buffers come from a small pool per caller-chosen stream (one per dataset), which bounds the
// memory in flight; a stream's buffers all have the same size.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace textscale::preprocess {

class ChunkWriter {
 public:
  // Opens `path` (which must exist) for writing. Throws IoError.
  ChunkWriter(std::string path, bool direct);
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;
  // Stops the thread (dropping what is still queued) and closes the file.
  ~ChunkWriter();

  // A page-aligned buffer of `bytes` (a multiple of 4096, the same for every call with this
  // `stream`) to fill; waits while all of the stream's buffers are in flight. Rethrows a failed
  // write.
  unsigned char* acquire(int stream, std::size_t bytes);
  // Queues a buffer from acquire(stream, bytes) to be written at `offset` (a multiple of 4096);
  // the buffer returns to the stream's pool once written. With `checksum`, the buffer's
  // Fletcher-32 (as HDF5's filter computes it) is stored there before the write, on the writing
  // thread; read it after finish().
  void submit(int stream, unsigned char* buffer, std::size_t bytes, std::uint64_t offset,
              std::uint32_t* checksum = nullptr);
  // Waits until everything queued is written; rethrows the first failed write (IoError naming
  // the file and the system's message).
  void finish();
  // Whether writes bypass the page cache.
  [[nodiscard]] bool direct();

 private:
  struct Job {
    int stream;
    unsigned char* buffer;
    std::size_t bytes;
    std::uint64_t offset;
    std::uint32_t* checksum;
  };
  void run();
  void write(const Job& job);
  void rethrow_locked();

  static constexpr int kBuffersPerStream = 8;
  // Writes in flight at once: one synchronous writer kept the measured disk at half its speed.
  static constexpr int kThreads = 4;
  std::string path_;
  std::atomic<int> fd_{-1};
  int retired_fd_ = -1;  // the O_DIRECT descriptor after a fallback
  bool direct_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> jobs_;
  std::map<int, std::vector<unsigned char*>> free_;  // by stream
  std::map<int, int> allocated_;
  std::vector<unsigned char*> all_;
  int busy_ = 0;  // jobs being written
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace textscale::preprocess
