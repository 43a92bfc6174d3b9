// Readers for the inputs `predict` takes besides the preprocess formats: plain text, one document
// a line, and JSON Lines, one object a line with a string "text" and optional "id" and "label".
//
// Both yield preprocess::Block records of kUnlabelled (or, for a JSON Lines record with a valid
// label, its class index): field 0 is the text and, for JSON Lines, field 1 the id (empty when
// the object has none). A line ends at LF; a CR before it is dropped. Malformed records come back
// flagged with a reason and their line, never thrown: a line that is not a JSON object, has no
// string "text", or an unknown label; one over --max-row-bytes. Blank JSON Lines are skipped
// (they are not records); a blank plain-text line is a record with empty text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "textscale/preprocess/options.h"
#include "textscale/preprocess/record_reader.h"

namespace textscale::predict {

enum class LineFormat { lines, jsonl };

// `source`: a file, a .gz file, standard input... `class_names` maps string labels; integer labels
// are 0-based indices below `classes`.
[[nodiscard]] std::unique_ptr<preprocess::RecordReader> make_line_reader(std::unique_ptr<preprocess::ByteSource> source,
                                                                         LineFormat format,
                                                                         const preprocess::PreprocessOptions& options,
                                                                         const std::vector<std::string>& class_names,
                                                                         std::int64_t classes);

}  // namespace textscale::predict
