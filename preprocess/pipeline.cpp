#include "textscale/preprocess/pipeline.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "textscale/common/build_info.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/hdf5.h"
#include "textscale/common/interrupt.h"
#include "textscale/common/log.h"
#include "textscale/common/schema.h"
#include "textscale/data/dataset_file.h"
#include "textscale/preprocess/hdf5_writer.h"
#include "textscale/preprocess/record_reader.h"
#include "textscale/preprocess/row_encoder.h"
#include "textscale/preprocess/source.h"
#include "textscale/preprocess/token_spool.h"

namespace textscale::preprocess {

std::int64_t PreprocessSummary::bad_rows() const {
  return std::accumulate(bad_by_reason.begin(), bad_by_reason.end(), std::int64_t{0});
}

namespace {

std::unique_ptr<RecordReader> open_reader(const std::string& input, const PreprocessOptions& options, bool hash) {
  if (options.format == InputFormat::imdb) return make_imdb_reader(input, options, hash);
  return make_delimited_reader(input, options, hash);
}

// One pass over the input: a reader thread cuts blocks, `threads` workers transform them, and
// the calling thread receives the results in input order. At most `capacity` blocks are alive at
// once, which bounds memory.
class Pass {
 public:
  using Work = std::function<void(int worker, const Block&, BlockResult&)>;
  using Consume = std::function<void(BlockResult&)>;

  Pass(RecordReader& reader, int threads) : reader_(reader), threads_(threads), capacity_(2 * threads + 2) {}

  void run(const Work& work, const Consume& consume) {
    std::thread reader;
    std::vector<std::thread> workers;
    try {
      reader = std::thread([&] {
        guard([&] { read(); });
        reader_done_ = true;
      });
      for (int w = 0; w < threads_; ++w) workers.emplace_back([&, w] { guard([&] { encode(w, work); }); });
    } catch (const std::system_error& error) {
      // The system refused a thread (a process limit): stop the ones started, then report.
      guard([&] {
        throw IoError("cannot start " + std::to_string(threads_ + 1) + " preprocessing threads (--threads " +
                      std::to_string(threads_) + "): " + error.what());
      });
      reader_done_ = reader_done_ || !reader.joinable();
    }
    guard([&] { deliver(consume); });
    // After an interrupt the reader may be blocked reading a pipe: signal it until it notices.
    while (interrupt_signal() != 0 && !reader_done_) {
      pthread_kill(reader.native_handle(), interrupt_signal());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (reader.joinable()) reader.join();
    for (auto& worker : workers) worker.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      aborted_ = true;
      changed_.notify_all();
    }
  }

  void read() {
    std::int64_t sequence = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return aborted_ || in_flight_ < capacity_; });
        if (aborted_) return;
      }
      throw_if_interrupted();
      std::optional<Block> block = reader_.next();
      std::lock_guard<std::mutex> lock(mutex_);
      if (!block) {
        blocks_total_ = sequence;
        changed_.notify_all();
        return;
      }
      block->sequence = sequence++;
      ++in_flight_;
      pending_.push_back(std::move(*block));
      changed_.notify_all();
    }
  }

  void encode(int worker, const Work& work) {
    for (;;) {
      Block block;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return aborted_ || !pending_.empty() || blocks_total_ >= 0; });
        if (aborted_ || pending_.empty()) return;
        block = std::move(pending_.front());
        pending_.pop_front();
      }
      BlockResult result;
      work(worker, block, result);
      result.sequence = block.sequence;
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(result.sequence, std::move(result));
      changed_.notify_all();
    }
  }

  void deliver(const Consume& consume) {
    for (std::int64_t next = 0;; ++next) {
      BlockResult result;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        // Polls for SIGINT/SIGTERM: the signal may land on any thread.
        while (!changed_.wait_for(lock, std::chrono::milliseconds(100),
                                  [&] { return aborted_ || done_.count(next) || blocks_total_ == next; }))
          throw_if_interrupted();
        if (aborted_ || blocks_total_ == next) return;
        auto found = done_.find(next);
        result = std::move(found->second);
        done_.erase(found);
        --in_flight_;
        changed_.notify_all();
      }
      consume(result);
    }
  }

  RecordReader& reader_;
  int threads_;
  int capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Block> pending_;
  std::map<std::int64_t, BlockResult> done_;
  int in_flight_ = 0;
  std::int64_t blocks_total_ = -1;  // known once the reader is done
  bool aborted_ = false;
  std::atomic<bool> reader_done_{false};
  std::exception_ptr error_;
};

// Bad-row bookkeeping shared by both passes (only the first pass reports).
class BadRowLog {
 public:
  BadRowLog(const PreprocessOptions& options, PreprocessSummary& summary) : options_(options), summary_(summary) {}
  void add(const std::vector<BadRow>& rows) {
    for (const BadRow& row : rows) {
      if (options_.strict)
        throw InputError(row.where + ": " + to_string(row.reason) + ": " + row.detail + " (--strict)");
      ++summary_.bad_by_reason[static_cast<int>(row.reason)];
      if (static_cast<int>(summary_.first_bad.size()) < options_.max_errors_shown) {
        summary_.first_bad.push_back(row);
        if (!options_.quiet)
          TS_LOG(warn, row.where << ": " << to_string(row.reason) << ": " << row.detail << " (row skipped)");
      }
    }
  }

 private:
  const PreprocessOptions& options_;
  PreprocessSummary& summary_;
};

// Whether `path` names something that can be read only once (after symlinks): a pipe, FIFO,
// socket or character device. Anything else, or a path that cannot be examined, goes to the
// reader, which reports what is wrong with it.
bool is_stream(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 &&
         (S_ISFIFO(info.st_mode) || S_ISCHR(info.st_mode) || S_ISSOCK(info.st_mode));
}

// Standard input, a pipe or a FIFO cannot be read twice: copy it to a temporary file beside the
// output first.
class StreamCopy {
 public:
  // `input`: "-" for standard input, else the path of the pipe or FIFO.
  StreamCopy(const std::string& input, const std::string& output) : path_(output + ".stdin-" + process_tag()) {
    const std::string name = input == "-" ? std::string("standard input") : "input '" + input + "'";
    int fd = STDIN_FILENO;
    if (input != "-") {
      while ((fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC)) < 0 && errno == EINTR) throw_if_interrupted();
      if (fd < 0) throw IoError(errno_message("cannot open " + name, errno));
    }
    const auto close_input = [&] {
      if (fd != STDIN_FILENO) ::close(fd);
    };
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(path_.c_str(), "wb"), std::fclose);
    if (!out) {
      close_input();
      throw IoError(errno_message("cannot create temporary file '" + path_ + "'", errno));
    }
    try {
      std::vector<char> buffer(1u << 20);
      for (;;) {
        throw_if_interrupted();
        const ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) {
          throw_if_interrupted();
          continue;
        }
        if (got < 0) throw IoError(errno_message("cannot read " + name, errno));
        if (got == 0) break;
        if (std::fwrite(buffer.data(), 1, static_cast<std::size_t>(got), out.get()) != static_cast<std::size_t>(got))
          throw IoError(errno_message("cannot write temporary file '" + path_ + "'", errno));
      }
      if (std::fclose(out.release()) != 0)
        throw IoError(errno_message("cannot write temporary file '" + path_ + "'", errno));
    } catch (...) {
      close_input();
      out.reset();
      std::remove(path_.c_str());
      throw;
    }
    close_input();
  }
  StreamCopy(const StreamCopy&) = delete;
  StreamCopy& operator=(const StreamCopy&) = delete;
  ~StreamCopy() { std::remove(path_.c_str()); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// What a test split takes from its training file (--vocab-from).
struct TrainingFile {
  Vocabulary vocabulary;
  std::vector<std::string> classes;
  std::int64_t num_classes = 0;
  std::int64_t min_count = 1;
};

TrainingFile load_training_file(const std::string& path) {
  const data::DatasetFile file(path, {.name = "--vocab-from '" + path + "'", .chunk_cache_bytes = 0});
  const std::string tokenizer = file.text_attribute("tokenizer").value_or("");
  if (tokenizer.empty()) throw InputError(file.name() + ": attribute 'tokenizer' is missing");
  if (tokenizer != kTokenizerName)
    throw InputError(file.name() + ": its tokenizer is '" + tokenizer + "', this build uses '" +
                     std::string(kTokenizerName) + "'");
  TrainingFile training;
  training.vocabulary = naming_file(
      file.name(), "", [&] { return Vocabulary::from_words(file.read_vocabulary(), file.read_vocab_counts()); });
  training.classes = file.classes();
  training.num_classes = file.num_classes();
  training.min_count = file.int_attribute("min_count").value_or(1);
  return training;
}

// Words of a block from the counting pass's spool: entry numbers mapped to vocabulary ids.
void fill_words(const TokenSpool::Segment& segment, const std::vector<std::int32_t>& ids, std::size_t W,
                BlockResult& result) {
  const auto changed = [] { return InputError("the input changed between passes"); };
  if (segment.rows.size() != result.train.rows() + result.valid.rows()) throw changed();
  for (EncodedRows* rows : {&result.train, &result.valid}) {
    rows->words.assign(rows->rows() * W, Vocabulary::kPadding);
    rows->word_lengths.clear();
    rows->word_lengths.reserve(rows->rows());
  }
  std::size_t at = 0;
  for (const std::uint32_t value : segment.rows) {
    EncodedRows& rows = (value & 1u) ? result.valid : result.train;
    const std::size_t kept = value >> 1;
    const std::size_t row = rows.word_lengths.size();
    if (row >= rows.rows() || kept > W || at + kept > segment.entries.size()) throw changed();
    std::int32_t* out = rows.words.data() + row * W;
    for (std::size_t k = 0; k < kept; ++k) out[k] = ids[segment.entries[at + k]];
    at += kept;
    rows.word_lengths.push_back(static_cast<std::int32_t>(kept));
  }
}

std::string options_json(const PreprocessOptions& o) {
  const nlohmann::json json = {
      {"input", o.input},
      {"format", to_string(o.format)},
      {"output", o.output},
      {"delimiter", std::string(1, o.delimiter)},
      {"header", o.header},
      {"quoting", o.quoting},
      {"label_column", o.label_column},
      {"text_columns", o.text_columns},
      {"labels", to_string(o.labels)},
      {"classes", o.classes_file},
      {"unescape", to_string(o.unescape)},
      {"chars", o.chars},
      {"char_length", o.char_length},
      {"words", o.words},
      {"word_length", o.word_length},
      {"vocab_size", o.vocab_size},
      {"min_count", o.min_count},
      {"vocab_from", o.vocab_from},
      {"shuffle", o.shuffle},
      {"seed", o.seed},
      {"validation_fraction", o.validation_fraction},
      {"validation_output", o.validation_output},
      {"strict", o.strict},
      {"max_row_bytes", o.max_row_bytes},
      {"compress", o.compression},
  };
  return json.dump();
}

std::string now_iso8601() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

void write_metadata(RowFileWriter& writer, const std::string& split, std::uint64_t shuffle_seed,
                    std::int64_t training_classes, const PreprocessOptions& o, const PreprocessSummary& summary,
                    const CharQuantizer& quantizer, const Vocabulary* vocabulary, const std::string& source_name) {
  const hid_t file = writer.file();
  using h5::write_attribute;
  write_attribute(file, "schema_version", kSchemaVersion);
  write_attribute(file, "created_by", version_line());
  write_attribute(file, "libraries", build_info().libraries);
  write_attribute(file, "created", now_iso8601());
  write_attribute(file, "split", split);
  write_attribute(file, "num_rows", static_cast<std::int64_t>(writer.rows()));
  write_attribute(file, "num_bad_rows", summary.bad_rows());
  // Without class names: the largest label + 1, but never fewer than the training file's
  // (a test split may lack the last class).
  std::int64_t num_classes = static_cast<std::int64_t>(o.class_names.size());
  if (num_classes == 0)
    num_classes = std::max(static_cast<std::int64_t>(writer.class_counts().size()), training_classes);
  write_attribute(file, "num_classes", num_classes);
  write_attribute(file, "classes", o.class_names);
  write_attribute(file, "source_file", source_name);
  write_attribute(file, "source_sha256", summary.sha256);
  write_attribute(file, "source_bytes", static_cast<std::int64_t>(summary.stored_bytes));
  write_attribute(file, "input_format", std::string(to_string(o.format)));
  write_attribute(file, "unescape", std::string(to_string(o.unescape)));
  write_attribute(file, "options", options_json(o));
  write_attribute(file, "shuffle_seed", o.shuffle ? static_cast<std::int64_t>(shuffle_seed) : std::int64_t{-1});
  write_attribute(file, "validation_fraction", o.validation_fraction);
  write_attribute(file, "validation_seed", static_cast<std::int64_t>(o.seed));
  if (o.chars) {
    write_attribute(file, "alphabet", quantizer.alphabet());
    write_attribute(file, "char_length", static_cast<std::int64_t>(o.char_length));
    write_attribute(file, "char_order", std::string("reversed"));
  }
  if (o.words) {
    write_attribute(file, "word_length", static_cast<std::int64_t>(o.word_length));
    write_attribute(file, "vocab_size", static_cast<std::int64_t>(vocabulary->size()));
    write_attribute(file, "min_count", o.min_count);
    write_attribute(file, "tokenizer", std::string(kTokenizerName));
    write_attribute(file, "vocab_source", o.vocab_from.empty() ? std::string("self") : o.vocab_from);
    h5::write_string_dataset(file, "vocab", vocabulary->words());
    const hsize_t count = vocabulary->size();
    h5::Handle space(TS_CHECK_HDF5(H5Screate_simple(1, &count, nullptr)));
    // One chunk, for the Fletcher-32 checksum HDF5 verifies on reading.
    h5::Handle create(TS_CHECK_HDF5(H5Pcreate(H5P_DATASET_CREATE)));
    if (count > 0) {
      TS_CHECK_HDF5(H5Pset_chunk(create.get(), 1, &count));
      TS_CHECK_HDF5(H5Pset_fletcher32(create.get()));
    }
    h5::Handle dataset(TS_CHECK_HDF5(
        H5Dcreate2(file, "vocab_counts", H5T_STD_I64LE, space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT)));
    TS_CHECK_HDF5(
        H5Dwrite(dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vocabulary->counts().data()));
  }
  // What the content digest covers besides the rows: the attributes and datasets written above.
  writer.describe_content({num_classes, &o.class_names, o.chars ? quantizer.alphabet() : std::string(),
                           o.words ? &vocabulary->words() : nullptr});
}

// Refuses early, before any work, an output that exists (without --overwrite) or is a folder.
void refuse_existing_outputs(const PreprocessOptions& o) {
  for (const std::string& path : {o.output, o.validation_output}) {
    std::error_code error;
    const auto status = std::filesystem::symlink_status(path, error);
    if (path.empty() || !std::filesystem::exists(status)) continue;
    if (std::filesystem::is_directory(status)) throw InputError("output '" + path + "' is a folder");
    if (!o.overwrite) throw InputError("output '" + path + "' exists (use --overwrite to replace it)");
  }
}

// Removes what a killed preprocess left beside the outputs (remove_stale_temporaries).
void remove_stale_outputs(const PreprocessOptions& o) {
  for (const std::string& path : {o.output, o.validation_output})
    if (!path.empty()) (void)remove_stale_temporaries(path);
}

// --vocab-from: the training file's vocabulary into `vocabulary`, its minimum count and (unless
// given) its class names into `options`; returns its number of classes (0 without --vocab-from).
std::int64_t adopt_training_file(PreprocessOptions& options, Vocabulary& vocabulary) {
  if (options.vocab_from.empty()) return 0;
  TrainingFile training = load_training_file(options.vocab_from);
  vocabulary = std::move(training.vocabulary);
  options.min_count = training.min_count;  // recorded as the vocabulary's
  if (options.class_names.empty()) options.class_names = std::move(training.classes);
  return training.num_classes;
}

}  // namespace

PreprocessSummary run_preprocess(PreprocessOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  h5::silence_automatic_error_printing();
  resolve(options);
  const PreprocessOptions& o = options;
  PreprocessSummary summary;

  refuse_existing_outputs(o);
  remove_stale_outputs(o);

  const bool count_pass = o.words && o.vocab_from.empty();
  std::optional<StreamCopy> stream_copy;
  std::string input = o.input;
  if (count_pass && o.format != InputFormat::imdb && (input == "-" || is_stream(input))) {
    stream_copy.emplace(input, o.output);
    input = stream_copy->path();
  }
  const std::string source_name = o.input == "-" ? "<stdin>" : o.input;

  const CharQuantizer quantizer;
  Vocabulary vocabulary;
  std::int64_t training_classes = adopt_training_file(options, vocabulary);
  std::vector<std::unique_ptr<RowEncoder>> encoders;
  for (int t = 0; t < o.threads; ++t) encoders.push_back(std::make_unique<RowEncoder>(o, quantizer));
  BadRowLog bad_rows(o, summary);

  const auto finish_reader = [&](const RecordReader& reader) {
    summary.input_bytes = reader.text_bytes();
    summary.stored_bytes = reader.stored_bytes();
    if (summary.sha256.empty()) summary.sha256 = reader.sha256_hex();
  };

  // Rows per output, known after the counting pass: the writers then preallocate their files.
  std::optional<std::int64_t> train_rows, valid_rows;
  // The counting pass's word entries, and per counting thread its entries' final ids.
  std::optional<TokenSpool> spool;
  std::vector<std::vector<std::int32_t>> entry_ids;
  if (count_pass) {
    train_rows = 0;
    valid_rows = 0;
    spool.emplace(o.output + ".tokens-" + process_tag());
    auto reader = open_reader(input, o, true);
    std::vector<TokenCounter> counters(static_cast<std::size_t>(o.threads));
    Pass pass(*reader, o.threads);
    pass.run(
        [&](int w, const Block& block, BlockResult& result) {
          encoders[static_cast<std::size_t>(w)]->count(block, counters[static_cast<std::size_t>(w)], result);
          result.worker = w;
        },
        [&](BlockResult& result) {
          summary.records += result.records;
          *train_rows += result.train_rows;
          *valid_rows += result.valid_rows;
          bad_rows.add(result.bad);
          spool->append(TokenSpool::Segment{static_cast<std::uint32_t>(result.worker), std::move(result.token_rows),
                                            std::move(result.token_entries)});
        });
    finish_reader(*reader);
    ++summary.passes;
    // Merging appends to thread 0's index, so every thread's entry numbers stay valid.
    for (std::size_t t = 1; t < counters.size(); ++t) counters[0].merge(counters[t]);
    summary.distinct_words = static_cast<std::int64_t>(counters[0].distinct());
    vocabulary = Vocabulary::build(counters[0], o.vocab_size, o.min_count);
    throw_if_interrupted();
    for (const TokenCounter& counter : counters) {
      std::vector<std::int32_t>& ids = entry_ids.emplace_back(counter.index().size());
      for (std::uint32_t e = 0; e < ids.size(); ++e) ids[e] = vocabulary.id(counter.index().word(e));
    }
    summary.count_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  if (o.words) summary.vocabulary_size = static_cast<std::int64_t>(vocabulary.size());

  const auto encode_start = Clock::now();
  const RowLayout layout{o.chars, o.char_length, o.words, o.word_length, o.compression};
  if (train_rows && *train_rows == 0) throw InputError("input '" + source_name + "' holds no usable row");
  RowFileWriter train(o.output, layout, o.overwrite, o.shuffle, o.seed, train_rows);
  std::optional<RowFileWriter> valid;
  if (!o.validation_output.empty())
    valid.emplace(o.validation_output, layout, o.overwrite, o.shuffle, o.seed + 1, valid_rows);
  {
    auto reader = open_reader(input, o, !count_pass);
    Pass pass(*reader, o.threads);
    // Words come from the counting pass's spool when it kept them, else the threads encode them.
    const Vocabulary* words = o.words && !spool ? &vocabulary : nullptr;
    std::vector<TokenSpool::Segment> segments(static_cast<std::size_t>(o.threads));
    std::vector<TokenSpool::Buffer> buffers(static_cast<std::size_t>(o.threads));
    std::int64_t records = 0;
    pass.run(
        [&](int w, const Block& block, BlockResult& result) {
          const auto t = static_cast<std::size_t>(w);
          encoders[t]->encode(block, words, result);
          if (spool) {
            spool->read(static_cast<std::size_t>(block.sequence), segments[t], buffers[t]);
            fill_words(segments[t], entry_ids.at(segments[t].worker), static_cast<std::size_t>(o.word_length), result);
          }
        },
        [&](BlockResult& result) {
          records += result.records;
          if (!count_pass) bad_rows.add(result.bad);
          train.append(result.train);
          if (valid) valid->append(result.valid);
        });
    if (!count_pass) {
      summary.records = records;
      finish_reader(*reader);
    } else if (records != summary.records) {
      throw InputError("input '" + source_name + "' changed between passes (" + std::to_string(summary.records) +
                       " then " + std::to_string(records) + " records)");
    }
    ++summary.passes;
  }
  if (train.rows() == 0) throw InputError("input '" + source_name + "' holds no usable row");
  if (valid && valid->rows() == 0)
    throw InputError("the validation split of '" + source_name + "' holds no row (raise --validation-fraction)");
  // Both files count the same classes: a class that only one split happens to hold is still a class
  // of the other.
  training_classes = std::max({training_classes, static_cast<std::int64_t>(train.class_counts().size()),
                               valid ? static_cast<std::int64_t>(valid->class_counts().size()) : std::int64_t{0}});

  const auto commit_start = Clock::now();
  summary.encode_seconds = std::chrono::duration<double>(commit_start - encode_start).count();
  write_metadata(train, o.split, o.seed, training_classes, o, summary, quantizer, o.words ? &vocabulary : nullptr,
                 source_name);
  if (valid)
    write_metadata(*valid, "valid", o.seed + 1, training_classes, o, summary, quantizer,
                   o.words ? &vocabulary : nullptr, source_name);
  summary.train = {o.output, train.rows(), train.class_counts()};
  if (valid) summary.valid = {o.validation_output, valid->rows(), valid->class_counts()};
  // Both files are complete on disk before either takes its name.
  throw_if_interrupted();
  train.finish();
  if (valid) valid->finish();
  throw_if_interrupted();
  // The validation file first: if the training file then cannot take its name, the new
  // validation file is removed again rather than left beside an older training file.
  if (valid) valid->publish();
  try {
    train.publish();
  } catch (...) {
    if (valid) std::remove(o.validation_output.c_str());
    throw;
  }
  const auto end = Clock::now();
  summary.commit_seconds = std::chrono::duration<double>(end - commit_start).count();
  summary.seconds = std::chrono::duration<double>(end - start).count();
  return summary;
}

std::string format_summary(const PreprocessSummary& s, const PreprocessOptions& o) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  const double mb = static_cast<double>(s.input_bytes) / 1e6;
  out << "read " << s.records << " rows (" << mb << " MB of text) in " << s.seconds
      << " s: " << (s.seconds > 0 ? mb / s.seconds : 0.0) << " MB/s, "
      << (s.seconds > 0 ? static_cast<double>(s.records) / s.seconds : 0.0) << " rows/s, " << s.passes
      << (s.passes == 1 ? " pass" : " passes") << " (";
  out << std::setprecision(2);
  if (s.passes > 1) out << "vocabulary " << s.count_seconds << " s, ";
  out << "encoding " << s.encode_seconds << " s, writing " << s.commit_seconds << " s)\n" << std::setprecision(1);
  out << "bad rows: " << s.bad_rows();
  for (int r = 0; r < kBadRowReasons; ++r)
    if (s.bad_by_reason[r]) out << "; " << to_string(static_cast<BadRowReason>(r)) << " " << s.bad_by_reason[r];
  if (s.bad_rows() > static_cast<std::int64_t>(s.first_bad.size()))
    out << " (first " << s.first_bad.size() << " shown above)";
  out << "\n";
  const auto describe = [&](const OutputSummary& output) {
    out << "wrote " << output.path << ": " << output.rows << " rows; per class";
    // At most kShownClasses of them: the line stays short whatever the number of classes.
    constexpr std::size_t kShownClasses = 20;
    const std::size_t classes = output.class_counts.size();
    for (std::size_t c = 0; c < std::min(classes, kShownClasses); ++c) {
      out << (c ? ", " : " ");
      if (c < o.class_names.size())
        out << o.class_names[c] << "=";
      else
        out << c << "=";
      out << output.class_counts[c];
    }
    if (classes > kShownClasses) out << ", ... (" << classes << " classes)";
    const auto empty = std::count(output.class_counts.begin(), output.class_counts.end(), std::int64_t{0});
    if (empty > 0) out << "; " << empty << " class(es) with no row";
    out << "\n";
  };
  describe(s.train);
  if (!s.valid.path.empty()) describe(s.valid);
  if (o.chars) out << "chars: uint8 [N, " << o.char_length << "], Zhang alphabet (69 symbols), reversed\n";
  if (o.words)
    out << "words: int32 [N, " << o.word_length << "], vocabulary " << s.vocabulary_size << " ids"
        << (s.distinct_words ? " (of " + std::to_string(s.distinct_words) + " distinct training words)" : std::string())
        << "\n";
  out << "source sha256 " << s.sha256 << "\n";
  return out.str();
}

}  // namespace textscale::preprocess
