// Checksums of stored bytes: SHA-256 (OpenSSL) for digests that identify or verify content, and
// Fletcher-32 as HDF5's Fletcher-32 filter computes it, for chunks written around HDF5.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace textscale {

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256();
  void update(const void* data, std::size_t size);
  [[nodiscard]] std::array<unsigned char, 32> digest();  // finishes the digest
  [[nodiscard]] std::string hex();                       // finishes the digest

 private:
  void* context_ = nullptr;
};

// Lower-case hexadecimal of a digest.
[[nodiscard]] std::string hex_string(const std::array<unsigned char, 32>& digest);

// SHA-256 (hex) of `size` bytes.
[[nodiscard]] std::string sha256_hex(const void* data, std::size_t size);

// The Fletcher-32 checksum HDF5's filter (H5Z_FILTER_FLETCHER32) appends to a chunk of `size`
// bytes, stored after the chunk as a little-endian uint32: big-endian 16-bit words summed modulo
// 65535, an odd last byte as the high half of a word.
[[nodiscard]] std::uint32_t fletcher32(const void* data, std::size_t size);

}  // namespace textscale
