// A byte stream from a file or standard input, gunzipped on the fly when it starts with the gzip
// magic bytes, and hashed (SHA-256 of the bytes as stored, i.e. before decompression).
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "textscale/common/checksum.h"

namespace textscale::preprocess {

using textscale::Sha256;

class ByteSource {
 public:
  // path "-" reads standard input. Throws IoError naming the path if it cannot be opened or is a
  // directory.
  explicit ByteSource(const std::string& path, bool hash = true);
  // Stored bytes come from `read` (which returns 0 at the end) instead of a file; `name` names the
  // source in messages.
  using ReadFunction = std::function<std::size_t(char* destination, std::size_t capacity)>;
  ByteSource(const std::string& name, ReadFunction read, bool hash);
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;
  ~ByteSource();

  // Reads up to `capacity` decompressed bytes; returns 0 at the end. Throws IoError (read error,
  // corrupt or truncated gzip stream) naming the path.
  std::size_t read(char* destination, std::size_t capacity);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::uint64_t stored_bytes() const { return stored_bytes_; }
  // Lower-case hex SHA-256 of the stored bytes; valid once read() has returned 0.
  [[nodiscard]] std::string sha256_hex() const;

 private:
  std::size_t read_stored(char* destination, std::size_t capacity);
  bool refill();

  void sniff_gzip();

  std::string path_;
  ReadFunction read_function_;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool hash_ = true;
  bool gzip_ = false;
  bool stream_end_ = false;
  bool eof_ = false;
  z_stream zstream_{};
  std::vector<unsigned char> raw_;  // stored bytes waiting to be inflated
  std::uint64_t stored_bytes_ = 0;
  std::unique_ptr<Sha256> sha_;
  std::string digest_hex_;
  std::vector<char> pending_;  // bytes read ahead while sniffing the magic number
  std::size_t pending_offset_ = 0;
};

}  // namespace textscale::preprocess
