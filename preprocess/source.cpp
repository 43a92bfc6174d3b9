#include "textscale/preprocess/source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "textscale/common/error.h"
#include "textscale/common/interrupt.h"

namespace textscale::preprocess {

namespace {
constexpr std::size_t kRawChunk = 1u << 20;
}

ByteSource::ByteSource(const std::string& path, bool hash) : path_(path), hash_(hash) {
  if (path == "-") {
    fd_ = STDIN_FILENO;
    path_ = "<stdin>";
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError(errno_message("cannot open input '" + path + "'", errno));
    owns_fd_ = true;
    struct stat info {};
    if (::fstat(fd_, &info) == 0 && S_ISDIR(info.st_mode)) {
      ::close(fd_);
      fd_ = -1;
      throw IoError("input '" + path + "' is a directory (only --format imdb reads folders)");
    }
  }
  sniff_gzip();
}

ByteSource::ByteSource(const std::string& name, ReadFunction read, bool hash)
    : path_(name), read_function_(std::move(read)), hash_(hash) {
  sniff_gzip();
}

void ByteSource::sniff_gzip() {
  if (hash_) sha_ = std::make_unique<Sha256>();
  // Sniff the gzip magic number (1f 8b) without losing the bytes for plain input.
  pending_.resize(2);
  std::size_t have = 0;
  while (have < 2) {
    const std::size_t got = read_stored(pending_.data() + have, 2 - have);
    if (got == 0) break;
    have += got;
  }
  pending_.resize(have);
  gzip_ =
      have == 2 && static_cast<unsigned char>(pending_[0]) == 0x1f && static_cast<unsigned char>(pending_[1]) == 0x8b;
  if (gzip_) {
    raw_.assign(pending_.begin(), pending_.end());
    pending_.clear();
    if (inflateInit2(&zstream_, 15 + 16) != Z_OK) throw Error("zlib: inflateInit2 failed");
    zstream_.next_in = raw_.data();
    zstream_.avail_in = static_cast<uInt>(raw_.size());
  }
}

ByteSource::~ByteSource() {
  if (gzip_) inflateEnd(&zstream_);
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

std::size_t ByteSource::read_stored(char* destination, std::size_t capacity) {
  if (eof_) return 0;
  for (;;) {
    const ssize_t got = read_function_ ? static_cast<ssize_t>(read_function_(destination, capacity))
                                       : ::read(fd_, destination, capacity);
    if (got < 0) {
      if (errno == EINTR) {
        throw_if_interrupted();
        continue;
      }
      throw IoError(errno_message("cannot read input '" + path_ + "'", errno));
    }
    if (got == 0) {
      eof_ = true;
      if (sha_) digest_hex_ = sha_->hex();
      return 0;
    }
    stored_bytes_ += static_cast<std::uint64_t>(got);
    if (sha_) sha_->update(destination, static_cast<std::size_t>(got));
    return static_cast<std::size_t>(got);
  }
}

bool ByteSource::refill() {
  // Keeps unread input, appends the next chunk of stored bytes.
  std::vector<unsigned char> next(zstream_.next_in, zstream_.next_in + zstream_.avail_in);
  const std::size_t keep = next.size();
  next.resize(keep + kRawChunk);
  const std::size_t got = read_stored(reinterpret_cast<char*>(next.data() + keep), kRawChunk);
  next.resize(keep + got);
  raw_.swap(next);
  zstream_.next_in = raw_.data();
  zstream_.avail_in = static_cast<uInt>(raw_.size());
  return got > 0;
}

std::size_t ByteSource::read(char* destination, std::size_t capacity) {
  if (!gzip_) {
    if (pending_offset_ < pending_.size()) {
      const std::size_t n = std::min(capacity, pending_.size() - pending_offset_);
      std::memcpy(destination, pending_.data() + pending_offset_, n);
      pending_offset_ += n;
      return n;
    }
    return read_stored(destination, capacity);
  }
  if (stream_end_) return 0;
  zstream_.next_out = reinterpret_cast<Bytef*>(destination);
  zstream_.avail_out = static_cast<uInt>(capacity);
  while (zstream_.avail_out == capacity) {
    if (zstream_.avail_in == 0 && !refill()) {
      throw IoError("input '" + path_ + "' is a truncated gzip stream (ended after " + std::to_string(stored_bytes_) +
                    " bytes)");
    }
    const int status = inflate(&zstream_, Z_NO_FLUSH);
    if (status == Z_STREAM_END) {
      // A .gz file may hold several members one after another (e.g. from `cat a.gz b.gz`).
      if (zstream_.avail_in == 0 && !refill()) {
        stream_end_ = true;
        break;
      }
      if (inflateReset(&zstream_) != Z_OK) throw Error("zlib: inflateReset failed");
      continue;
    }
    if (status != Z_OK && status != Z_BUF_ERROR) {
      throw IoError("input '" + path_ + "' is not a valid gzip stream: " +
                    (zstream_.msg ? zstream_.msg : "zlib error " + std::to_string(status)));
    }
  }
  return capacity - zstream_.avail_out;
}

std::string ByteSource::sha256_hex() const {
  return digest_hex_;
}

}  // namespace textscale::preprocess
