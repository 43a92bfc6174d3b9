// Pretrained word vectors (pretrained_embeddings.h): text and binary files written here, matched
// against a small vocabulary, coverage against a hand count; every malformed file refused with a
// message naming the file, the line (binary: the word and its byte) and what is wrong; files
// larger than the reader's buffer.
#define BOOST_TEST_MODULE pretrained_embeddings
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/train/pretrained_embeddings.h"

using namespace textscale;
using namespace textscale::train;
namespace fs = std::filesystem;

namespace {

// ids:                                 0        1        2      3      4      5     6      7
const std::vector<std::string> kVocab{"<pad>", "<unk>", "the", "cat", "sat", "on", "mat", "caf\xc3\xa9"};
const std::vector<std::int64_t> kCounts{0, 5, 10, 4, 3, 2, 1, 1};

struct Folder {
  fs::path path = fs::temp_directory_path() / ("textscale-vectors-" + std::to_string(::getpid()));
  Folder() { fs::create_directories(path); }
  ~Folder() { fs::remove_all(path); }
};
const Folder folder;

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = (folder.path / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A word2vec binary entry: the word, a space, DIM little-endian float32, and a newline unless told.
std::string entry(const std::string& word, std::initializer_list<float> values, bool newline = true) {
  std::string out = word + " ";
  for (const float value : values) {
    auto bits = std::bit_cast<std::uint32_t>(value);
    for (int b = 0; b < 4; ++b) out += static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return newline ? out + "\n" : out;
}

// fastText's trailing space, a tab and a CRLF line, a word outside the vocabulary, fastText's
// "</s>", "<unk>" (row 1), a non-ASCII word, a value below float32's range, a leading '+', and a
// last line without a newline.
const std::string kGoodText =
    "6 3\n"
    "the 0.1 0.2 0.3 \n"
    "cat\t1 -2 3e-1\r\n"
    "dog 1 1 1\n"
    "</s> 0 0 0\n"
    "<unk> 0.5 0.5 0.5\n"
    "caf\xc3\xa9 1e-50 +2 .5";

const std::string kGoodBinary = "6 3\n" + entry("the", {0.1f, 0.2f, 0.3f}) + entry("cat", {1, -2, 0.3f}) +
                                entry("dog", {1, 1, 1}, false) + entry("</s>", {0, 0, 0}) +
                                entry("<unk>", {0.5f, 0.5f, 0.5f}) + entry("caf\xc3\xa9", {0, 2, 0.5f});

void check_good(const PretrainedEmbeddings& e, const std::string& path) {
  BOOST_TEST(e.dim == 3);
  BOOST_TEST(e.file_words == 6);
  BOOST_TEST(e.vocab_size == 8);
  BOOST_TEST(e.table.size() == 8u * 3u);
  // Hand count: the, cat, café of the 6 words 2..7; <unk> matched but counted in neither.
  const std::vector<std::uint8_t> matched{0, 1, 1, 1, 0, 0, 0, 1};
  BOOST_TEST(e.matched == matched, boost::test_tools::per_element());
  BOOST_TEST(e.unk_matched);
  BOOST_TEST(e.matched_words == 3);
  BOOST_TEST(e.vocabulary_words == 6);
  BOOST_TEST(e.counts_known);
  BOOST_TEST(e.matched_tokens == 10 + 4 + 1);                            // the, cat, café
  BOOST_TEST(e.training_tokens == 10 + 4 + 3 + 2 + 1 + 1);               // ids 2..7; <unk>'s 5 excluded
  const std::vector<float> expected{0,    0,    0,                       // <pad>
                                    0.5f, 0.5f, 0.5f,                    // <unk>
                                    0.1f, 0.2f, 0.3f,                    // the
                                    1,    -2,   0.3f,                    // cat
                                    0,    0,    0,    0, 0, 0, 0, 0, 0,  // sat, on, mat
                                    0,    2,    0.5f};                   // café
  BOOST_TEST(e.table == expected, boost::test_tools::per_element());     // exact: the same decimal -> float
  BOOST_TEST(e.describe() == "embeddings " + path + ": 3-d, 3 of 6 words (50.0%), 71.4% of training tokens");
}

// `bytes` as a file must be refused with an InputError whose message holds the file's path and
// each of `parts`.
void expect_refused(const std::string& name, const std::string& bytes, std::initializer_list<std::string> parts,
                    PretrainedFormat format = PretrainedFormat::detect, std::int64_t expected_dim = 0) {
  const std::string path = write_file(name, bytes);
  try {
    (void)match_pretrained(path, kVocab, kCounts, expected_dim, format);
    BOOST_ERROR(name << ": accepted");
  } catch (const InputError& error) {
    const std::string message = error.what();
    BOOST_TEST_INFO(name << ": " << message);
    BOOST_TEST(message.starts_with(path + ": "));
    for (const std::string& part : parts) {
      BOOST_TEST_INFO(name << ": '" << part << "' in: " << message);
      BOOST_TEST(message.find(part) != std::string::npos);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(text_file_matches_the_vocabulary) {
  const std::string path = write_file("good.vec", kGoodText);
  const PretrainedEmbeddings e = match_pretrained(path, kVocab, kCounts);
  BOOST_TEST(format_name(e.format) == std::string("text"));
  check_good(e, path);
  check_good(match_pretrained(path, kVocab, kCounts, 3, PretrainedFormat::text), path);
}

BOOST_AUTO_TEST_CASE(binary_file_matches_the_vocabulary) {
  const std::string path = write_file("good.bin", kGoodBinary);
  const PretrainedEmbeddings e = match_pretrained(path, kVocab, kCounts);
  BOOST_TEST(format_name(e.format) == std::string("binary"));
  check_good(e, path);
  check_good(match_pretrained(path, kVocab, kCounts, 3, PretrainedFormat::binary), path);
}

BOOST_AUTO_TEST_CASE(describe_groups_digits_and_says_when_counts_are_unknown) {
  std::vector<std::string> vocab{"<pad>", "<unk>"};
  std::vector<std::int64_t> counts{0, 0};
  std::string text = "1001 2\n";
  for (int i = 0; i < 1002; ++i) {
    vocab.push_back("w" + std::to_string(i));
    counts.push_back(i < 1000 ? 1000 : 1);
    if (i < 1001) text += "w" + std::to_string(i) + " 1 2\n";
  }
  const std::string path = write_file("many.vec", text);
  const PretrainedEmbeddings e = match_pretrained(path, vocab, counts);
  // Tokens: 1000 * 1000 + 1 matched of 1000 * 1000 + 2: rounded down, not up to 100.0%.
  BOOST_TEST(e.describe() == "embeddings " + path + ": 2-d, 1,001 of 1,002 words (99.9%), 99.9% of training tokens");
  BOOST_TEST(match_pretrained(path, vocab, {}).describe() ==
             "embeddings " + path + ": 2-d, 1,001 of 1,002 words (99.9%), token coverage unknown (no vocab_counts)");
}

BOOST_AUTO_TEST_CASE(files_larger_than_the_read_buffer) {
  // 60,000 other words before the vocabulary's: several 1 MiB buffer refills in both formats.
  constexpr int kDim = 25;
  std::string text = "60003 " + std::to_string(kDim) + "\n", binary = text;
  const auto add = [&](const std::string& word, float value) {
    text += word;
    std::string entry_bytes = word + " ";
    for (int d = 0; d < kDim; ++d) {
      text += " " + std::to_string(value + static_cast<float>(d));
      const auto bits = std::bit_cast<std::uint32_t>(value + static_cast<float>(d));
      for (int b = 0; b < 4; ++b) entry_bytes += static_cast<char>((bits >> (8 * b)) & 0xFF);
    }
    text += "\n";
    binary += entry_bytes + "\n";
  };
  for (int i = 0; i < 60000; ++i) add("other" + std::to_string(i), static_cast<float>(i % 7));
  add("sat", 100), add("on", 200), add("mat", 300);
  for (const auto& [name, bytes] : {std::pair{"large.vec", text}, std::pair{"large.bin", binary}}) {
    const std::string path = write_file(name, bytes);
    const PretrainedEmbeddings e = match_pretrained(path, kVocab, kCounts, kDim);
    BOOST_TEST(e.matched_words == 3);
    BOOST_TEST(e.matched_tokens == 3 + 2 + 1);
    BOOST_TEST(e.table[4 * kDim] == 100.0f);
    BOOST_TEST(e.table[6 * kDim + kDim - 1] == 300.0f + kDim - 1);
  }
}

BOOST_AUTO_TEST_CASE(malformed_headers_are_refused) {
  expect_refused("empty.vec", "", {"empty file"});
  expect_refused("one_number.vec", "3\nthe 1 2 3\n", {"line 1", "two positive integers", "'3'"});
  expect_refused("words.vec", "three dims\n", {"line 1", "two positive integers"});
  expect_refused("negative.vec", "-3 5\n", {"line 1", "two positive integers"});
  expect_refused("no_words.vec", "0 5\n", {"line 1", "two positive integers"});
  expect_refused("zero_dim.vec", "3 0\nthe\ncat\nsat\n", {"line 1", "0-dimensional"});
  expect_refused("huge_dim.vec", "3 100000000\n", {"line 1", "100000000-dimensional", "more than 65536"});
  expect_refused("glove.txt", "the 0.1 0.2 0.3\ncat 1 2 3\n", {"line 1", "two positive integers", "GloVe"});
  expect_refused("model.bin", std::string("\xba\x16\x4f\x2f\x0c\0\0\0", 8), {"line 1", "fastText model", ".vec"});
  expect_refused("other_dim.vec", kGoodText, {"line 1", "3-dimensional", "embedding size is 4"},
                 PretrainedFormat::detect, 4);
  expect_refused("other_dim.bin", kGoodBinary, {"line 1", "3-dimensional", "embedding size is 300"},
                 PretrainedFormat::detect, 300);
}

BOOST_AUTO_TEST_CASE(malformed_text_rows_are_refused) {
  expect_refused("short_row.vec", "2 3\nthe 1 2 3\ncat 1 2\n", {"line 3", "2 values for 'cat'", "header says 3"});
  expect_refused("long_row.vec", "2 3\nthe 1 2 3 4\ncat 1 2 3\n", {"line 2", "4 values for 'the'", "header says 3"});
  expect_refused("not_a_number.vec", "2 3\nthe 1 2 3\ncat 1 x 3\n", {"line 3", "value 2 of 'cat'", "'x'", "number"});
  expect_refused("glued.vec", "2 3\nthe 1 2 3\ncat 1 2,5 3\n", {"line 3", "'2,5'", "number"});
  expect_refused("overflow.vec", "2 3\nthe 1 2 3\ncat 1 1e40 3\n", {"line 3", "'1e40'", "float32 number"});
  expect_refused("nan.vec", "2 3\nthe 1 nan 3\ncat 1 2 3\n", {"line 2", "'nan'", "not a finite number"});
  expect_refused("duplicate.vec", "3 2\nthe 1 2\ncat 1 2\nthe 3 4\n",
                 {"line 4", "duplicate word 'the'", "first at line 2"});
  expect_refused("bad_utf8.vec", "2 2\nthe 1 2\nca\xfft 1 2\n", {"line 3", "'ca\\xfft'", "not valid UTF-8"});
  expect_refused("truncated.vec", "5 2\nthe 1 2\ncat 1 2\n", {"line 4", "ends after 2 of the 5 words", "truncated"});
  expect_refused("cut_row.vec", "2 3\nthe 1 2 3\ncat 1 2", {"line 3", "2 values", "truncated"});
  expect_refused("extra_row.vec", "1 2\nthe 1 2\ncat 1 2\n", {"line 3", "more words than the header's 1"});
  expect_refused("blank_line.vec", "2 2\nthe 1 2\n\ncat 1 2\n", {"line 3", "empty line"});
  expect_refused("leading_space.vec", "2 2\nthe 1 2\n 1 2\n", {"line 3", "empty word"});
}

BOOST_AUTO_TEST_CASE(malformed_binary_entries_are_refused) {
  const std::string header = "3 3\n";
  const std::string the = entry("the", {1, 2, 3});  // 4 + 12 + 1 bytes, at byte 4
  expect_refused("cut_vector.bin", header + the + entry("cat", {1, 2, 3}).substr(0, 10),
                 {"word 2 at byte 21", "vector of 'cat' is cut short", "6 of 12 bytes"});
  expect_refused("cut_word.bin", header + the + "ca", {"word 2 at byte 21", "ends inside the word"});
  expect_refused("truncated.bin", header + the + entry("cat", {1, 2, 3}), {"word 3", "ends after 2 of the 3 words"});
  expect_refused("bad_utf8.bin", header + entry("ca\xfft", {1, 2, 3}), {"word 1 at byte 4", "not valid UTF-8"});
  expect_refused("duplicate.bin", header + the + entry("cat", {1, 2, 3}) + the,
                 {"word 3 at byte 38", "duplicate word 'the'", "first at word 1"});
  expect_refused("nan.bin", header + the + entry("cat", {1, std::nanf(""), 3}) + entry("sat", {1, 2, 3}),
                 {"word 2 at byte 21", "value 2 of 'cat' is NaN"});
  expect_refused("infinite.bin", header + entry("the", {1, 2, INFINITY}),
                 {"word 1 at byte 4", "value 3 of 'the' is infinite"});
  expect_refused("extra.bin", "1 3\n" + the + the, {"more words than the header's 1"}, PretrainedFormat::binary);
  // A text file read as binary runs into words and counts that do not fit.
  expect_refused("text_as_binary.vec", "2 3\nthe 1 2 3\ncat 4 5 6\n", {"word 2"}, PretrainedFormat::binary);
}

BOOST_AUTO_TEST_CASE(bad_vocabularies_and_missing_files) {
  const std::string path = write_file("plain.vec", kGoodText);
  BOOST_CHECK_THROW((void)match_pretrained(path, {"the", "cat"}, {}), InputError);
  BOOST_CHECK_THROW((void)match_pretrained(path, {"<pad>", "<unk>", "the", "the"}, {}), InputError);
  BOOST_CHECK_THROW((void)match_pretrained(path, kVocab, {1, 2}), InputError);
  BOOST_CHECK_THROW((void)match_pretrained((folder.path / "absent.vec").string(), kVocab, kCounts), IoError);
  BOOST_CHECK(parse_pretrained_format("binary", "--x") == PretrainedFormat::binary);
  BOOST_CHECK_THROW((void)parse_pretrained_format("bin", "--x"), InputError);
}
