#include "textscale/predict/predict_run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <numeric>
#include <optional>
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

std::vector<double> PredictSummary::pack_counts() const {
  std::vector<double> packed{static_cast<double>(records), static_cast<double>(classified),
                             static_cast<double>(labelled)};
  for (const auto count : bad_by_reason) packed.push_back(static_cast<double>(count));
  for (const double value : metrics.pack()) packed.push_back(value);
  return packed;
}

void PredictSummary::add_counts(const std::vector<double>& packed) {
  const std::size_t head = 3 + bad_by_reason.size();
  if (packed.size() != head + metrics.pack().size())
    throw InputError("predict: the saved counts do not fit this model");
  records += static_cast<std::int64_t>(packed[0]);
  classified += static_cast<std::int64_t>(packed[1]);
  labelled += static_cast<std::int64_t>(packed[2]);
  for (std::size_t r = 0; r < bad_by_reason.size(); ++r) bad_by_reason[r] += static_cast<std::int64_t>(packed[3 + r]);
  train::Metrics more = metrics;  // the same classes; unpack replaces its counts
  more.unpack(std::vector<double>(packed.begin() + static_cast<std::ptrdiff_t>(head), packed.end()));
  metrics.merge(more);
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
                       const PredictRunOptions& options, dist::Communicator& comm)
    : classifier_(classifier), encoder_(encoder), writer_(writer), options_(options), comm_(comm) {
  if (options_.batch < 1 || options_.batch > classifier_.max_batch())
    throw OptionError("--batch-size must be in 1.." + std::to_string(classifier_.max_batch()));
  round_.metrics = train::Metrics(classifier_.classes());
  total_.metrics = train::Metrics(classifier_.classes());
}

void PredictRun::report(const preprocess::BadRow& bad) {
  ++round_.bad_by_reason[static_cast<int>(bad.reason)];
  const std::string message = bad.where + ": " + to_string(bad.reason) + (bad.detail.empty() ? "" : ": " + bad.detail);
  if (options_.strict) throw InputError(message + " (--strict)");
  if (options_.quiet) return;
  if (shown_ < options_.max_errors_shown) std::fprintf(stderr, "skipped %s\n", message.c_str());
  if (++shown_ == options_.max_errors_shown + 1)
    std::fprintf(stderr, "further bad records are counted in the summary, not shown (--max-errors-shown)\n");
}

void PredictRun::take_block(const preprocess::Block& block, preprocess::BlockResult& result) {
  round_.records += static_cast<std::int64_t>(block.records.size());
  refs_.clear();
  auto bad = result.bad.begin();
  for (const preprocess::RawRecord& record : block.records) {
    if (bad != result.bad.end() && bad->ordinal == record.ordinal) {
      report(*bad++);
      continue;
    }
    RowRef ref{record.ordinal, record.line, {}};
    if (options_.id_field >= 0 && static_cast<std::int64_t>(record.field_count) > options_.id_field)
      ref.id = block.field(record, static_cast<std::uint32_t>(options_.id_field));
    refs_.push_back(std::move(ref));
  }
  if (refs_.size() != result.train.rows()) throw Error("predict: encoded rows do not match the block's good records");
  pending_ = std::move(result.train);
}

void PredictRun::sort_pending() {
  const std::size_t rows = pending_.rows();
  order_.resize(rows);
  std::iota(order_.begin(), order_.end(), std::size_t{0});
  sorted_ = !pending_.word_lengths.empty() && options_.sort_by_length;
  if (!sorted_) return;
  std::stable_sort(order_.begin(), order_.end(),
                   [&](std::size_t a, std::size_t b) { return pending_.word_lengths[a] < pending_.word_lengths[b]; });
  const std::size_t W = pending_.words.size() / std::max<std::size_t>(rows, 1);
  by_length_.words.resize(pending_.words.size());
  by_length_.word_lengths.resize(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    std::copy_n(pending_.words.begin() + static_cast<std::ptrdiff_t>(order_[i] * W), W,
                by_length_.words.begin() + static_cast<std::ptrdiff_t>(i * W));
    by_length_.word_lengths[i] = pending_.word_lengths[order_[i]];
  }
  by_length_.labels.assign(rows, -1);  // rows() counts labels
}

void PredictRun::classify_pending(std::string& out) {
  const auto batch = static_cast<std::size_t>(options_.batch);
  const auto classes = static_cast<std::size_t>(classifier_.classes());
  const std::size_t rows = pending_.rows();
  auto start = Clock::now();
  sort_pending();
  probabilities_.resize(rows * classes);
  predicted_.resize(rows);
  // Batches in order (or by length), results in sorted position; then written in input order.
  const preprocess::EncodedRows& source = sorted_ ? by_length_ : pending_;
  for (std::size_t done = 0; done < rows; done += batch) {
    const std::size_t n = std::min(batch, rows - done);
    classifier_.classify(source, done, n, probabilities_.data() + done * classes, predicted_.data() + done);
  }
  position_.resize(rows);
  for (std::size_t i = 0; i < rows; ++i) position_[order_[i]] = i;
  total_.infer_seconds += seconds_since(start);
  start = Clock::now();
  for (std::size_t row = 0; row < rows; ++row) {
    const std::size_t at = position_[row];
    const RowRef& ref = refs_[row];
    const std::int32_t label = pending_.labels[row];
    const float* p = probabilities_.data() + at * classes;
    if (label >= 0) {
      ++round_.labelled;
      round_.metrics.add(label, predicted_[at], -std::log(static_cast<double>(p[label])));
    }
    writer_.append({ref.record, ref.line, ref.id, label, predicted_[at], p}, out);
  }
  total_.write_seconds += seconds_since(start);
  round_.classified += static_cast<std::int64_t>(rows);
}

std::string PredictRun::process(const preprocess::Block& block) {
  const auto start = Clock::now();
  preprocess::BlockResult result;
  encoder_.encode(block, result);
  take_block(block, result);
  total_.encode_seconds += seconds_since(start);
  std::string out;
  classify_pending(out);
  return out;
}

PredictSummary PredictRun::run(preprocess::RecordReader& reader, const std::function<void(const std::string&)>& write,
                               const std::function<void(const PredictSummary&)>& after_round) {
  const auto begin = Clock::now();
  const int ranks = comm_.size(), rank = comm_.rank();
  const auto next = [&] {
    const auto start = Clock::now();
    std::optional<preprocess::Block> block = reader.next();
    total_.read_seconds += seconds_since(start);
    return block;
  };
  for (std::int64_t b = 0; b < options_.skip_blocks; ++b)
    if (!next())
      throw InputError("the input has fewer blocks than the run being resumed wrote (" +
                       std::to_string(options_.skip_blocks) + "): it changed");
  total_.blocks = options_.skip_blocks;
  for (;;) {
    // One round: the next N blocks, one a rank.
    std::optional<preprocess::Block> mine;
    int got = 0;
    for (; got < ranks; ++got) {
      std::optional<preprocess::Block> block = next();
      if (!block) break;
      if (got == rank) mine = std::move(block);
    }
    if (got == 0) break;
    const std::string text = mine ? process(*mine) : std::string();
    const auto start = Clock::now();
    if (ranks == 1) {
      write(text);
    } else {
      const std::vector<std::string> parts = comm_.gather(text, 0);
      for (const std::string& part : parts) write(part);
    }
    total_.write_seconds += seconds_since(start);
    // The round's counts over the ranks, and whether any rank was interrupted.
    std::vector<double> counts = round_.pack_counts();
    counts.push_back(interrupt_signal());
    comm_.allreduce(counts.data(), counts.size(), dist::ReduceOp::sum);
    const int signal = counts.back() > 0 ? (interrupt_signal() ? interrupt_signal() : 15) : 0;
    counts.pop_back();
    total_.add_counts(counts);
    round_ = PredictSummary{};
    round_.metrics = train::Metrics(classifier_.classes());
    total_.blocks += got;
    total_.text_bytes = reader.text_bytes();
    total_.seconds = seconds_since(begin);
    if (rank == 0 && after_round) after_round(total_);
    if (signal) throw Interrupted(signal, true);
    if (got < ranks) break;
  }
  total_.text_bytes = reader.text_bytes();
  total_.seconds = seconds_since(begin);
  return total_;
}

}  // namespace textscale::predict
