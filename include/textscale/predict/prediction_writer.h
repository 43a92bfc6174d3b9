// Predictions as CSV or JSON Lines, one row a classified record, in the order given.
//
// CSV: a header, then record,line[,id][,label],predicted,index and either one prob_<class>
// column a class or, with top_k, top<i>_class,top<i>_index,top<i>_prob for i = 1..k. JSON
// Lines: {"record","line"[,"id"][,"label"],"predicted","index"} with "probabilities" (class name
// -> probability) or, with top_k, "top": [{"class","index","probability"}, ...]. record is the
// 0-based record number of the input, line its first line (0 when it has none); label is empty
// (CSV) or null (JSON) for a record without one. Probabilities are written with the fewest
// digits that read back as the same float.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace textscale::predict {

enum class OutputFormat { csv, jsonl };

struct Prediction {
  std::int64_t record = 0;
  std::int64_t line = 0;
  std::string_view id;
  std::int32_t label = -1;     // -1: none
  std::int32_t predicted = 0;  // the class of the highest logit
  const float* probabilities = nullptr;
};

class PredictionWriter {
 public:
  // top_k 0 or >= classes: every class's probability.
  PredictionWriter(OutputFormat format, std::vector<std::string> class_names, std::int64_t top_k, bool with_id,
                   bool with_label);
  // The CSV header line (empty for JSON Lines).
  [[nodiscard]] std::string header() const;
  // Appends one prediction's line to `out`.
  void append(const Prediction& prediction, std::string& out);

 private:
  void append_csv(const Prediction& prediction, std::string& out);
  void append_json(const Prediction& prediction, std::string& out);

  OutputFormat format_;
  std::vector<std::string> names_;
  std::vector<std::string> csv_names_, json_names_;  // quoted as each format needs
  std::int64_t top_k_;
  bool with_id_, with_label_;
  std::vector<std::int32_t> order_;
};

// `field` as one CSV field: quoted, with quotes doubled, when it holds a comma, quote, CR or LF.
[[nodiscard]] std::string csv_field(std::string_view field);

}  // namespace textscale::predict
