#include "textscale/preprocess/token_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "textscale/common/error.h"

namespace textscale::preprocess {

namespace {
constexpr std::size_t kPage = 4096;
constexpr std::size_t kHeader = 16;  // worker, rows, entries, unused

std::size_t padded(std::size_t bytes) {
  return (bytes + kPage - 1) / kPage * kPage;
}
}  // namespace

TokenSpool::TokenSpool(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
  direct_ = fd_ >= 0;
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) throw IoError(errno_message("cannot create temporary file '" + path_ + "'", errno));
}

TokenSpool::~TokenSpool() {
  if (fd_ >= 0) ::close(fd_);
  std::remove(path_.c_str());
}

void TokenSpool::drop_direct_io() {
  // The file system accepted O_DIRECT at open but refuses it for I/O: use the page cache.
  ::close(fd_);
  direct_ = false;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd_ < 0) throw IoError(errno_message("cannot reopen temporary file '" + path_ + "'", errno));
}

void TokenSpool::reserve(Buffer& buffer, std::size_t bytes) {
  if (bytes <= buffer.capacity) return;
  buffer.capacity = padded(bytes * 2);
  buffer.data = std::unique_ptr<unsigned char, void (*)(void*)>(
      static_cast<unsigned char*>(std::aligned_alloc(kPage, buffer.capacity)), std::free);
  if (!buffer.data) throw std::bad_alloc();
}

void TokenSpool::append(const Segment& segment) {
  const std::size_t rows = segment.rows.size() * 4, entries = segment.entries.size() * 4;
  const std::size_t size = padded(kHeader + rows + entries);
  reserve(buffer_, size);
  unsigned char* p = buffer_.data.get();
  const std::uint32_t header[4] = {segment.worker, static_cast<std::uint32_t>(segment.rows.size()),
                                   static_cast<std::uint32_t>(segment.entries.size()), 0};
  std::memcpy(p, header, kHeader);
  if (rows) std::memcpy(p + kHeader, segment.rows.data(), rows);
  if (entries) std::memcpy(p + kHeader + rows, segment.entries.data(), entries);
  std::memset(p + kHeader + rows + entries, 0, size - kHeader - rows - entries);
  for (std::size_t done = 0; done < size;) {
    const ssize_t wrote = ::pwrite(fd_, p + done, size - done, static_cast<off_t>(end_ + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && errno == EINVAL && direct_) {
      drop_direct_io();
      continue;
    }
    if (wrote <= 0)
      throw IoError(errno_message("cannot write temporary file '" + path_ + "'", wrote < 0 ? errno : ENOSPC));
    done += static_cast<std::size_t>(wrote);
  }
  offsets_.push_back(end_);
  sizes_.push_back(size);
  end_ += size;
}

void TokenSpool::read(std::size_t index, Segment& segment, Buffer& buffer) const {
  if (index >= offsets_.size()) throw InputError("the input changed between passes (more blocks than counted)");
  const std::size_t size = sizes_[index];
  reserve(buffer, size);
  unsigned char* p = buffer.data.get();
  for (std::size_t done = 0; done < size;) {
    const ssize_t got = ::pread(fd_, p + done, size - done, static_cast<off_t>(offsets_[index] + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw IoError(errno_message("cannot read temporary file '" + path_ + "'", got < 0 ? errno : EIO));
    done += static_cast<std::size_t>(got);
  }
  std::uint32_t header[4];
  std::memcpy(header, p, kHeader);
  segment.worker = header[0];
  segment.rows.resize(header[1]);
  segment.entries.resize(header[2]);
  if (header[1]) std::memcpy(segment.rows.data(), p + kHeader, header[1] * 4u);
  if (header[2]) std::memcpy(segment.entries.data(), p + kHeader + header[1] * 4u, header[2] * 4u);
}

}  // namespace textscale::preprocess
