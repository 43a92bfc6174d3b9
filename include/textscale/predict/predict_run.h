// `textscale predict`'s work, apart from its command line: records from a reader are encoded as
// the training file was, classified, and written in input order.
//
// The unit of work is the reader's block of records (at most 4096 records or about 1 MiB of
// text, cut at record boundaries by the reader, so quoted fields with newlines stay whole). With
// N ranks, every rank reads the whole input (reading and splitting records is two orders of
// magnitude faster than inference) and classifies block b when b mod N is its rank; each round
// of N blocks is gathered to rank 0, which writes it in input order. Within a block, rows go to
// the model in batches of --batch-size (word rows shortest first, unless sort_by_length is off); a
// batch never spans two blocks, so N ranks give bitwise the predictions of one process, and a
// file of one block in input order (or a preprocessed copy evaluated with the same batch size)
// gives bitwise the same probabilities as evaluate. Memory stays bounded by
// a block and its batch.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "textscale/dist/communicator.h"
#include "textscale/predict/classifier.h"
#include "textscale/predict/prediction_writer.h"
#include "textscale/preprocess/record_reader.h"
#include "textscale/train/metrics.h"

namespace textscale::predict {

struct PredictRunOptions {
  std::int64_t batch = 128;
  std::int64_t id_field = -1;    // the field that holds a record's id (-1: none)
  bool strict = false;           // the first bad record is fatal (InputError naming it)
  int max_errors_shown = 10;     // bad records reported one by one on standard error, per rank
  bool quiet = false;            // no reports of bad records (the summary still counts them)
  std::int64_t skip_blocks = 0;  // blocks already written by an earlier run (read, not classified)
  // Word models: a block's rows go to the model shortest first, so that each batch, cut to its
  // longest row, carries little padding; results are written in input order all the same.
  bool sort_by_length = true;
};

// Counts over every rank (and, after a resume, the earlier run), and this rank's time split.
struct PredictSummary {
  std::int64_t blocks = 0;  // blocks written, skipped ones included
  std::int64_t records = 0, classified = 0, labelled = 0;
  std::array<std::int64_t, preprocess::kBadRowReasons> bad_by_reason{};
  std::uint64_t text_bytes = 0;  // text read (this run)
  double read_seconds = 0, encode_seconds = 0, infer_seconds = 0, write_seconds = 0, seconds = 0;
  train::Metrics metrics{1};  // over the records with a label
  [[nodiscard]] std::int64_t bad() const;
  // A few lines for people: counts, rates, the time split, accuracy when there were labels.
  [[nodiscard]] std::string text(const std::vector<std::string>& class_names) const;
  [[nodiscard]] std::string json(const std::vector<std::string>& class_names) const;
  // The counts (not the times) as numbers, to be summed over ranks or kept for a resume.
  [[nodiscard]] std::vector<double> pack_counts() const;
  void add_counts(const std::vector<double>& packed);
};

class PredictRun {
 public:
  PredictRun(Classifier& classifier, TextEncoder& encoder, PredictionWriter& writer, const PredictRunOptions& options,
             dist::Communicator& comm);

  // Starts the counts from an earlier run's (pack_counts) before a resume; on rank 0 only.
  void resume_counts(const std::vector<double>& packed) { total_.add_counts(packed); }

  // Reads `reader` to its end. On rank 0, `write` receives the predictions in input order, and
  // `after_round` the summary so far once a round's predictions are written (its blocks count
  // the rounds done). Every rank stops after the round in which any rank got a signal, throwing
  // Interrupted (everywhere). Returns the summary, the same on every rank but for the times.
  PredictSummary run(preprocess::RecordReader& reader, const std::function<void(const std::string&)>& write,
                     const std::function<void(const PredictSummary&)>& after_round);

 private:
  struct RowRef {
    std::int64_t record = 0, line = 0;
    std::string id;
  };
  // Encodes, classifies and formats one block; returns its predictions' text.
  std::string process(const preprocess::Block& block);
  void take_block(const preprocess::Block& block, preprocess::BlockResult& result);
  // order_: the block's rows in the order they go to the model (by length, or as they are).
  void sort_pending();
  void classify_pending(std::string& out);
  void report(const preprocess::BadRow& bad);

  Classifier& classifier_;
  TextEncoder& encoder_;
  PredictionWriter& writer_;
  PredictRunOptions options_;
  dist::Communicator& comm_;
  PredictSummary round_;               // this rank's counts in the current round
  PredictSummary total_;               // the counts over every rank so far, and this rank's times
  preprocess::EncodedRows pending_;    // a block's encoded rows
  std::vector<RowRef> refs_;           // their records
  preprocess::EncodedRows by_length_;  // the block's word rows in order_ (when sorted_)
  bool sorted_ = false;
  std::vector<std::size_t> order_, position_;  // position_[row]: where order_ holds row
  std::vector<float> probabilities_;           // [rows, classes] in order_
  std::vector<std::int32_t> predicted_;        // [rows] in order_
  int shown_ = 0;
};

}  // namespace textscale::predict
