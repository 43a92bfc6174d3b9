// Pretrained word vectors for the word models' embedding table (V, E): read a word2vec/fastText
// file and keep the vectors of the words of a file's vocabulary (docs/word-embeddings.md).
//
// Formats (both start with the header line "COUNT DIM": two positive decimal integers):
// - text (word2vec -binary 0, fastText's .vec): then COUNT lines "word v1 .. vDIM", fields
//   separated by spaces or tabs; trailing spaces and a CR before the newline are allowed.
// - binary (word2vec -binary 1, gensim's binary=True): then COUNT entries: optional newlines,
//   the word's bytes up to a space, the space, DIM little-endian IEEE float32.
// Not read: fastText's model file (.bin; its .vec holds the vectors) and GloVe (no header).
// PretrainedFormat::detect tells text from binary by the first entry: text when the bytes after
// its word, up to the end of the line, are all characters of decimal numbers and spaces.
//
// The file is streamed once; memory is the (V, E) table plus the vocabulary's index.
// Matching is exact (the words' UTF-8 bytes): the vocabulary of textscale's tokenizer is
// lower-case, so a cased file matches only its lower-case words. Row 0 (<pad>) is never matched;
// row 1 (<unk>) is when the file holds "<unk>" (as vectors learned from `textscale tokens` output
// do: out-of-vocabulary tokens are written as <unk> there).
//
// Every problem is an InputError "PATH: line L: what is wrong" (text, and the header of both
// formats) or "PATH: word K at byte B: what is wrong" (binary entries, K from 1): an empty file;
// a header that is not two positive integers, or a dimension of 0; a dimension other than
// `expected_dim` when one is given; a row whose number of values is not the dimension; a value
// that is not a finite float32 number; a word of the vocabulary that the file holds twice (both
// places named; duplicates of other words do not change the result and are not tracked: the
// file may hold millions of words); word bytes that are not valid UTF-8; fewer entries than
// the header's COUNT, an entry cut short, or content after the COUNT entries other than
// whitespace.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace textscale::train {

enum class PretrainedFormat { detect, text, binary };

// "auto" | "text" | "binary" (InputError naming `option` otherwise); the name of a format.
[[nodiscard]] PretrainedFormat parse_pretrained_format(const std::string& name, const std::string& option);
[[nodiscard]] const char* format_name(PretrainedFormat format);

struct PretrainedEmbeddings {
  std::string path;
  PretrainedFormat format = PretrainedFormat::detect;  // the file's (text or binary)
  std::int64_t dim = 0;                                // E, the header's DIM
  std::int64_t file_words = 0;                         // the header's COUNT
  std::int64_t vocab_size = 0;                         // V
  // (V, E): row v holds the file's vector of vocab[v] when matched[v]; other rows are 0, for the
  // caller to initialise as the model does.
  std::vector<float> table;
  std::vector<std::uint8_t> matched;  // (V): 1 when row v came from the file

  // Word coverage: matched_words of vocabulary_words = V - 2 (ids 2..V-1; <pad> and <unk>
  // counted in neither).
  std::int64_t matched_words = 0;
  std::int64_t vocabulary_words = 0;
  // Token coverage: matched_tokens of training_tokens = the sum of vocab_counts over ids 2..V-1,
  // that is the training split's in-vocabulary tokens (out-of-vocabulary tokens, counted by
  // <unk>, excluded), counted before the rows were cut to the word length W. Both 0, and
  // counts_known false, when the vocabulary has no counts.
  std::int64_t matched_tokens = 0;
  std::int64_t training_tokens = 0;
  bool counts_known = false;
  bool unk_matched = false;  // row 1 came from the file's "<unk>"

  [[nodiscard]] double word_coverage() const;   // matched_words / vocabulary_words; 0 when that is 0
  [[nodiscard]] double token_coverage() const;  // matched_tokens / training_tokens; 0 when that is 0
  // One line for the log: "embeddings PATH: 300-d, 18,234 of 20,000 words (91.2%), 97.1% of
  // training tokens" (", token coverage unknown (no vocab_counts)" without counts).
  [[nodiscard]] std::string describe() const;
};

// Requires: vocab[0] = "<pad>", vocab[1] = "<unk>" (a file's vocabulary, DatasetFile::read_vocabulary),
// no word twice; vocab_counts empty (unknown) or of vocab's size (read_vocab_counts).
// expected_dim: the model's embedding size, or 0 to take the file's.
// Ensures: the result described above; throws InputError (above) for a bad file, IoError when it
// cannot be opened or read, and Interrupted when a signal arrives during a long read.
[[nodiscard]] PretrainedEmbeddings match_pretrained(const std::string& path, const std::vector<std::string>& vocab,
                                                    const std::vector<std::int64_t>& vocab_counts,
                                                    std::int64_t expected_dim = 0,
                                                    PretrainedFormat format = PretrainedFormat::detect);

}  // namespace textscale::train
