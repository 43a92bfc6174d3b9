// `textscale predict`'s work, apart from its command line: records from a reader are encoded as
// the training file was, classified in batches of a fixed size across block boundaries (so a
// preprocessed copy evaluated with the same batch size gives bitwise the same probabilities), and
// written in input order. Memory stays bounded by one block of records plus one batch.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "textscale/predict/classifier.h"
#include "textscale/predict/prediction_writer.h"
#include "textscale/preprocess/record_reader.h"
#include "textscale/train/metrics.h"

namespace textscale::predict {

struct PredictRunOptions {
  std::int64_t batch = 128;
  std::int64_t id_field = -1;  // the field that holds a record's id (-1: none)
  bool strict = false;         // the first bad record is fatal (InputError naming it)
  int max_errors_shown = 10;   // bad records reported one by one on standard error
  bool quiet = false;          // no reports of bad records (the summary still counts them)
};

struct PredictSummary {
  std::int64_t records = 0, classified = 0, labelled = 0;
  std::array<std::int64_t, preprocess::kBadRowReasons> bad_by_reason{};
  std::uint64_t text_bytes = 0;
  double read_seconds = 0, encode_seconds = 0, infer_seconds = 0, write_seconds = 0, seconds = 0;
  train::Metrics metrics{1};  // over the records with a label
  [[nodiscard]] std::int64_t bad() const;
  // A few lines for people: counts, rates, the time split, accuracy when there were labels.
  [[nodiscard]] std::string text(const std::vector<std::string>& class_names) const;
  [[nodiscard]] std::string json(const std::vector<std::string>& class_names) const;
};

class PredictRun {
 public:
  // `write` receives the text of each batch's predictions, in input order.
  PredictRun(Classifier& classifier, TextEncoder& encoder, PredictionWriter& writer, const PredictRunOptions& options,
             std::function<void(const std::string&)> write);

  // Reads `reader` to its end. `progress` (may be empty) is called after each block.
  PredictSummary run(preprocess::RecordReader& reader, const std::function<void(const PredictSummary&)>& progress);

 private:
  struct RowRef {
    std::int64_t record = 0, line = 0;
    std::string id;
  };
  void take_block(const preprocess::Block& block, preprocess::BlockResult& result);
  // Classifies and writes full batches of pending rows (and, with `all`, the rest).
  void flush(bool all);
  void report(const preprocess::BadRow& bad);

  Classifier& classifier_;
  TextEncoder& encoder_;
  PredictionWriter& writer_;
  PredictRunOptions options_;
  std::function<void(const std::string&)> write_;
  PredictSummary summary_;
  preprocess::EncodedRows pending_;  // encoded rows not yet classified
  std::vector<RowRef> refs_;         // their records
  std::vector<float> probabilities_;
  std::vector<std::int32_t> predicted_;
  std::string text_;
  int shown_ = 0;
};

}  // namespace textscale::predict
