// Writes one output file of preprocessed rows (docs/hdf5-schema.md), atomically.
//
// Rows go to "<path>.tmp-<pid>" and the file only takes its final name in commit(); if anything
// fails before, the destructor removes the temporary file, so a half-written file never sits
// under the output name. With shuffling, rows are first spooled to a raw temporary file of
// fixed-size records and copied into the HDF5 file in a seeded permutation, so memory stays at
// 8 bytes per row whatever the text size.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "textscale/common/hdf5.h"
#include "textscale/preprocess/row_encoder.h"

namespace textscale::preprocess {

struct RowLayout {
  bool chars = true;
  int char_length = 1014;
  bool words = true;
  int word_length = 300;
  int compression = 0;  // gzip level, 0 = none
};

// Seeded Fisher-Yates over [0, n) with std::mt19937_64 and an unbiased bounded draw (both fully
// specified, unlike std::shuffle), so the same seed gives the same order on every platform.
[[nodiscard]] std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed);

class RowFileWriter {
 public:
  // Throws InputError if `path` exists and !overwrite, IoError/Hdf5Error if it cannot be created.
  RowFileWriter(std::string path, RowLayout layout, bool overwrite, bool shuffle, std::uint64_t seed);
  RowFileWriter(const RowFileWriter&) = delete;
  RowFileWriter& operator=(const RowFileWriter&) = delete;
  ~RowFileWriter();

  void append(const EncodedRows& rows);
  [[nodiscard]] std::int64_t rows() const { return rows_; }
  // Per class counts of the rows appended so far.
  [[nodiscard]] const std::vector<std::int64_t>& class_counts() const { return class_counts_; }
  // The open HDF5 file, for attributes and extra datasets.
  [[nodiscard]] hid_t file() const { return file_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }

  // Copies spooled rows in their permuted order (when shuffling), closes the file, syncs it and
  // renames it to its final name.
  void commit();

 private:
  struct Dataset {
    h5::Handle handle;
    hid_t memory_type = H5I_INVALID_HID;
    hsize_t width = 0;  // 0 for a 1-D dataset
  };
  Dataset create(const char* name, hid_t file_type, hid_t memory_type, hsize_t width, hsize_t chunk_rows);
  void write_rows(Dataset& dataset, const void* data, std::size_t count);
  void write_to_file(const EncodedRows& rows);
  void write_columns(const EncodedRows& rows);
  void spool(const EncodedRows& rows);
  void copy_spool_permuted();
  [[nodiscard]] std::size_t spool_row_bytes() const;

  std::string path_;
  std::string temporary_path_;
  std::string spool_path_;
  RowLayout layout_;
  bool overwrite_;
  bool shuffle_;
  std::uint64_t seed_;
  bool committed_ = false;
  h5::Handle file_;
  Dataset labels_, chars_, char_lengths_, words_, word_lengths_;
  std::FILE* spool_ = nullptr;
  std::int64_t rows_ = 0;
  std::int64_t written_ = 0;  // rows in the HDF5 datasets
  std::vector<std::int64_t> class_counts_;
};

}  // namespace textscale::preprocess
