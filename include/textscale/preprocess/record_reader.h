// Splits an input into records and fields, block by block, on one thread.
//
// Delimited input follows RFC 4180: a field that starts with a quote runs to the matching quote,
// may contain delimiters and newlines, and "" inside it stands for one quote. A quote inside an
// unquoted field is an ordinary character (SST-style text). CRLF and LF both end a record.
// Malformed records are returned flagged (never thrown): the reader resynchronises at the next
// end of line.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "textscale/preprocess/options.h"
#include "textscale/preprocess/record.h"
#include "textscale/preprocess/source.h"

namespace textscale::preprocess {

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Next block of at least one record, or nullopt at the end of the input.
  virtual std::optional<Block> next() = 0;
  // SHA-256 of what was read, and its size in bytes as stored; valid at the end of the input.
  [[nodiscard]] virtual std::string sha256_hex() const = 0;
  [[nodiscard]] virtual std::uint64_t stored_bytes() const = 0;
  // Bytes handed out so far (decompressed text).
  [[nodiscard]] virtual std::uint64_t text_bytes() const = 0;
  // Header fields when the layout has a header (else empty).
  [[nodiscard]] virtual const std::vector<std::string>& header() const = 0;
};

// Reads delimited records (zhang, tsv) from a file, a .gz file or standard input ("-").
[[nodiscard]] std::unique_ptr<RecordReader> make_delimited_reader(const std::string& path,
                                                                  const PreprocessOptions& options, bool hash);

// The same from an open byte source (standard input broadcast by one rank, say).
[[nodiscard]] std::unique_ptr<RecordReader> make_delimited_reader(std::unique_ptr<ByteSource> source,
                                                                  const PreprocessOptions& options);

// Reads an aclImdb split folder: <dir>/neg/*.txt then <dir>/pos/*.txt, each by numeric id.
[[nodiscard]] std::unique_ptr<RecordReader> make_imdb_reader(const std::string& folder,
                                                             const PreprocessOptions& options, bool hash);

}  // namespace textscale::preprocess
