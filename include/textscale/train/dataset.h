// Datasets for training and evaluation, read from `textscale preprocess` output: the character
// codes the character models read or the word ids of the word models.
//
// Files are opened once through data::DatasetFile, which validates them at the boundary
// (docs/hdf5-schema.md); a file without the tensors a model reads is refused. Errors name the file and
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
  engine::IdType ids = engine::IdType::characters;  // which tensors the model reads
  // Characters.
  std::string alphabet;          // the characters of codes 1..A
  std::int64_t char_length = 0;  // L
  std::string char_order;        // "reversed"
  // Words.
  std::int64_t word_length = 0;  // W
  std::int64_t vocab_size = 0;   // V
  std::string vocab_digest;      // vocabulary_digest of the file's `vocab`
  std::int64_t num_classes = 0;
  std::vector<std::string> classes;  // names, may be empty
  // L or W.
  [[nodiscard]] std::int64_t width() const { return ids == engine::IdType::words ? word_length : char_length; }
  // Throws InputError naming both sources when `other` is incompatible for this encoding's ids
  // (characters: alphabet, length, order; words: the vocabulary and W), or in the number of
  // classes, or in the class names when both have them.
  void check_compatible(const Encoding& other, const std::string& this_source, const std::string& other_source) const;
};

// The identity of a vocabulary (vocab[id] the word of id): 16 hexadecimal digits of FNV-1a over
// the words, each followed by a newline.
[[nodiscard]] std::string vocabulary_digest(const std::vector<std::string>& vocab);

// How a training file was made from raw text, so that new text is encoded the same way (predict,
// serve): `textscale preprocess`'s options (the file's `options` attribute, JSON: format, columns,
// labels, unescaping, lengths), the word tokenizer and, for word models, the vocabulary.
struct TextSource {
  std::string options_json;        // empty: unknown
  std::string tokenizer;           // words: the tokenizer's name
  std::vector<std::string> vocab;  // words: vocab[id]
  [[nodiscard]] bool empty() const { return options_json.empty(); }
};

// The text source of the preprocessed file `path`, for a model reading `ids`: empty when the file
// has no `options` attribute; throws InputError naming the file when a word file lacks its
// tokenizer or vocabulary.
TextSource read_text_source(const std::string& path, engine::IdType ids);

// Rows of a file held in memory, as a model of `encoding.ids` reads them: character codes
// (rows, L) or word ids (rows, W) with each row's real words.
struct Dataset {
  std::string path;
  Encoding encoding;
  std::int64_t rows = 0;              // rows held (end - begin)
  std::int64_t total_rows = 0;        // rows in the file
  std::int64_t first_row = 0;         // begin
  std::string content_sha256;         // the file's content digest; empty when it has none
  std::uint64_t fingerprint = 0;      // the whole file's ShardReader::fingerprint()
  std::vector<std::uint8_t> chars;    // characters: (rows, L)
  std::vector<std::int32_t> words;    // words: (rows, W)
  std::vector<std::int32_t> lengths;  // words: (rows) real words a row (W for a file without word_lengths)
  std::vector<std::int32_t> labels;   // (rows)
  // Rows [begin, begin + count) as an input batch in host memory. Word rows are cut to the
  // longest real row among them (at least 1), copied into `scratch`: the word models' result does
  // not depend on the padding, and the cut saves its compute.
  [[nodiscard]] engine::InputBatch batch(std::int64_t begin, std::int64_t count,
                                         std::vector<std::int32_t>& scratch) const;
};

// Reads rows [begin, end) of `path` (end < 0: to the end of the file) as `ids`. Throws InputError
// naming the file when it lacks those tensors (or, for words, the vocabulary).
Dataset load_dataset(const std::string& path, engine::IdType ids, std::int64_t begin = 0, std::int64_t end = -1);

// Word rows (count, width) with their lengths, cut in place to the longest (at least 1) of them:
// returns the new width; the rows are then (count, new width), contiguous.
std::int64_t cut_to_longest(std::int32_t* words, std::int64_t count, std::int64_t width, const std::int32_t* lengths);

// Reads only the attributes (for checks before anything is loaded).
Encoding read_encoding(const std::string& path, engine::IdType ids);

// The rows of `path`, checking it holds the tensors `ids` needs (without reading them).
std::int64_t file_rows(const std::string& path, engine::IdType ids);

// Random access to the rows of a training file, for a data-parallel rank that reads only its
// share of each batch. Opening validates the schema and reads (and range-checks) every label;
// the rows (character codes or word ids, as `ids` says) are read on demand, each run of
// consecutive rows with one hyperslab read, and their ids checked against the alphabet or the
// vocabulary. Word rows' lengths are read once when the file is opened. Thread-compatible: one reader per thread (HDF5
// itself is built thread-safe and serialises the calls).
class ShardReader {
 public:
  ShardReader(const std::string& path, engine::IdType ids, std::int64_t limit_rows = -1);
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const Encoding& encoding() const { return encoding_; }
  [[nodiscard]] std::int64_t rows() const { return rows_; }
  [[nodiscard]] const std::vector<std::int32_t>& labels() const { return labels_; }
  // Identifies the file's content for cross-rank checks: its content digest when it has one, rows,
  // encoding, source_sha256, input format, unescaping and split.
  [[nodiscard]] std::uint64_t fingerprint() const { return fingerprint_; }
  // The file's content digest (docs/hdf5-schema.md); empty for a file made before it was recorded.
  [[nodiscard]] const std::string& content_sha256() const { return content_sha256_; }
  // The real words of every row (words only; empty for characters).
  [[nodiscard]] const std::vector<std::int32_t>& lengths() const { return lengths_; }
  // Rows `rows[0..count)` (any order, repeats allowed) into `ids` (count, width) of the reader's
  // id type, labels (count) and, for words, lengths (count).
  void read(const std::int64_t* rows, std::int64_t count, void* ids, std::int32_t* labels,
            std::int32_t* lengths = nullptr);

 private:
  std::string path_;
  Encoding encoding_;
  std::int64_t rows_ = 0;
  std::vector<std::int32_t> labels_, lengths_;
  std::uint64_t fingerprint_ = 0;
  std::string content_sha256_;
  struct Impl;
  std::shared_ptr<Impl> impl_;                                 // the open file
  std::vector<std::pair<std::int64_t, std::int64_t>> sorted_;  // (row, position) scratch
  std::vector<std::uint8_t> staging_;                          // bytes of a run of rows
};

}  // namespace textscale::train
