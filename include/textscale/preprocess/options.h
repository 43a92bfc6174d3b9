// Everything `textscale preprocess` can be told, resolved to plain values.
// README.md (`textscale preprocess`) explains each option; docs/hdf5-schema.md the file it writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace textscale::preprocess {

enum class InputFormat {
  zhang,  // Zhang et al. 2015 CSV: "class","title","text" (1-based class, any number of text columns)
  tsv,    // delimited text with configurable label/text columns, header and label kind
  imdb,   // aclImdb folder: <dir>/neg/*.txt (label 0) and <dir>/pos/*.txt (label 1)
};

// How backslash sequences inside text fields are turned back into characters.
enum class Unescape {
  none,       // bytes kept as they are
  newline,    // the two characters '\' 'n' become a newline (Zhang's readme and crepe's loader)
  backslash,  // AG News: "\$" becomes "$"; any other run of backslashes becomes one newline
};

enum class LabelKind {
  index0,  // integer, 0-based
  index1,  // integer, 1-based (Zhang's CSVs)
  names,   // class name, mapped through the class list (--classes)
};

inline constexpr int kDefaultWordLength = 300;
inline constexpr int kNoLabelColumn = -1;

struct PreprocessOptions {
  // Input and output.
  std::string input;  // file, "-" for standard input, or a folder (imdb); .gz read directly
  InputFormat format = InputFormat::zhang;
  std::string output;  // FILE.h5, written atomically
  bool overwrite = false;
  std::string split;  // recorded as the `split` attribute; default "train", or "test" with vocab_from

  // Record layout (zhang fixes: ',' delimiter, no header, label column 0 as index1).
  char delimiter = ',';
  bool header = false;
  bool quoting = true;            // a field starting with '"' is quoted (RFC 4180); off: quotes are text
  int label_column = 0;           // kNoLabelColumn: the rows have no label (predict), every row's label is -1
  std::vector<int> text_columns;  // 0-based; empty = every column except the label column
  LabelKind labels = LabelKind::index1;
  std::string classes_file;              // one class name per line
  std::vector<std::string> class_names;  // resolved from classes_file or the format
  // Without a class list, integer labels from 0 (index0; 1 for index1) up to this many classes;
  // a label above is a bad row, so that one stray number cannot make a million classes.
  std::int64_t max_classes = 1000;
  Unescape unescape = Unescape::newline;

  // Encoding.
  bool chars = true;
  int char_length = 1014;  // L
  bool words = true;
  int word_length = 0;         // W; 0: kDefaultWordLength, or with vocab_from that file's W
  int vocab_size = 50000;      // V, counting the ids 0 (padding) and 1 (out of vocabulary)
  std::int64_t min_count = 1;  // words seen fewer times in training are out of vocabulary
  std::string vocab_from;      // take the vocabulary from this training file instead of building it

  // Order and splits.
  bool shuffle = false;
  std::uint64_t seed = 1;
  double validation_fraction = 0.0;
  std::string validation_output;  // default: <output stem>.valid.h5

  // Bad input.
  bool strict = false;        // the first bad row is fatal
  int max_errors_shown = 10;  // bad rows reported one by one; the rest are counted
  std::size_t max_row_bytes = 1u << 20;

  // Resources.
  int threads = 0;                     // encoding threads; 0 = all cores
  int compression = 0;                 // gzip level for the tensors, 0 = none
  std::size_t block_bytes = 1u << 20;  // unit of work handed to a thread
  std::size_t read_bytes = 1u << 20;   // bytes per read of the input (tests make it tiny)
  bool quiet = false;
};

// Fills derived fields (class list, delimiter and label kind for zhang/imdb, default names) and
// checks combinations. Throws InputError naming the option at fault.
void resolve(PreprocessOptions& options);

// "<stem>.valid.h5" for "<stem>.h5".
[[nodiscard]] std::string default_validation_path(const std::string& output);

[[nodiscard]] const char* to_string(InputFormat format);
[[nodiscard]] const char* to_string(Unescape unescape);
[[nodiscard]] const char* to_string(LabelKind kind);

}  // namespace textscale::preprocess
