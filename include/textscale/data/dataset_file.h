// The one reader of `textscale preprocess` output (docs/hdf5-schema.md), used by training,
// evaluation, `textscale inspect` and `preprocess --vocab-from`.
//
// Opening a file validates it at the boundary, before anything is read through its shapes:
// - the schema_version attribute is present and known (1 or 2);
// - from schema_version 2: every row dataset and vocab_counts has HDF5's Fletcher-32 filter, and
//   description_sha256 matches num_classes, classes, alphabet and vocab (read for the purpose);
//   a version 1 file is read with one warning that it has no checksums;
// - num_classes is within 1..kMaxClasses and `classes`, when non-empty, names that many;
// - `labels` is int32 [N] (N is the file's row count; attribute num_rows, when present, agrees);
// - with `chars`: uint8 [N, L], attributes alphabet (at most 255 symbols), char_length = L and
//   char_order; `char_lengths`, when present, int32 [N];
// - with `words`: int32 [N, W], attribute word_length = W, dataset `vocab` (1-D strings);
//   `word_lengths`, when present, int32 [N];
// - `vocab`, when present, is 1-D variable-length strings; `vocab_counts`, when present, int64 of
//   the same length;
// - content_sha256, when present, is 64 hexadecimal digits.
// Row reads check their values (and HDF5 the Fletcher-32 checksum of every chunk they read; a
// mismatch is an InputError "dataset 'chars' is damaged (checksum mismatch in a chunk)"): labels within [0,
// num_classes), character codes within the alphabet, word ids within the vocabulary, stored lengths within their row's
// width. Every error is an InputError that starts with the file's name (the path, or what the caller chose, such as
// "--vocab-from 'train.h5'") and names the dataset or attribute concerned.
//
// Files made before content digests were recorded have no content_sha256: content_sha256() is
// then empty and the file's identity is unknown.
//
// Thread-compatible: one DatasetFile per thread (HDF5 itself is built thread-safe and
// serialises the calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace textscale::data {

struct OpenOptions {
  std::string name;                   // how messages name the file; the path when empty
  std::size_t chunk_cache_bytes = 0;  // chunk cache of `chars` for random row reads; 0: HDF5's default
};

class DatasetFile {
 public:
  explicit DatasetFile(const std::string& path, const OpenOptions& options = {});
  DatasetFile(DatasetFile&&) noexcept;
  DatasetFile& operator=(DatasetFile&&) noexcept;
  ~DatasetFile();

  [[nodiscard]] const std::string& path() const;
  [[nodiscard]] const std::string& name() const;

  // --- Metadata (read and checked when the file is opened) -----------------------------------
  [[nodiscard]] std::int64_t rows() const;  // N
  [[nodiscard]] std::int64_t num_classes() const;
  [[nodiscard]] const std::vector<std::string>& classes() const;  // names in index order; empty when unknown
  [[nodiscard]] bool has_chars() const;
  [[nodiscard]] const std::string& alphabet() const;  // the symbols of codes 1..A; empty without chars
  [[nodiscard]] std::int64_t char_length() const;     // L; 0 without chars
  [[nodiscard]] const std::string& char_order() const;
  [[nodiscard]] bool has_words() const;
  [[nodiscard]] std::int64_t word_length() const;  // W; 0 without words
  [[nodiscard]] bool has_vocabulary() const;
  [[nodiscard]] std::int64_t vocab_size() const;           // V, entries of `vocab`; 0 without one
  [[nodiscard]] const std::string& source_sha256() const;  // empty when absent
  // The SHA-256 (hex) of what the file holds (docs/hdf5-schema.md, "Content digest"); empty for a
  // file made before textscale recorded it.
  [[nodiscard]] const std::string& content_sha256() const;

  // The shape of any dataset at the root (for display); empty when the file has no such dataset.
  [[nodiscard]] std::vector<std::int64_t> shape(const std::string& dataset) const;
  // Any other root attribute, for display and provenance: empty when absent. Throws InputError
  // when the attribute has another type.
  [[nodiscard]] std::optional<std::string> text_attribute(const std::string& attribute) const;
  [[nodiscard]] std::optional<std::int64_t> int_attribute(const std::string& attribute) const;

  // Throw InputError, naming the file, unless it holds character (words: word) tensors.
  void require_chars() const;
  void require_words() const;
  void require_vocabulary() const;

  // The vocabulary: vocab[id] is the word of that id; counts empty when `vocab_counts` is absent.
  [[nodiscard]] std::vector<std::string> read_vocabulary() const;
  [[nodiscard]] std::vector<std::int64_t> read_vocab_counts() const;

  // --- Rows [begin, begin + count), checked as described above -------------------------------
  void read_labels(std::int64_t begin, std::int64_t count, std::int32_t* out) const;        // (count)
  void read_chars(std::int64_t begin, std::int64_t count, std::uint8_t* out) const;         // (count, L)
  void read_char_lengths(std::int64_t begin, std::int64_t count, std::int32_t* out) const;  // (count)
  void read_words(std::int64_t begin, std::int64_t count, std::int32_t* out) const;         // (count, W)
  void read_word_lengths(std::int64_t begin, std::int64_t count, std::int32_t* out) const;  // (count)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace textscale::data
