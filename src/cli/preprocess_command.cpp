#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/preprocess/pipeline.h"

namespace po = boost::program_options;

namespace textscale::cli {

int preprocess_command(const std::vector<std::string>& arguments) {
  preprocess::PreprocessOptions o;
  std::string format = "zhang", unescape = "newline", labels = "index0", delimiter = "tab", text_columns;
  po::options_description io("Input and output");
  io.add_options()("help,h", "show this help")(
      "input,i", po::value(&o.input)->value_name("PATH"),
      "input file (.gz is decompressed), '-' for standard input, or an aclImdb split folder")(
      "format,f", po::value(&format)->value_name("zhang|tsv|imdb")->default_value("zhang"),
      "zhang: \"class\",\"title\",\"text\" CSV with 1-based classes; tsv: delimited text (see layout); "
      "imdb: <dir>/neg and <dir>/pos of *.txt")("output,o", po::value(&o.output)->value_name("FILE.h5"),
                                                "output HDF5 file (written atomically)")(
      "overwrite", po::bool_switch(&o.overwrite), "replace existing outputs")(
      "split", po::value(&o.split)->value_name("NAME"),
      "recorded as the file's split attribute (default: train, or test with --vocab-from)");
  po::options_description layout("Delimited layout (--format tsv; zhang fixes these)");
  layout.add_options()("delimiter", po::value(&delimiter)->value_name("CHAR")->default_value("tab"),
                       "field delimiter ('tab' or one character)")("header", po::bool_switch(&o.header),
                                                                   "the first row is a header")(
      "no-quoting", "quotes are ordinary text (default: a field starting with \" is quoted, RFC 4180)")(
      "label-column", po::value(&o.label_column)->default_value(0), "0-based column of the label")(
      "text-columns", po::value(&text_columns)->value_name("K,K,..."),
      "0-based text columns, joined by a space (default: every column but the label)")(
      "labels", po::value(&labels)->value_name("index0|index1|names")->default_value("index0"),
      "labels are 0-based or 1-based integers, or class names listed in --classes")(
      "classes", po::value(&o.classes_file)->value_name("FILE"),
      "class names, one per line, in index order (zhang: classes.txt beside the input by default)")(
      "max-classes", po::value(&o.max_classes)->default_value(1000),
      "without --classes: the most classes integer labels may make; a label above is a bad row (label out of "
      "range)")(
      "unescape", po::value(&unescape)->value_name("none|newline|backslash")->default_value("newline"),
      "newline: \\n becomes a newline (Zhang); backslash: AG News style, a run of backslashes becomes a newline "
      "and \\$ a dollar; none: keep the text as it is");
  po::options_description encoding("Encoding");
  encoding.add_options()("char-length", po::value(&o.char_length)->default_value(1014), "characters per row (L)")(
      "no-chars", "do not write the chars tensor")("word-length", po::value(&o.word_length)->default_value(0),
                                                   "words per row (W); 0: 300, or with --vocab-from that file's W")(
      "no-words", "do not write the words tensor and vocabulary")(
      "vocab-size", po::value(&o.vocab_size)->default_value(50000),
      "vocabulary ids, counting 0 (padding) and 1 (unknown)")("min-count", po::value(&o.min_count)->default_value(1),
                                                              "minimum training count of a vocabulary word")(
      "vocab-from", po::value(&o.vocab_from)->value_name("TRAIN.h5"),
      "reuse the vocabulary of a preprocessed training file (for test splits)");
  po::options_description order("Order, splits and bad rows");
  order.add_options()("shuffle", po::bool_switch(&o.shuffle), "write rows in a seeded random order")(
      "seed", po::value(&o.seed)->default_value(1), "seed of the shuffle and of the validation split")(
      "validation-fraction", po::value(&o.validation_fraction)->default_value(0.0),
      "carve about this fraction of rows into a validation file (seeded, per row)")(
      "validation-output", po::value(&o.validation_output)->value_name("FILE.h5"),
      "validation file (default: <output stem>.valid.h5)")("strict", po::bool_switch(&o.strict),
                                                           "stop at the first bad row instead of skipping it")(
      "max-errors-shown", po::value(&o.max_errors_shown)->default_value(10), "bad rows reported one by one")(
      "max-row-bytes", po::value(&o.max_row_bytes)->default_value(1u << 20), "rows longer than this are bad");
  po::options_description resources("Resources");
  resources.add_options()("threads", po::value(&o.threads)->default_value(0), "encoding threads (0: all cores)")(
      "compress", po::value(&o.compression)->default_value(0), "gzip level of the tensors (0: none, fastest)")(
      "quiet,q", po::bool_switch(&o.quiet), "print only errors");
  po::options_description all(
      "textscale preprocess: corpora -> HDF5 tensors (docs/hdf5-schema.md)\n\n"
      "usage: textscale preprocess --input PATH --format zhang|tsv|imdb --output FILE.h5 [options]");
  all.add(io).add(layout).add(encoding).add(order).add(resources);

  po::variables_map values;
  if (!parse_options(arguments, all, values)) return 0;
  o.format = parse_format(format);
  o.unescape = parse_unescape(unescape);
  o.delimiter = parse_delimiter(delimiter);
  if (o.format == preprocess::InputFormat::tsv) o.labels = parse_labels(labels);
  if (!text_columns.empty()) o.text_columns = parse_columns(text_columns);
  o.quoting = !values.count("no-quoting");
  o.chars = !values.count("no-chars");
  o.words = !values.count("no-words");
  if (o.input.empty()) throw UsageError{"--input is required"};
  if (o.output.empty()) throw UsageError{"--output is required"};

  const preprocess::PreprocessSummary summary = preprocess::run_preprocess(o);
  if (!o.quiet) std::cout << preprocess::format_summary(summary, o) << std::flush;
  return 0;
}

}  // namespace textscale::cli
