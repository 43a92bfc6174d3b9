// Character datasets for training and evaluation, read from `textscale preprocess` output, and
// word datasets (WordDataset) for the word models.
//
// Files are opened once through data::DatasetFile, which validates them at the boundary
// (docs/hdf5-schema.md); a file without character tensors is refused. Errors name the file and
// the dataset. Rows [begin, end) are read into memory — a data-parallel rank reads only its
// shard; the whole AG News or IMDB training set is 10-25 MB of codes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "textscale/engine/input.h"

namespace textscale::train {

// What a model trained on a file needs to know about its encoding; stored in checkpoints so that
// a checkpoint alone can classify raw text, and compared when a checkpoint meets a dataset.
struct Encoding {
  std::string alphabet;          // the characters of codes 1..A
  std::int64_t char_length = 0;  // L
  std::string char_order;        // "reversed"
  std::int64_t num_classes = 0;
  std::vector<std::string> classes;  // names, may be empty

  // Throws InputError naming both sources when `other` is incompatible (alphabet, length, order,
  // number of classes; class names when both have them).
  void check_compatible(const Encoding& other, const std::string& this_source, const std::string& other_source) const;
};

struct CharDataset {
  std::string path;
  Encoding encoding;
  std::int64_t rows = 0;             // rows held (end - begin)
  std::int64_t total_rows = 0;       // rows in the file
  std::int64_t first_row = 0;        // begin
  std::string content_sha256;        // the file's content digest; empty when it has none
  std::vector<std::uint8_t> chars;   // (rows, L)
  std::vector<std::int32_t> labels;  // (rows)

  [[nodiscard]] const std::uint8_t* row(std::int64_t i) const { return chars.data() + i * encoding.char_length; }
};

// Reads rows [begin, end) of `path` (end < 0: to the end of the file).
CharDataset load_char_dataset(const std::string& path, std::int64_t begin = 0, std::int64_t end = -1);

// The word tensors of rows [begin, end) of a file: ids (rows, W) into the file's vocabulary of V
// words (0 padding, 1 out of vocabulary), each row's real words when the file stores them, and
// the labels. Read through data::DatasetFile, which checks every id against V and every length
// against W; a file without word tensors is refused.
struct WordDataset {
  std::string path;
  std::int64_t rows = 0;         // rows held (end - begin)
  std::int64_t total_rows = 0;   // rows in the file
  std::int64_t first_row = 0;    // begin
  std::int64_t word_length = 0;  // W
  std::int64_t vocab_size = 0;   // V
  std::int64_t num_classes = 0;
  std::string content_sha256;         // empty when the file has none
  std::vector<std::int32_t> words;    // (rows, W)
  std::vector<std::int32_t> lengths;  // (rows); empty when the file has no word_lengths
  std::vector<std::int32_t> labels;   // (rows)

  // Rows [begin, begin + count) as an input batch of word ids in host memory.
  [[nodiscard]] engine::InputBatch batch(std::int64_t begin, std::int64_t count) const;
};

WordDataset load_word_dataset(const std::string& path, std::int64_t begin = 0, std::int64_t end = -1);

// Reads only the attributes (for checks before anything is loaded).
Encoding read_encoding(const std::string& path);

// ShardReader::fingerprint() of a file, without reading its rows.
std::uint64_t file_fingerprint(const std::string& path);

// Random access to the rows of a training file, for a data-parallel rank that reads only its
// share of each batch. Opening validates the schema and reads (and range-checks) every label;
// character rows are read on demand, each run of consecutive rows with one hyperslab read, and
// their codes checked against the alphabet. Thread-compatible: one reader per thread (HDF5 itself
// is built thread-safe and serialises the calls).
class ShardReader {
 public:
  explicit ShardReader(const std::string& path, std::int64_t limit_rows = -1);
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const Encoding& encoding() const { return encoding_; }
  [[nodiscard]] std::int64_t rows() const { return rows_; }
  [[nodiscard]] const std::vector<std::int32_t>& labels() const { return labels_; }
  // Identifies the file's content for cross-rank checks: its content digest when it has one, rows,
  // encoding, source_sha256, input format, unescaping and split.
  [[nodiscard]] std::uint64_t fingerprint() const { return fingerprint_; }
  // The file's content digest (docs/hdf5-schema.md); empty for a file made before it was recorded.
  [[nodiscard]] const std::string& content_sha256() const { return content_sha256_; }
  // Rows `rows[0..count)` (any order, repeats allowed) into codes (count, L) and labels (count).
  void read(const std::int64_t* rows, std::int64_t count, std::uint8_t* codes, std::int32_t* labels);

 private:
  std::string path_;
  Encoding encoding_;
  std::int64_t rows_ = 0;
  std::vector<std::int32_t> labels_;
  std::uint64_t fingerprint_ = 0;
  std::string content_sha256_;
  struct Impl;
  std::shared_ptr<Impl> impl_;                                 // the open file
  std::vector<std::pair<std::int64_t, std::int64_t>> sorted_;  // (row, position) scratch
  std::vector<std::uint8_t> staging_;
};

}  // namespace textscale::train
