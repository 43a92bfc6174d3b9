#include "textscale/predict/predict_run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "textscale/common/error.h"
#include "textscale/common/interrupt.h"

namespace textscale::predict {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

template <typename T>
void append_rows(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// Drops the first `count` values (all of them when fewer: a tensor the encoding does not fill).
template <typename T>
void drop_front(std::vector<T>& values, std::size_t count) {
  values.erase(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(std::min(count, values.size())));
}

}  // namespace

std::int64_t PredictSummary::bad() const {
  std::int64_t total = 0;
  for (const auto count : bad_by_reason) total += count;
  return total;
}

std::string PredictSummary::text(const std::vector<std::string>& class_names) const {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  const double mb = static_cast<double>(text_bytes) / 1e6;
  out << records << " records, " << classified << " classified, " << bad() << " bad";
  for (int r = 0; r < preprocess::kBadRowReasons; ++r)
    if (bad_by_reason[r])
      out << " (" << to_string(static_cast<preprocess::BadRowReason>(r)) << " " << bad_by_reason[r] << ")";
  out << "\n"
      << std::setprecision(2) << seconds << " s: " << std::setprecision(1)
      << (seconds > 0 ? static_cast<double>(classified) / seconds : 0.0) << " records/s, "
      << (seconds > 0 ? mb / seconds : 0.0) << " MB/s of text; read " << std::setprecision(2) << read_seconds
      << " s, encode " << encode_seconds << " s, infer " << infer_seconds << " s, write " << write_seconds << " s ("
      << std::setprecision(1) << (seconds > 0 ? 100 * (read_seconds + encode_seconds + write_seconds) / seconds : 0.0)
      << "% outside inference)\n";
  if (labelled > 0) out << "labelled records: " << labelled << "\n" << metrics.table(class_names) << "\n";
  return out.str();
}

std::string PredictSummary::json(const std::vector<std::string>& class_names) const {
  nlohmann::json bad_reasons = nlohmann::json::object();
  for (int r = 0; r < preprocess::kBadRowReasons; ++r)
    if (bad_by_reason[r]) bad_reasons[to_string(static_cast<preprocess::BadRowReason>(r))] = bad_by_reason[r];
  nlohmann::json out{{"records", records},
                     {"classified", classified},
                     {"bad", bad()},
                     {"bad_by_reason", bad_reasons},
                     {"text_bytes", text_bytes},
                     {"seconds", seconds},
                     {"records_per_second", seconds > 0 ? static_cast<double>(classified) / seconds : 0.0},
                     {"megabytes_per_second", seconds > 0 ? static_cast<double>(text_bytes) / 1e6 / seconds : 0.0},
                     {"read_seconds", read_seconds},
                     {"encode_seconds", encode_seconds},
                     {"infer_seconds", infer_seconds},
                     {"write_seconds", write_seconds},
                     {"labelled", labelled}};
  if (labelled > 0) out["metrics"] = nlohmann::json::parse(metrics.json(class_names));
  return out.dump();
}

PredictRun::PredictRun(Classifier& classifier, TextEncoder& encoder, PredictionWriter& writer,
                       const PredictRunOptions& options, std::function<void(const std::string&)> write)
    : classifier_(classifier), encoder_(encoder), writer_(writer), options_(options), write_(std::move(write)) {
  if (options_.batch < 1 || options_.batch > classifier_.max_batch())
    throw InputError("--batch-size must be in 1.." + std::to_string(classifier_.max_batch()));
  summary_.metrics = train::Metrics(classifier_.classes());
  probabilities_.resize(static_cast<std::size_t>(options_.batch * classifier_.classes()));
  predicted_.resize(static_cast<std::size_t>(options_.batch));
}

void PredictRun::report(const preprocess::BadRow& bad) {
  ++summary_.bad_by_reason[static_cast<int>(bad.reason)];
  const std::string message = bad.where + ": " + to_string(bad.reason) + (bad.detail.empty() ? "" : ": " + bad.detail);
  if (options_.strict) throw InputError(message + " (--strict)");
  if (options_.quiet) return;
  if (shown_ < options_.max_errors_shown) std::fprintf(stderr, "skipped %s\n", message.c_str());
  if (++shown_ == options_.max_errors_shown + 1)
    std::fprintf(stderr, "further bad records are counted in the summary, not shown (--max-errors-shown)\n");
}

void PredictRun::take_block(const preprocess::Block& block, preprocess::BlockResult& result) {
  summary_.records += static_cast<std::int64_t>(block.records.size());
  auto bad = result.bad.begin();
  std::size_t row = 0;
  for (const preprocess::RawRecord& record : block.records) {
    if (bad != result.bad.end() && bad->ordinal == record.ordinal) {
      report(*bad++);
      continue;
    }
    RowRef ref{record.ordinal, record.line, {}};
    if (options_.id_field >= 0 && static_cast<std::int64_t>(record.field_count) > options_.id_field)
      ref.id = block.field(record, static_cast<std::uint32_t>(options_.id_field));
    refs_.push_back(std::move(ref));
    ++row;
  }
  if (row != result.train.rows()) throw Error("predict: encoded rows do not match the block's good records");
  append_rows(pending_.labels, result.train.labels);
  append_rows(pending_.chars, result.train.chars);
  append_rows(pending_.char_lengths, result.train.char_lengths);
  append_rows(pending_.words, result.train.words);
  append_rows(pending_.word_lengths, result.train.word_lengths);
}

void PredictRun::flush(bool all) {
  const auto batch = static_cast<std::size_t>(options_.batch);
  const std::size_t classes = static_cast<std::size_t>(classifier_.classes());
  std::size_t done = 0;
  while (pending_.rows() - done >= batch || (all && done < pending_.rows())) {
    const std::size_t n = std::min(batch, pending_.rows() - done);
    auto start = Clock::now();
    classifier_.classify(pending_, done, n, probabilities_.data(), predicted_.data());
    summary_.infer_seconds += seconds_since(start);
    start = Clock::now();
    text_.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const RowRef& ref = refs_[done + i];
      const std::int32_t label = pending_.labels[done + i];
      const float* p = probabilities_.data() + i * classes;
      if (label >= 0) {
        ++summary_.labelled;
        summary_.metrics.add(label, predicted_[i], -std::log(static_cast<double>(p[label])));
      }
      writer_.append({ref.record, ref.line, ref.id, label, predicted_[i], p}, text_);
    }
    write_(text_);
    summary_.write_seconds += seconds_since(start);
    summary_.classified += static_cast<std::int64_t>(n);
    done += n;
    throw_if_interrupted();
  }
  if (done == 0) return;
  const auto L = pending_.chars.size() / std::max<std::size_t>(pending_.rows(), 1);
  const auto W = pending_.words.size() / std::max<std::size_t>(pending_.rows(), 1);
  drop_front(pending_.chars, done * L);
  drop_front(pending_.words, done * W);
  drop_front(pending_.labels, done);
  drop_front(pending_.char_lengths, done);
  drop_front(pending_.word_lengths, done);
  drop_front(refs_, done);
}

PredictSummary PredictRun::run(preprocess::RecordReader& reader,
                               const std::function<void(const PredictSummary&)>& progress) {
  const auto begin = Clock::now();
  for (;;) {
    auto start = Clock::now();
    std::optional<preprocess::Block> block = reader.next();
    summary_.read_seconds += seconds_since(start);
    if (!block) break;
    start = Clock::now();
    preprocess::BlockResult result;
    encoder_.encode(*block, result);
    take_block(*block, result);
    summary_.encode_seconds += seconds_since(start);
    flush(false);
    summary_.text_bytes = reader.text_bytes();
    summary_.seconds = seconds_since(begin);
    if (progress) progress(summary_);
  }
  flush(true);
  summary_.text_bytes = reader.text_bytes();
  summary_.seconds = seconds_since(begin);
  return summary_;
}

}  // namespace textscale::predict
