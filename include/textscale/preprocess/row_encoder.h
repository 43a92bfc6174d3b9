// Turns the records of a block into tensor rows (or, in the counting pass, into word counts).
// One RowEncoder per thread; it holds scratch buffers and is not shared.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "textscale/preprocess/labels.h"
#include "textscale/preprocess/options.h"
#include "textscale/preprocess/record.h"
#include "textscale/preprocess/text.h"
#include "textscale/preprocess/vocabulary.h"

namespace textscale::preprocess {

// Rows of one output file, row-major: chars [rows, L], words [rows, W].
struct EncodedRows {
  std::vector<std::int32_t> labels;        // [rows]
  std::vector<std::uint8_t> chars;         // [rows * L], empty without chars
  std::vector<std::int32_t> char_lengths;  // [rows]
  std::vector<std::int32_t> words;         // [rows * W], empty without words
  std::vector<std::int32_t> word_lengths;  // [rows]
  [[nodiscard]] std::size_t rows() const { return labels.size(); }
};

struct BlockResult {
  std::int64_t sequence = 0;
  std::int64_t records = 0;
  std::int64_t train_rows = 0;  // good rows for each output (counted in both passes)
  std::int64_t valid_rows = 0;
  EncodedRows train;  // rows for the main output
  EncodedRows valid;  // rows carved out for validation
  std::vector<BadRow> bad;
  // Counting pass: per good row, (kept tokens << 1) | is_validation, and the first W word entries
  // of each row in the counting thread's TokenCounter (see TokenSpool).
  int worker = 0;
  std::vector<std::uint32_t> token_rows;
  std::vector<std::uint32_t> token_entries;
};

// Deterministic validation membership: splitmix64(seed, ordinal) / 2^64 < fraction. Independent
// of threads, blocks and input length, so a streaming pass can decide it row by row.
[[nodiscard]] bool in_validation(std::uint64_t seed, std::int64_t ordinal, double fraction);

class RowEncoder {
 public:
  RowEncoder(const PreprocessOptions& options, const CharQuantizer& quantizer);

  // Counting pass: adds the tokens of every good training row to `counter`, and records the
  // first W entries of every good row (training or validation) in result.token_*; fills
  // result.bad and result.records.
  void count(const Block& block, TokenCounter& counter, BlockResult& result);
  // Encoding pass: words are encoded when `vocabulary` is given; without it (words come from the
  // counting pass's spool, or --no-words) the words tensors are left empty.
  void encode(const Block& block, const Vocabulary* vocabulary, BlockResult& result);

 private:
  // Label and text of a record, or false after appending the reason to result.bad.
  bool prepare(const Block& block, const RawRecord& record, BlockResult& result, std::int32_t& label);

  const PreprocessOptions& options_;
  const CharQuantizer& quantizer_;
  LabelMapper labels_;
  // The row's tokens (up to `limit`) as views into text_ or lowered_.
  void collect_tokens(std::size_t limit);

  // The row's text; text_ holds it followed by kPadding NUL bytes so that tokens can be hashed
  // 8 bytes at a time (WordKey::of_padded).
  [[nodiscard]] std::string_view text() const { return std::string_view(text_.data(), text_.size() - kPadding); }
  static constexpr std::size_t kPadding = 8;

  Tokenizer tokenizer_;
  std::string text_;     // the row's text after unescaping and joining, then kPadding NULs
  std::string lowered_;  // lower-cased copies of tokens that needed it, then kPadding NULs
  std::vector<std::string_view> tokens_;
  Vocabulary::Scratch scratch_;
};

}  // namespace textscale::preprocess
