// Records as they travel from the reader to the encoding threads, and the reasons a row is bad.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace textscale::preprocess {

enum class BadRowReason : int {
  unterminated_quote = 0,  // a quoted field still open at the end of the input
  stray_quote,             // a character other than a delimiter or end of line after a closing quote
  field_count,             // not the number of fields of the first row (or the header)
  row_too_long,            // longer than --max-row-bytes
  label_not_integer,
  label_out_of_range,
  unknown_label_name,
  empty_text,  // only whitespace in every text column
  invalid_utf8,
  unreadable_file,  // imdb: a review file that cannot be read
  invalid_json,     // JSON Lines (predict): not an object with a string "text"
  count_            // number of reasons
};
inline constexpr int kBadRowReasons = static_cast<int>(BadRowReason::count_);

[[nodiscard]] const char* to_string(BadRowReason reason);

// One bad row: where it is and why.
struct BadRow {
  BadRowReason reason{};
  std::int64_t ordinal = 0;  // record index in the input (header excluded), 0-based
  std::string where;         // "file:line" or the review file's path
  std::string detail;
};

// A field's bytes inside a block's arena (quotes already removed, "" already collapsed to ").
struct FieldSpan {
  std::uint32_t offset = 0;
  std::uint32_t size = 0;
};

inline constexpr std::int32_t kLabelInFields = -1;
inline constexpr std::int32_t kUnlabelled = -2;

struct RawRecord {
  std::int64_t ordinal = 0;
  std::int64_t line = 0;    // 1-based line where the record starts; 0 for whole-file records
  std::int32_t source = 0;  // index into Block::sources
  // The label when the layout fixes it (imdb), kLabelInFields when a field holds it, or
  // kUnlabelled: the record's one field is its text and it has no label (predict's plain lines
  // and JSON Lines).
  std::int32_t preset_label = -1;
  std::uint32_t first_field = 0;  // index into Block::fields
  std::uint32_t field_count = 0;
  bool bad = false;  // the reader already found it malformed
  BadRowReason reason{};
  std::string detail;
};

// The unit of work: whole records, in input order, numbered by `sequence`.
struct Block {
  std::int64_t sequence = 0;
  std::string arena;
  std::vector<FieldSpan> fields;
  std::vector<RawRecord> records;
  std::vector<std::string> sources;  // file names referred to by RawRecord::source

  [[nodiscard]] std::string_view field(const RawRecord& record, std::uint32_t index) const {
    const FieldSpan& span = fields[record.first_field + index];
    return std::string_view(arena).substr(span.offset, span.size);
  }
  [[nodiscard]] std::string where(const RawRecord& record) const {
    return record.line > 0 ? sources[record.source] + ":" + std::to_string(record.line) : sources[record.source];
  }
};

}  // namespace textscale::preprocess
