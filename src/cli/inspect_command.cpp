#include <boost/program_options.hpp>

#include <cstdint>
#include <iostream>
#include <vector>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/data/dataset_file.h"

namespace po = boost::program_options;

namespace textscale::cli {

int inspect_command(const std::vector<std::string>& arguments) {
  std::string path;
  std::vector<long long> rows;
  po::options_description options(
      "textscale inspect: summary of a preprocessed file\n\nusage: textscale inspect FILE.h5 [--row K ...]");
  options.add_options()("help,h", "show this help")("file", po::value(&path), "the HDF5 file")(
      "row", po::value(&rows)->multitoken(), "also decode these rows (0-based) back to text");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map values;
  if (!parse_options(arguments, options, values, &positional)) return 0;
  if (path.empty()) throw UsageError{"a file to inspect is required"};

  const data::DatasetFile file(path, {.name = "'" + path + "'", .chunk_cache_bytes = 0});
  const auto text = [&](const char* name) { return file.text_attribute(name).value_or("-"); };
  const auto number = [&](const char* name) {
    const auto value = file.int_attribute(name);
    return value ? std::to_string(*value) : std::string("-");
  };
  std::cout << path << ": schema " << number("schema_version") << ", split " << text("split") << ", " << file.rows()
            << " rows (" << number("num_bad_rows") << " bad rows skipped)\n";
  std::cout << "source " << text("source_file") << " (" << text("input_format") << ", sha256 " << text("source_sha256")
            << ")\ncreated " << text("created") << " by " << text("created_by") << "\n";
  std::cout << "content sha256 "
            << (file.content_sha256().empty() ? "unknown (the file was made before content digests were recorded)"
                                              : file.content_sha256())
            << "\n";
  const std::vector<std::string>& classes = file.classes();
  std::vector<std::int32_t> all_labels(static_cast<std::size_t>(file.rows()));
  file.read_labels(0, file.rows(), all_labels.data());
  std::vector<long long> counts(static_cast<std::size_t>(file.num_classes()), 0);
  for (const std::int32_t label : all_labels) ++counts[static_cast<std::size_t>(label)];
  std::cout << "classes " << counts.size() << ":";
  for (std::size_t c = 0; c < counts.size(); ++c)
    std::cout << (c ? ", " : " ") << (c < classes.size() ? classes[c] : std::to_string(c)) << " " << counts[c];
  std::cout << "\n";
  for (const char* name : {"labels", "chars", "char_lengths", "words", "word_lengths", "vocab", "vocab_counts"}) {
    const std::vector<std::int64_t> shape = file.shape(name);
    if (shape.empty()) continue;
    std::cout << "  " << name << " [";
    for (std::size_t d = 0; d < shape.size(); ++d) std::cout << (d ? ", " : "") << shape[d];
    std::cout << "]\n";
  }
  if (file.text_attribute("tokenizer"))
    std::cout << "words: tokenizer " << text("tokenizer") << ", vocabulary " << number("vocab_size") << " ids (from "
              << text("vocab_source") << ")\n";

  std::vector<std::string> vocab;
  if (!rows.empty() && file.has_words()) vocab = file.read_vocabulary();
  for (const long long row : rows) {
    if (file.rows() == 0) throw InputError("--row " + std::to_string(row) + ": '" + path + "' has no rows");
    if (row < 0 || row >= file.rows())
      throw OptionError("--row " + std::to_string(row) + " is outside 0.." + std::to_string(file.rows() - 1));
    const std::int32_t label = all_labels[static_cast<std::size_t>(row)];
    std::cout << "row " << row << ": label " << label;
    if (static_cast<std::size_t>(label) < classes.size())
      std::cout << " (" << classes[static_cast<std::size_t>(label)] << ")";
    std::cout << "\n";
    if (file.has_chars()) {
      // Stored reversed; print in reading order, '_' for symbol 0 and a pilcrow for a newline.
      std::vector<std::uint8_t> codes(static_cast<std::size_t>(file.char_length()));
      std::int32_t length = 0;
      file.read_chars(row, 1, codes.data());
      file.read_char_lengths(row, 1, &length);
      const std::string& alphabet = file.alphabet();
      std::string decoded;
      for (int j = length - 1; j >= 0; --j) {
        const std::uint8_t code = codes[static_cast<std::size_t>(j)];
        if (code == 0)
          decoded += '_';
        else if (alphabet[code - 1u] == '\n')
          decoded += "\u00b6";  // pilcrow for a newline
        else
          decoded += alphabet[code - 1u];
      }
      std::cout << "  chars (" << length << "): " << decoded << "\n";
    }
    if (file.has_words()) {
      std::vector<std::int32_t> ids(static_cast<std::size_t>(file.word_length()));
      std::int32_t length = 0;
      file.read_words(row, 1, ids.data());
      file.read_word_lengths(row, 1, &length);
      std::cout << "  words (" << length << "):";
      for (int j = 0; j < length; ++j)
        std::cout << " " << vocab[static_cast<std::size_t>(ids[static_cast<std::size_t>(j)])];
      std::cout << "\n";
    }
  }
  return 0;
}

}  // namespace textscale::cli
