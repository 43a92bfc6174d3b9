// `textscale predict`: raw text (CSV/TSV as preprocess reads it, plain lines, JSON Lines, an IMDB
// folder, standard input) -> a checkpoint's predictions as CSV or JSON Lines, in input order.
#include <boost/program_options.hpp>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"
#include "textscale/predict/classifier.h"
#include "textscale/predict/line_reader.h"
#include "textscale/predict/predict_run.h"
#include "textscale/train/trainer.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

struct PredictArguments {
  std::string checkpoint, input = "-", input_format = "auto", output = "-", output_format = "auto";
  std::string vocab_from, unescape = "auto", label_column = "training", text_columns, delimiter, header = "training";
  std::string summary_json, progress = "auto";
  std::int64_t id_column = -1, top_k = 0, batch = 128;
  int max_errors_shown = 10;
  std::size_t max_row_bytes = 0, block_bytes = 1u << 20;
  bool strict = false, overwrite = false, quiet = false, resume = false, sort_by_length = true;
  BackendArguments backend;
};

// The input's layout: "auto" picks by extension (.jsonl/.ndjson: jsonl, .txt: lines, a folder:
// imdb) and otherwise the training file's layout.
std::string resolve_input_format(const PredictArguments& a, const preprocess::PreprocessOptions& training) {
  if (a.input_format != "auto") return a.input_format;
  std::filesystem::path path(a.input);
  if (path.extension() == ".gz") path = path.stem();
  const std::string extension = path.extension().string();
  if (extension == ".jsonl" || extension == ".ndjson") return "jsonl";
  if (extension == ".txt") return "lines";
  std::error_code error;
  if (a.input != "-" && std::filesystem::is_directory(a.input, error)) return "imdb";
  // A model trained on review folders reads other text one document a line.
  return training.format == preprocess::InputFormat::imdb ? "lines" : to_string(training.format);
}

// The training file's options adjusted to the input's layout and the command line.
preprocess::PreprocessOptions input_options(const PredictArguments& a, const std::string& format,
                                            preprocess::PreprocessOptions o) {
  using preprocess::InputFormat;
  const bool line_format = format == "lines" || format == "jsonl";
  if (format == "zhang") {
    o.format = InputFormat::zhang;
    o.delimiter = ',';
    o.header = false;
    o.quoting = true;
    o.label_column = 0;
    o.labels = preprocess::LabelKind::index1;
  } else if (format == "tsv" || format == "csv") {
    if (o.format != InputFormat::tsv) {  // another layout than the training file's: tsv defaults
      o.delimiter = format == "csv" ? ',' : '\t';
      o.label_column = 0;
      o.text_columns.clear();
      o.labels = o.class_names.empty() ? preprocess::LabelKind::index0 : preprocess::LabelKind::names;
      o.header = false;
    }
    o.format = InputFormat::tsv;
  } else if (format == "imdb") {
    o.format = InputFormat::imdb;
  } else if (!line_format) {
    throw UsageError{"--input-format must be auto, zhang, tsv, csv, lines, jsonl or imdb, not '" + format + "'"};
  }
  if (!a.delimiter.empty()) o.delimiter = parse_delimiter(a.delimiter);
  if (a.header != "training") {
    if (a.header != "true" && a.header != "false") throw UsageError{"--header must be true, false or training"};
    o.header = a.header == "true";
  }
  if (a.label_column == "none") {
    o.label_column = preprocess::kNoLabelColumn;
  } else if (a.label_column != "training") {
    try {
      o.label_column = std::stoi(a.label_column);
    } catch (const std::exception&) {
      throw UsageError{"--label-column must be a 0-based column, none or training, not '" + a.label_column + "'"};
    }
    if (o.label_column < 0) throw UsageError{"--label-column must be a 0-based column, none or training"};
  }
  if (!a.text_columns.empty()) o.text_columns = parse_columns(a.text_columns);
  // JSON strings and a service's texts are text already; files keep the training file's escapes.
  if (a.unescape == "auto") {
    if (format == "jsonl") o.unescape = preprocess::Unescape::none;
  } else if (a.unescape != "training") {
    o.unescape = parse_unescape(a.unescape);
  }
  if (a.max_row_bytes > 0) o.max_row_bytes = a.max_row_bytes;
  o.input = a.input;
  o.strict = a.strict;
  if (a.block_bytes < 1) throw UsageError{"--block-bytes must be at least 1"};
  o.block_bytes = a.block_bytes;
  return o;
}

// Where the predictions go: standard output, or a temporary file beside the output renamed over
// it once everything is written (an existing output is kept until then). With `partial` (--resume)
// the temporary file has that fixed name, is kept when the run stops early, and is reopened at
// `keep_bytes` (what an earlier run wrote; the rest is cut off).
class PredictionOutput {
 public:
  PredictionOutput(const std::string& path, bool overwrite, const std::string& partial = {},
                   std::int64_t keep_bytes = -1)
      : path_(path), keep_(!partial.empty()) {
    if (path == "-") {
      file_ = stdout;
      return;
    }
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) throw InputError("--output '" + path + "' is a folder");
    if (!overwrite && std::filesystem::exists(path, error))
      throw InputError("--output '" + path + "' exists (use --overwrite to replace it)");
    for (const std::string& target : {path, path + ".progress.json"}) (void)remove_stale_temporaries(target);
    temporary_ = keep_ ? partial : temporary_path(path);
    if (keep_bytes >= 0) {
      std::filesystem::resize_file(temporary_, static_cast<std::uintmax_t>(keep_bytes));
      file_ = std::fopen(temporary_.c_str(), "ab");
      bytes_ = keep_bytes;
    } else {
      file_ = std::fopen(temporary_.c_str(), "wb");
    }
    if (!file_) throw IoError(errno_message("cannot write '" + temporary_ + "'", errno));
  }
  PredictionOutput(const PredictionOutput&) = delete;
  PredictionOutput& operator=(const PredictionOutput&) = delete;
  ~PredictionOutput() {
    if (temporary_.empty()) return;
    if (file_) std::fclose(file_);
    if (!keep_) std::remove(temporary_.c_str());
  }
  void write(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
      throw IoError(errno_message("cannot write '" + path_ + "'", errno));
    bytes_ += static_cast<std::int64_t>(text.size());
  }
  // Bytes written so far, all of them handed to the system.
  std::int64_t flush() {
    if (std::fflush(file_) != 0) throw IoError(errno_message("cannot write '" + path_ + "'", errno));
    return bytes_;
  }
  void commit() {
    flush();
    if (temporary_.empty()) return;
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (closed != 0) throw IoError(errno_message("cannot write '" + path_ + "'", errno));
    commit_file(temporary_, path_);
    temporary_.clear();
  }

 private:
  std::string path_, temporary_;
  bool keep_ = false;
  std::FILE* file_ = nullptr;
  std::int64_t bytes_ = 0;
};

// A one-line progress report on a terminal: records, rate, and the time left when the input's
// size is known.
class ProgressLine {
 public:
  ProgressLine(bool enabled, const std::string& input) : enabled_(enabled) {
    std::error_code error;
    if (input != "-" && std::filesystem::is_regular_file(input, error))
      total_bytes_ = std::filesystem::file_size(input, error);
  }
  void update(const predict::PredictSummary& s, std::uint64_t stored_bytes) {
    if (!enabled_ || s.seconds - last_ < 0.5) return;
    last_ = s.seconds;
    std::fprintf(stderr, "\r\033[K%lld records, %.0f records/s, %.1f MB/s", static_cast<long long>(s.records),
                 static_cast<double>(s.classified) / s.seconds, static_cast<double>(s.text_bytes) / 1e6 / s.seconds);
    if (total_bytes_ > 0 && stored_bytes > 0 && stored_bytes <= total_bytes_) {
      const double left =
          s.seconds * static_cast<double>(total_bytes_ - stored_bytes) / static_cast<double>(stored_bytes);
      std::fprintf(stderr, ", %.0f%%, ETA %lld:%02lld",
                   100.0 * static_cast<double>(stored_bytes) / static_cast<double>(total_bytes_),
                   static_cast<long long>(left) / 60, static_cast<long long>(left) % 60);
    }
    shown_ = true;
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool enabled_;
  std::uint64_t total_bytes_ = 0;
  double last_ = 0;
  bool shown_ = false;
};

void add_predict_options(po::options_description& options, PredictArguments& a) {
  options.add_options()("help,h", "show this help")("checkpoint", po::value(&a.checkpoint), "checkpoint file")(
      "input,i", po::value(&a.input)->default_value("-"),
      "input file (.gz read directly), an IMDB folder, or - for standard input")(
      "input-format", po::value(&a.input_format)->default_value("auto"),
      "auto|zhang|tsv|csv|lines|jsonl|imdb; auto: .jsonl/.ndjson JSON Lines, .txt one document a line, a folder "
      "imdb, else the training file's layout")("output,o", po::value(&a.output)->default_value("-"),
                                               "output file (written atomically), or - for standard output")(
      "output-format", po::value(&a.output_format)->default_value("auto"),
      "csv|jsonl; auto: jsonl for a .jsonl output, else csv")("top-k", po::value(&a.top_k)->default_value(0),
                                                              "write the k most probable classes (0: every class)")(
      "overwrite", po::bool_switch(&a.overwrite), "replace an existing output")(
      "resume", po::bool_switch(&a.resume),
      "keep OUTPUT.partial and OUTPUT.progress.json when stopped by a signal, and continue from them when "
      "they exist (a requeued batch job)");
  po::options_description layout("Input layout (default: the training file's, recorded in the checkpoint)");
  layout.add_options()("label-column", po::value(&a.label_column)->default_value("training"),
                       "0-based label column, none for unlabelled rows, or training")(
      "text-columns", po::value(&a.text_columns)->value_name("K,K,..."), "0-based text columns")(
      "id-column", po::value(&a.id_column)->default_value(-1), "0-based column copied to the output as id")(
      "delimiter", po::value(&a.delimiter)->value_name("CHAR"), "field delimiter ('tab' or one character)")(
      "header", po::value(&a.header)->default_value("training"), "true|false|training: the first row is a header")(
      "unescape", po::value(&a.unescape)->default_value("auto"),
      "none|newline|backslash|training; auto: none for JSON Lines, else the training file's")(
      "max-row-bytes", po::value(&a.max_row_bytes)->default_value(0),
      "records longer than this are bad (0: the training file's)")(
      "vocab-from", po::value(&a.vocab_from)->value_name("TRAIN.h5"),
      "the preprocessed training file, for a checkpoint that does not carry its text encoding");
  po::options_description run("Run");
  run.add_options()("batch-size", po::value(&a.batch)->default_value(128), "records a forward pass")(
      "sort-by-length", po::value(&a.sort_by_length)->default_value(true),
      "word models: a block's rows go to the model shortest first (less padding; output order unchanged)")(
      "block-bytes", po::value(&a.block_bytes)->default_value(1u << 20),
      "text a block of records holds at most (and 4096 records): the unit a rank takes; a batch never spans "
      "two blocks")("strict", po::bool_switch(&a.strict), "stop at the first bad record instead of skipping it")(
      "max-errors-shown", po::value(&a.max_errors_shown)->default_value(10), "bad records reported one by one")(
      "summary-json", po::value(&a.summary_json)->value_name("FILE"), "also write the summary as JSON")(
      "progress", po::value(&a.progress)->default_value("auto"),
      "auto|on|off: a progress line on standard error (auto: on a terminal)")("quiet,q", po::bool_switch(&a.quiet),
                                                                              "print only errors");
  a.backend.add(run, "CPU threads (0: all cores)");
  options.add(layout).add(run);
}

// --resume: OUTPUT.partial holds the predictions of the rounds done so far and
// OUTPUT.progress.json how far they go (blocks, bytes, counts) and for which run (input,
// checkpoint and the options that shape the output).
struct ResumePoint {
  std::int64_t blocks = 0, bytes = -1;  // bytes -1: start afresh
  std::vector<double> counts;
};

nlohmann::json file_identity(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  const auto time = std::filesystem::last_write_time(path, error);
  return {{"path", path},
          {"bytes", error ? -1 : static_cast<std::int64_t>(size)},
          {"modified", error ? 0 : static_cast<std::int64_t>(time.time_since_epoch().count())}};
}

std::string run_identity(const PredictArguments& a, const std::string& format, const std::string& output_format) {
  return nlohmann::json{{"input", file_identity(a.input)},
                        {"checkpoint", file_identity(a.checkpoint)},
                        {"input_format", format},
                        {"output_format", output_format},
                        {"top_k", a.top_k},
                        {"label_column", a.label_column},
                        {"text_columns", a.text_columns},
                        {"id_column", a.id_column},
                        {"delimiter", a.delimiter},
                        {"header", a.header},
                        {"unescape", a.unescape},
                        {"max_row_bytes", a.max_row_bytes},
                        {"block_bytes", a.block_bytes},
                        {"sort_by_length", a.sort_by_length},
                        {"vocab_from", a.vocab_from}}
      .dump();
}

ResumePoint load_resume_point(const std::string& progress, const std::string& partial, const std::string& identity) {
  std::error_code error;
  if (!std::filesystem::exists(progress, error)) return {};
  nlohmann::json saved;
  try {
    std::ifstream in(progress);
    saved = nlohmann::json::parse(in);
    if (saved.at("run").get<std::string>() != identity)
      throw InputError(progress +
                       " is the progress of another run (the input, checkpoint or output options "
                       "differ): delete it, or give the same options");
    ResumePoint point{saved.at("blocks").get<std::int64_t>(), saved.at("output_bytes").get<std::int64_t>(),
                      saved.at("counts").get<std::vector<double>>()};
    const auto have = std::filesystem::file_size(partial, error);
    if (error || static_cast<std::int64_t>(have) < point.bytes) {
      TS_LOG(warn, partial << " is shorter than " << progress << " records: starting afresh");
      return {};
    }
    return point;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(progress + ": damaged progress file (" + e.what() + "): delete it to start afresh");
  }
}

void save_resume_point(const std::string& progress, const std::string& identity, const predict::PredictSummary& s,
                       std::int64_t bytes) {
  const std::string temporary = temporary_path(progress);
  {
    std::ofstream out(temporary);
    out << nlohmann::json{{"run", identity}, {"blocks", s.blocks}, {"output_bytes", bytes}, {"counts", s.pack_counts()}}
               .dump()
        << "\n";
    if (!out) throw IoError("cannot write '" + temporary + "'");
  }
  commit_file(temporary, progress);
}

// The input as records: every rank reads all of it. Standard input is read by rank 0 and
// broadcast, so that every rank splits the same bytes into the same records.
std::unique_ptr<preprocess::RecordReader> open_input(const std::string& input, const std::string& format,
                                                     const preprocess::PreprocessOptions& options,
                                                     const predict::Classifier& classifier, dist::Communicator& comm) {
  if (format == "imdb") return preprocess::make_imdb_reader(input, options, false);
  std::unique_ptr<preprocess::ByteSource> source;
  if (input == "-" && comm.size() > 1) {
    source = std::make_unique<preprocess::ByteSource>(
        "<stdin>",
        [&comm](char* destination, std::size_t capacity) -> std::size_t {
          std::uint64_t got = 0;
          while (comm.rank() == 0) {
            const ssize_t n = ::read(STDIN_FILENO, destination, capacity);
            if (n >= 0) {
              got = static_cast<std::uint64_t>(n);
              break;
            }
            if (errno != EINTR) throw IoError(errno_message("cannot read standard input", errno));
          }
          comm.broadcast(&got, sizeof got, 0);
          if (got > 0) comm.broadcast(destination, got, 0);
          return got;
        },
        false);
  } else {
    source = std::make_unique<preprocess::ByteSource>(input, false);
  }
  if (format == "lines" || format == "jsonl")
    return predict::make_line_reader(std::move(source),
                                     format == "jsonl" ? predict::LineFormat::jsonl : predict::LineFormat::lines,
                                     options, classifier.class_names(), classifier.classes());
  return preprocess::make_delimited_reader(std::move(source), options);
}

}  // namespace

int predict_command(const std::vector<std::string>& arguments) {
  PredictArguments a;
  po::options_description options(
      "textscale predict: classify raw text with a checkpoint, in input order\n\n"
      "usage: textscale predict --checkpoint RUN/best.h5 --input reviews.csv --output predictions.csv\n"
      "       mpirun -np N textscale predict ...   (the ranks share the work; one output in input order)");
  add_predict_options(options, a);
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (a.checkpoint.empty()) throw UsageError{"--checkpoint is required"};
  require_range("top-k", a.top_k, 0, std::numeric_limits<std::int64_t>::max(), "0: every class");
  require_range("batch-size", a.batch, 1);
  require_range("id-column", a.id_column, -1, std::numeric_limits<std::int64_t>::max(), "-1: none");
  require_range("max-errors-shown", std::int64_t{a.max_errors_shown}, 0);
  if (a.progress != "auto" && a.progress != "on" && a.progress != "off")
    throw UsageError{"--progress must be auto, on or off"};
  const std::string output_format = a.output_format == "auto"
                                        ? (std::filesystem::path(a.output).extension() == ".jsonl" ? "jsonl" : "csv")
                                        : a.output_format;
  if (output_format != "csv" && output_format != "jsonl")
    throw UsageError{"--output-format must be csv, jsonl or auto"};
  if (a.resume && (a.input == "-" || a.output == "-"))
    throw UsageError{"--resume needs an input file and an output file (not standard input or output)"};
  engine::BackendOptions backend_options = a.backend.options();
  dist::World& world = dist::init_world();
  dist::Communicator& comm = *world.comm;
  if (backend_options.threads == 0) backend_options.threads = train::default_threads(world.local_size);

  const train::CheckpointInfo info = predict::read_classifier_info(a.checkpoint, a.vocab_from);
  const preprocess::PreprocessOptions training = predict::text_options(info);
  const std::string format = resolve_input_format(a, training);
  const preprocess::PreprocessOptions text = input_options(a, format, training);
  // Rank 0 writes: the output (refused early when it exists) and, with --resume, the progress.
  const std::string partial = a.output + ".partial", progress_path = a.output + ".progress.json";
  const std::string identity = a.resume ? run_identity(a, format, output_format) : std::string();
  ResumePoint resume;
  if (a.resume && world.root()) resume = load_resume_point(progress_path, partial, identity);
  std::optional<PredictionOutput> output;
  if (world.root()) output.emplace(a.output, a.overwrite, a.resume ? partial : std::string(), resume.bytes);
  comm.broadcast(&resume.blocks, sizeof resume.blocks, 0);

  predict::Classifier classifier(a.checkpoint, info, {backend_options, a.batch, world.local_rank, world.local_size});
  predict::TextEncoder encoder(info, text);
  std::unique_ptr<preprocess::RecordReader> reader = open_input(a.input, format, encoder.options(), classifier, comm);
  const bool jsonl = format == "jsonl";
  const bool labelled =
      jsonl || format == "imdb" || (format != "lines" && text.label_column != preprocess::kNoLabelColumn);
  predict::PredictionWriter writer(output_format == "jsonl" ? predict::OutputFormat::jsonl : predict::OutputFormat::csv,
                                   classifier.class_names(), a.top_k, jsonl || a.id_column >= 0, labelled);
  predict::PredictRunOptions run_options;
  run_options.batch = a.batch;
  run_options.id_field = jsonl ? 1 : a.id_column;
  run_options.strict = a.strict;
  run_options.max_errors_shown = a.max_errors_shown;
  run_options.quiet = a.quiet;
  run_options.skip_blocks = resume.blocks;
  run_options.sort_by_length = a.sort_by_length;
  predict::PredictRun run(classifier, encoder, writer, run_options, comm);
  if (world.root()) {
    if (resume.bytes > 0) {
      run.resume_counts(resume.counts);
      if (!a.quiet)
        std::fprintf(stderr, "resuming after %lld blocks of input\n", static_cast<long long>(resume.blocks));
    } else {
      output->write(writer.header());
    }
  }
  ProgressLine progress(
      world.root() && (a.progress == "on" || (a.progress == "auto" && !a.quiet && ::isatty(STDERR_FILENO))), a.input);
  const predict::PredictSummary summary = run.run(
      *reader, [&](const std::string& t) { output->write(t); },
      [&](const predict::PredictSummary& s) {
        progress.update(s, reader->stored_bytes());
        if (a.resume) save_resume_point(progress_path, identity, s, output->flush());
      });
  progress.clear();
  if (!world.root()) return 0;
  output->commit();
  if (a.resume) std::filesystem::remove(progress_path);
  if (!a.quiet) std::fprintf(stderr, "%s", summary.text(classifier.class_names()).c_str());
  if (!a.summary_json.empty()) {
    PredictionOutput json(a.summary_json, true);
    json.write(summary.json(classifier.class_names()) + "\n");
    json.commit();
  }
  return 0;
}

}  // namespace textscale::cli
