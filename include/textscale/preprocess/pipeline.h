// `textscale preprocess`: input -> one HDF5 file per split.
//
// Passes over the input, each streamed through a reader thread, encoding threads and the
// calling thread (which alone touches HDF5):
//   1. counting (only when words are wanted and no --vocab-from): validates every row, reports
//      bad rows, counts training tokens and spools every row's first W word entries
//      (TokenSpool); then the vocabulary is built;
//   2. encoding: rows -> character tensors, words from the spool (or tokenised here when there
//      was no counting pass), appended to the output(s) in input order (or spooled and permuted
//      with --shuffle).
// Memory is bounded by the blocks in flight, the vocabulary and 8 bytes per row when shuffling.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "textscale/preprocess/options.h"
#include "textscale/preprocess/record.h"

namespace textscale::preprocess {

struct OutputSummary {
  std::string path;
  std::int64_t rows = 0;
  std::vector<std::int64_t> class_counts;
};

struct PreprocessSummary {
  std::int64_t records = 0;  // records read (header excluded)
  std::array<std::int64_t, kBadRowReasons> bad_by_reason{};
  std::vector<BadRow> first_bad;  // the first --max-errors-shown bad rows
  [[nodiscard]] std::int64_t bad_rows() const;
  OutputSummary train;
  OutputSummary valid;               // rows == 0 and path empty without a validation split
  std::int64_t vocabulary_size = 0;  // including <pad> and <unk>
  std::int64_t distinct_words = 0;   // in the counting pass
  std::uint64_t input_bytes = 0;     // text bytes after decompression, per pass
  std::uint64_t stored_bytes = 0;    // bytes as stored (compressed size for .gz)
  std::string sha256;
  int passes = 0;
  double seconds = 0.0;         // everything
  double count_seconds = 0.0;   // counting pass and vocabulary
  double encode_seconds = 0.0;  // encoding pass
  double commit_seconds = 0.0;  // permutation copy (--shuffle), close, sync, rename
};

// Runs the preprocessing. Throws InputError / IoError / Hdf5Error for a fatal problem (including
// the first bad row under --strict); outputs are then absent, never half-written. `options` is
// resolved in place (see resolve()).
PreprocessSummary run_preprocess(PreprocessOptions& options);

// Human-readable summary (what `textscale preprocess` prints at the end).
[[nodiscard]] std::string format_summary(const PreprocessSummary& summary, const PreprocessOptions& options);

}  // namespace textscale::preprocess
