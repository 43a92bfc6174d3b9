// Writes one output file of preprocessed rows (docs/hdf5-schema.md), atomically.
//
// Rows go to "<path>.tmp-<pid>" and the file only takes its final name in commit(); if anything
// fails before, the destructor removes the temporary file, so a half-written file never sits
// under the output name.
//
// Two ways to store the rows, chosen by what is known when the writer starts:
// - the number of rows is known (after a counting pass, or at commit time when shuffling): the
//   datasets are created at their final size with every chunk allocated up front at a 4 KiB
//   aligned address (chunk sizes are multiples of 4 KiB), and whole chunks are written straight
//   to those addresses with O_DIRECT. On the machines we measured, buffered writes through the
//   page cache ran at 0.4-0.8 GB/s and direct writes at 2.2 GB/s, and the output is several
//   times the size of the input: this is what bounds large runs. HDF5 never touches the chunk
//   ranges (their fill value is never written), and its own metadata stays on other pages.
// - otherwise (a single pass with an unknown row count): extendible datasets appended through
//   HDF5.
// With shuffling, rows are first spooled to a raw temporary file of fixed-size records and
// copied in a seeded permutation, so memory stays at 8 bytes per row whatever the text size.
//
// Content digest: each dataset's rows are hashed (SHA-256) as they go to the file, in the file's
// row order, so the digest costs no second read; finish() combines them with what
// describe_content() gave into the attribute content_sha256 (docs/hdf5-schema.md, "Content
// digest"), and the description's own digest as description_sha256, which readers verify on
// every open.
//
// Checksums: every row dataset has HDF5's Fletcher-32 filter, so HDF5 verifies each chunk it
// reads. Preallocated chunks bypass HDF5's filter pipeline: the chunk writer's threads compute
// the same checksum and finish() stores it after the chunk, where the filter would have.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "textscale/common/hdf5.h"
#include "textscale/preprocess/row_encoder.h"

namespace textscale::preprocess {

class ChunkWriter;

struct RowLayout {
  bool chars = true;
  int char_length = 1014;
  bool words = true;
  int word_length = 300;
  int compression = 0;  // gzip level, 0 = none (compressed datasets are always written through HDF5)
};

// Seeded Fisher-Yates over [0, n) with std::mt19937_64 and an unbiased bounded draw (both fully
// specified, unlike std::shuffle), so the same seed gives the same order on every platform.
[[nodiscard]] std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed);

// What the content digest covers besides the rows.
struct ContentDescription {
  std::int64_t num_classes = 0;
  const std::vector<std::string>* classes = nullptr;     // names in index order; null: none
  std::string alphabet;                                  // with chars
  const std::vector<std::string>* vocabulary = nullptr;  // with words: vocab[id]; null: none
};

class RowFileWriter {
 public:
  // expected_rows: the number of rows that will be appended, when known. Throws InputError if
  // `path` exists and !overwrite, IoError/Hdf5Error if it cannot be created.
  RowFileWriter(std::string path, RowLayout layout, bool overwrite, bool shuffle, std::uint64_t seed,
                std::optional<std::int64_t> expected_rows = std::nullopt);
  RowFileWriter(const RowFileWriter&) = delete;
  RowFileWriter& operator=(const RowFileWriter&) = delete;
  ~RowFileWriter();

  void append(const EncodedRows& rows);
  [[nodiscard]] std::int64_t rows() const { return rows_; }
  // Per class counts of the rows appended so far.
  [[nodiscard]] const std::vector<std::int64_t>& class_counts() const { return class_counts_; }
  // The open HDF5 file, for attributes and extra datasets (until commit).
  [[nodiscard]] hid_t file() const { return file_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  // After commit: whether rows went to preallocated chunks with direct I/O (false: through HDF5
  // or the page cache).
  [[nodiscard]] bool direct() const { return direct_; }

  // The file's classes, alphabet and vocabulary for the content digest; call before finish().
  // Without it the digest covers the rows and an empty description.
  void describe_content(const ContentDescription& description);
  // After finish(): the content digest stored as attribute content_sha256 (hex).
  [[nodiscard]] const std::string& content_sha256() const { return content_sha256_; }

  // Writes what is still buffered (the spooled rows in their permuted order when shuffling),
  // stores the content digest, closes the file and syncs it, still under its temporary name. Throws InputError when a
  // known row count was not met (the input changed between passes).
  void finish();
  // Renames the finished file to its final name. Outputs that belong together are all
  // finished before any is published, so a failure leaves none of them.
  void publish();
  // finish() then publish().
  void commit();

 private:
  struct Column;
  void set_up();  // the columns (or the shuffle spool), after the file is created
  void create_columns();
  void create_extendible(Column& column, std::optional<std::int64_t> rows);
  void create_preallocated(Column& column, std::int64_t rows);
  void open_raw_file();
  void append_column(Column& column, const void* data, std::size_t count);
  void flush_chunk(Column& column);
  void write_columns(const EncodedRows& rows);
  void spool(const EncodedRows& rows);
  void copy_spool_permuted();
  void close_columns();
  void write_chunk_checksums();
  void store_content_digest();
  [[nodiscard]] std::size_t spool_row_bytes() const;

  std::string path_;
  std::string temporary_path_;
  std::string spool_path_;
  RowLayout layout_;
  bool overwrite_;
  bool shuffle_;
  std::uint64_t seed_;
  std::optional<std::int64_t> expected_rows_;
  bool finished_ = false;
  bool committed_ = false;
  h5::Handle file_;
  std::vector<std::unique_ptr<Column>> columns_;  // labels, chars, char_lengths, words, word_lengths
  std::unique_ptr<ChunkWriter> chunks_;           // preallocated layout: writes chunks in the background
  bool direct_ = false;
  std::FILE* spool_ = nullptr;
  std::int64_t rows_ = 0;
  std::vector<std::int64_t> class_counts_;
  std::array<unsigned char, 32> description_digest_{};
  std::string content_sha256_;
};

}  // namespace textscale::preprocess
