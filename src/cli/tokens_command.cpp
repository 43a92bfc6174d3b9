// `textscale tokens`: a training file's word ids back to text, one row per line, for learning word
// vectors from exactly what the word models see (docs/word-embeddings.md); and the coverage of a
// vectors file over the file's vocabulary.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/interrupt.h"
#include "textscale/data/dataset_file.h"
#include "textscale/train/pretrained_embeddings.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

constexpr std::size_t kBlockBytes = std::size_t{8} << 20;  // word ids read per block

// The temporary output, removed unless committed (an error or an interrupt leaves no file).
struct TemporaryOutput {
  std::string path;
  std::FILE* file = nullptr;
  bool committed = false;

  explicit TemporaryOutput(std::string temporary) : path(std::move(temporary)) {
    file = std::fopen(path.c_str(), "wb");
    if (!file) throw IoError(errno_message("cannot create '" + path + "'", errno));
  }
  TemporaryOutput(const TemporaryOutput&) = delete;
  TemporaryOutput& operator=(const TemporaryOutput&) = delete;
  ~TemporaryOutput() {
    if (file) std::fclose(file);
    std::error_code ignored;
    if (!committed) std::filesystem::remove(path, ignored);
  }
  void write(const std::string& bytes, const std::string& output) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size())
      throw IoError(errno_message("cannot write '" + output + "'", errno));
  }
  void commit(const std::string& output) {
    const int status = std::fclose(file);
    file = nullptr;
    if (status != 0) throw IoError(errno_message("cannot write '" + output + "'", errno));
    commit_file(path, output);
    committed = true;
  }
};

struct TokenCounts {
  std::int64_t rows = 0, tokens = 0, unknown = 0;
};

// Rows [0, N) of `file` as lines of words (ids [0, word_lengths[i]) through the vocabulary).
TokenCounts write_tokens(const data::DatasetFile& file, const std::string& output) {
  const std::string split = file.text_attribute("split").value_or("");
  if (split != "train")
    throw InputError(file.name() + ": split is " + (split.empty() ? "not recorded" : "'" + split + "'") +
                     ", not 'train': word vectors may be learned from training rows only (rows of other splits "
                     "would leak into training)");
  std::error_code error;
  if (std::filesystem::equivalent(file.path(), output, error))
    throw OptionError("--output '" + output + "' is the data file itself");
  const std::vector<std::string> vocab = file.read_vocabulary();
  const bool stored_lengths = !file.shape("word_lengths").empty();
  const std::int64_t width = file.word_length();
  const std::int64_t block = std::max<std::int64_t>(1, static_cast<std::int64_t>(kBlockBytes) / (4 * width));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(block * width)), lengths(static_cast<std::size_t>(block));

  (void)remove_stale_temporaries(output);
  TemporaryOutput out(temporary_path(output));
  TokenCounts counts;
  std::string text;
  for (std::int64_t begin = 0; begin < file.rows(); begin += block) {
    throw_if_interrupted();
    const std::int64_t count = std::min(block, file.rows() - begin);
    file.read_words(begin, count, ids.data());
    if (stored_lengths) file.read_word_lengths(begin, count, lengths.data());
    text.clear();
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int32_t* row = ids.data() + i * width;
      std::int64_t length = width;  // without word_lengths: up to the first padding id
      if (stored_lengths)
        length = lengths[static_cast<std::size_t>(i)];
      else
        for (std::int64_t j = 0; j < width; ++j)
          if (row[j] == 0) length = std::min(length, j);
      for (std::int64_t j = 0; j < length; ++j) {
        if (j > 0) text += ' ';
        text += vocab[static_cast<std::size_t>(row[j])];
        counts.unknown += row[j] == 1;
      }
      text += '\n';
      counts.tokens += length;
    }
    out.write(text, output);
    counts.rows += count;
  }
  out.commit(output);
  return counts;
}

std::string percent_of(std::int64_t part, std::int64_t whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%",
                whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
  return text;
}

}  // namespace

int tokens_command(const std::vector<std::string>& arguments) {
  std::string data, output, vectors, vectors_format;
  std::int64_t dim = 0;
  po::options_description options(
      "textscale tokens: a training file's words as text, one row per line, for learning word vectors "
      "(docs/word-embeddings.md)\n\n"
      "usage: textscale tokens --data TRAIN.h5 --output tokens.txt\n"
      "       textscale tokens --data TRAIN.h5 --check-vectors vectors.vec [--dim E]");
  options.add_options()                                                                               //
      ("help,h", "show this help")                                                                    //
      ("data", po::value(&data), "preprocessed file with word tensors (split 'train' for --output)")  //
      ("output", po::value(&output),
       "write row i's words [0, word_lengths[i]) separated by spaces as line i (out-of-vocabulary: <unk>); "
       "replaces the file atomically")  //
      ("check-vectors", po::value(&vectors),
       "read a word2vec/fastText vectors file and print its coverage of the file's vocabulary")  //
      ("vectors-format", po::value(&vectors_format)->default_value("auto"),
       "--check-vectors file: auto | text (.vec) | binary (word2vec)")  //
      ("dim", po::value(&dim)->default_value(0), "--check-vectors: the embedding size the vectors must have; 0: any");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (data.empty()) throw UsageError{"--data is required"};
  if (output.empty() && vectors.empty()) throw UsageError{"--output or --check-vectors is required"};
  if (dim < 0) throw UsageError{"--dim must be 0 or positive"};
  train::PretrainedFormat format = train::PretrainedFormat::detect;
  try {
    format = train::parse_pretrained_format(vectors_format, "--vectors-format");
  } catch (const InputError& error) {
    throw UsageError{error.what()};
  }

  const data::DatasetFile file(data, {.name = "'" + data + "'", .chunk_cache_bytes = 0});
  file.require_words();
  file.require_vocabulary();
  if (!output.empty()) {
    const TokenCounts counts = write_tokens(file, output);
    std::cout << "wrote " << output << ": " << counts.rows << " rows, " << counts.tokens << " tokens ("
              << counts.unknown << " <unk>, " << percent_of(counts.unknown, counts.tokens) << ") from " << data << "\n";
  }
  if (!vectors.empty()) {
    const train::PretrainedEmbeddings embeddings =
        train::match_pretrained(vectors, file.read_vocabulary(), file.read_vocab_counts(), dim, format);
    std::cout << embeddings.describe() << "\n";
    std::cout << "  " << train::format_name(embeddings.format) << " format, " << embeddings.file_words
              << " words in the file; <unk> " << (embeddings.unk_matched ? "has a vector" : "has none") << "\n";
  }
  return 0;
}

}  // namespace textscale::cli
