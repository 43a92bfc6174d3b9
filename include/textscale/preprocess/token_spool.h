// Word entries found by the counting pass, kept for the encoding pass so that it neither
// tokenises nor hashes the text a second time (the two were about 60% of the CPU time).
//
// Per block, in block order: which worker's WordIndex the entries belong to, one value per good
// row ((kept tokens << 1) | 1 for a validation row), and the first W entry numbers of each row.
// Segments are padded to 4 KiB and written with O_DIRECT where the file system allows it, so the
// spool costs neither page-cache copies nor memory: only an offset per block stays in memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace textscale::preprocess {

class TokenSpool {
 public:
  struct Segment {
    std::uint32_t worker = 0;
    std::vector<std::uint32_t> rows;     // (kept << 1) | is_validation, per good row
    std::vector<std::uint32_t> entries;  // the rows' entries, concatenated
  };

  // Creates `path` (removed again by the destructor). Throws IoError.
  explicit TokenSpool(std::string path);
  TokenSpool(const TokenSpool&) = delete;
  TokenSpool& operator=(const TokenSpool&) = delete;
  ~TokenSpool();

  // Appends the next block's segment.
  void append(const Segment& segment);
  // Page-aligned scratch memory for read(); one per thread.
  struct Buffer {
    std::unique_ptr<unsigned char, void (*)(void*)> data{nullptr, nullptr};
    std::size_t capacity = 0;
  };
  // Reads segment `index` (0-based, in append order) into `segment`. Safe to call from several
  // threads at once (each with its own buffer) once all segments are appended.
  void read(std::size_t index, Segment& segment, Buffer& buffer) const;

 private:
  static void reserve(Buffer& buffer, std::size_t bytes);
  void drop_direct_io();

  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  std::vector<std::uint64_t> offsets_;  // per segment: start in the file
  std::vector<std::uint64_t> sizes_;    // per segment: padded size
  std::uint64_t end_ = 0;
  Buffer buffer_;  // for append()
};

}  // namespace textscale::preprocess
