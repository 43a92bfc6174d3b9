#include "textscale/preprocess/options.h"

#include <filesystem>
#include <thread>

#include "textscale/common/error.h"
#include "textscale/common/schema.h"
#include "textscale/data/dataset_file.h"
#include "textscale/preprocess/labels.h"

namespace textscale::preprocess {

const char* to_string(InputFormat format) {
  switch (format) {
    case InputFormat::zhang:
      return "zhang";
    case InputFormat::tsv:
      return "tsv";
    case InputFormat::imdb:
      return "imdb";
  }
  return "?";
}

const char* to_string(Unescape unescape) {
  switch (unescape) {
    case Unescape::none:
      return "none";
    case Unescape::newline:
      return "newline";
    case Unescape::backslash:
      return "backslash";
  }
  return "?";
}

const char* to_string(LabelKind kind) {
  switch (kind) {
    case LabelKind::index0:
      return "index0";
    case LabelKind::index1:
      return "index1";
    case LabelKind::names:
      return "names";
  }
  return "?";
}

std::string default_validation_path(const std::string& output) {
  std::filesystem::path path(output);
  const std::string extension = path.extension().string();
  if (extension == ".h5" || extension == ".hdf5")
    return (path.parent_path() / path.stem()).string() + ".valid" + extension;
  return output + ".valid.h5";
}

namespace {

// Bounds that keep a mistyped option from allocating gigabytes or overflowing an index: far
// beyond any real corpus's needs.
constexpr int kMaxColumn = 4095;
constexpr int kMaxLength = 1 << 20;             // characters or words a row
constexpr std::size_t kMaxRowBytes = 1u << 30;  // field offsets are 32-bit
constexpr int kMaxThreads = 1024;

// The same file, as far as the paths tell (a path that cannot be resolved is not the same).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code error_a, error_b;
  const auto canonical_a = std::filesystem::weakly_canonical(a, error_a);
  const auto canonical_b = std::filesystem::weakly_canonical(b, error_b);
  return !error_a && !error_b && canonical_a == canonical_b;
}

}  // namespace

void resolve(PreprocessOptions& o) {
  namespace fs = std::filesystem;
  if (o.input.empty()) throw OptionError("--input is required");
  if (o.output.empty()) throw OptionError("--output is required");
  if (o.input != "-" && same_file(o.input, o.output)) throw OptionError("--output must differ from --input");
  // The values alone first: a wrong one is refused before any file is read.
  if (o.label_column < 0 || o.label_column > kMaxColumn)
    throw OptionError("--label-column must be in 0.." + std::to_string(kMaxColumn));
  if (o.word_length < 0 || o.word_length > kMaxLength)
    throw OptionError("--word-length must be in 1.." + std::to_string(kMaxLength) + " (0: the default)");
  if (o.max_classes < 1 || o.max_classes > kMaxClasses)
    throw OptionError("--max-classes must be in 1.." + std::to_string(kMaxClasses));
  if (o.max_errors_shown < 0) throw OptionError("--max-errors-shown must be at least 0");
  if (o.threads < 0) throw OptionError("--threads must be at least 0 (0: all cores)");
  if (o.min_count < 1) throw OptionError("--min-count must be >= 1");
  if (o.compression < 0 || o.compression > 9) throw OptionError("--compress must be 0..9");
  if (o.max_row_bytes < 16 || o.max_row_bytes > kMaxRowBytes)
    throw OptionError("--max-row-bytes must be in 16.." + std::to_string(kMaxRowBytes));
  if (o.threads > kMaxThreads) throw OptionError("--threads must be at most " + std::to_string(kMaxThreads));
  if (!(o.validation_fraction >= 0.0 && o.validation_fraction < 1.0))  // also refuses NaN
    throw OptionError("--validation-fraction must be in [0, 1)");
  if (!o.chars && !o.words) throw OptionError("nothing to write: both --no-chars and --no-words given");
  if (o.chars && (o.char_length < 1 || o.char_length > kMaxLength))
    throw OptionError("--char-length must be in 1.." + std::to_string(kMaxLength));
  switch (o.format) {
    case InputFormat::zhang:
      o.delimiter = ',';
      o.header = false;
      o.quoting = true;
      o.label_column = 0;
      o.labels = LabelKind::index1;
      if (o.classes_file.empty() && o.input != "-") {
        const fs::path beside = fs::path(o.input).parent_path() / "classes.txt";
        std::error_code error;  // an unreadable folder: no class list beside the input
        if (fs::is_regular_file(beside, error)) o.classes_file = beside.string();
      }
      break;
    case InputFormat::imdb:
      o.class_names = {"neg", "pos"};
      o.classes_file.clear();
      break;
    case InputFormat::tsv:
      for (const int column : o.text_columns) {
        if (column < 0 || column > kMaxColumn)
          throw OptionError("--text-columns must be in 0.." + std::to_string(kMaxColumn));
        if (column == o.label_column) throw OptionError("--text-columns includes the label column");
      }
      if (o.labels == LabelKind::names && o.classes_file.empty())
        throw OptionError("--labels names needs --classes FILE (one class name per line)");
      break;
  }
  if (!o.classes_file.empty()) o.class_names = read_class_names(o.classes_file);
  if (o.words && o.word_length == 0)  // the default: the training file's W with --vocab-from
    o.word_length =
        o.vocab_from.empty()
            ? kDefaultWordLength
            : static_cast<int>(data::DatasetFile(o.vocab_from, {.name = "--vocab-from '" + o.vocab_from + "'",
                                                                .chunk_cache_bytes = 0})
                                   .word_length());
  if (o.words && (o.word_length < 1 || o.word_length > kMaxLength))
    throw OptionError("--word-length must be in 1.." + std::to_string(kMaxLength));
  if (o.words && o.vocab_from.empty() && o.vocab_size < 3)
    throw OptionError("--vocab-size must be >= 3 (it counts the reserved ids 0 and 1)");
  if (!o.vocab_from.empty() && !o.words) throw OptionError("--vocab-from needs word encoding (drop --no-words)");
  if (o.validation_fraction > 0.0 && o.validation_output.empty())
    o.validation_output = default_validation_path(o.output);
  if (o.validation_fraction == 0.0) o.validation_output.clear();
  if (!o.validation_output.empty() && same_file(o.validation_output, o.output))
    throw OptionError("--validation-output must differ from --output");
  if (!o.validation_output.empty() && o.input != "-" && same_file(o.validation_output, o.input))
    throw OptionError("--validation-output must differ from --input");
  if (o.threads <= 0) o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.split.empty()) o.split = o.vocab_from.empty() ? "train" : "test";
  if (o.max_errors_shown < 0) o.max_errors_shown = 0;
}

}  // namespace textscale::preprocess
