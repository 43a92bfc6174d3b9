// Record splitting (RFC 4180 quoting, line numbers, malformed rows), sources (.gz, SHA-256),
// and the IMDB folder reader.
#define BOOST_TEST_MODULE records
#include <zlib.h>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/preprocess/record_reader.h"

namespace textscale::preprocess {
std::ostream& operator<<(std::ostream& out, BadRowReason reason) {
  return out << to_string(reason);
}
}  // namespace textscale::preprocess

using namespace textscale::preprocess;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path =
        fs::temp_directory_path() / ("textscale-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& content) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
  static inline int counter = 0;
};

struct Row {
  std::vector<std::string> fields;
  std::int64_t line;
  std::int64_t ordinal;
  bool bad;
  BadRowReason reason;
  std::int32_t preset_label;
  std::string where;
};

std::vector<Row> read_all(RecordReader& reader) {
  std::vector<Row> rows;
  while (auto block = reader.next()) {
    for (const RawRecord& r : block->records) {
      Row row{{}, r.line, r.ordinal, r.bad, r.reason, r.preset_label, block->where(r)};
      if (!r.bad)
        for (std::uint32_t i = 0; i < r.field_count; ++i) row.fields.emplace_back(block->field(r, i));
      rows.push_back(row);
    }
  }
  return rows;
}

std::vector<Row> parse(const std::string& content, PreprocessOptions options = {}) {
  TempDir dir;
  const std::string path = dir.write("input.csv", content);
  auto reader = make_delimited_reader(path, options, true);
  return read_all(*reader);
}

}  // namespace

BOOST_AUTO_TEST_CASE(quoted_fields_with_escaped_quotes_delimiters_and_newlines) {
  const auto rows = parse(
      "\"1\",\"a \"\"quoted\"\" title\",\"text, with comma\"\n"
      "\"2\",\"two\nlines\",\"x\"\n"
      "\"3\",\"\",\"after\"\n");
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(rows[0].fields == (std::vector<std::string>{"1", "a \"quoted\" title", "text, with comma"}));
  BOOST_TEST(rows[1].fields == (std::vector<std::string>{"2", "two\nlines", "x"}));
  BOOST_TEST(rows[2].fields == (std::vector<std::string>{"3", "", "after"}));
  BOOST_TEST(rows[0].line == 1);
  BOOST_TEST(rows[1].line == 2);
  BOOST_TEST(rows[2].line == 4);  // the embedded newline counts
  BOOST_TEST(rows[2].ordinal == 2);
  BOOST_TEST(!rows[0].bad);
}

BOOST_AUTO_TEST_CASE(crlf_and_missing_final_newline) {
  const auto rows = parse("\"1\",\"a\"\r\n2,b\r\n3,c");
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(rows[0].fields == (std::vector<std::string>{"1", "a"}));
  BOOST_TEST(rows[1].fields == (std::vector<std::string>{"2", "b"}));
  BOOST_TEST(rows[2].fields == (std::vector<std::string>{"3", "c"}));
}

BOOST_AUTO_TEST_CASE(unterminated_quote_is_reported_at_its_line) {
  const auto rows = parse("\"1\",\"ok\"\n\"2\",\"never closed\nmore text\n");
  BOOST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(!rows[0].bad);
  BOOST_TEST(rows[1].bad);
  BOOST_TEST(rows[1].reason == BadRowReason::unterminated_quote);
  BOOST_TEST(rows[1].line == 2);
  BOOST_TEST(rows[1].where.find("input.csv:2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(stray_quote_skips_to_the_next_line_and_recovers) {
  const auto rows = parse("\"1\",\"a\"x,\"b\"\n\"2\",\"c\",\"d\"\n", PreprocessOptions{});
  BOOST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0].bad);
  BOOST_TEST(rows[0].reason == BadRowReason::stray_quote);
  BOOST_TEST(!rows[1].bad);
  BOOST_TEST(rows[1].fields == (std::vector<std::string>{"2", "c", "d"}));
  BOOST_TEST(rows[1].line == 2);
}

BOOST_AUTO_TEST_CASE(wrong_number_of_fields) {
  const auto rows = parse("1,a,b\n2,c\n3,d,e,f\n4,g,h\n");
  BOOST_REQUIRE(rows.size() == 4u);
  BOOST_TEST(!rows[0].bad);
  BOOST_TEST((rows[1].bad && rows[1].reason == BadRowReason::field_count));
  BOOST_TEST((rows[2].bad && rows[2].reason == BadRowReason::field_count));
  BOOST_TEST(!rows[3].bad);
}

BOOST_AUTO_TEST_CASE(row_over_the_size_bound) {
  PreprocessOptions options;
  options.max_row_bytes = 64;
  const auto rows = parse("1,short\n2," + std::string(500, 'x') + "\n3,after\n", options);
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST((rows[1].bad && rows[1].reason == BadRowReason::row_too_long));
  BOOST_TEST(rows[2].fields == (std::vector<std::string>{"3", "after"}));
  BOOST_TEST(rows[2].line == 3);
}

BOOST_AUTO_TEST_CASE(quoted_field_over_the_size_bound_is_one_bad_row_whatever_it_holds) {
  // The quoted text holds newlines and lines that look like rows: they are text of the one bad
  // row, not rows of their own, however the reads split the input.
  std::string long_field;
  for (int i = 0; i < 40; ++i) long_field += "9,injected,row\n";
  const std::string content = "\"1\",\"t\",\"ok\"\n\"2\",\"title\",\"" + long_field + "end\"\n\"3\",\"real\",\"row\"\n";
  for (std::size_t read_bytes : {std::size_t{7}, std::size_t{64}, std::size_t{1} << 20}) {
    PreprocessOptions options;
    options.max_row_bytes = 100;
    options.read_bytes = read_bytes;
    const auto rows = parse(content, options);
    BOOST_REQUIRE_MESSAGE(rows.size() == 3u, "read_bytes " << read_bytes << ": " << rows.size() << " rows");
    BOOST_TEST(!rows[0].bad);
    BOOST_TEST((rows[1].bad && rows[1].reason == BadRowReason::row_too_long));
    BOOST_TEST(rows[2].fields == (std::vector<std::string>{"3", "real", "row"}));
    BOOST_TEST(rows[2].line == 43);
  }
}

BOOST_AUTO_TEST_CASE(lone_cr_crlf_and_lf_line_ends_read_alike) {
  // Old Mac files end lines with a lone CR; Python's csv module reads it as a line end too.
  const std::string content = "1,a\r2,\"b\"\r\r3,c\r\n4,\"d\"\r\n\r\n5,e\n6,f\r";
  PreprocessOptions whole;
  const auto expected = parse(content, whole);
  BOOST_REQUIRE(expected.size() == 6u);
  const std::vector<std::int64_t> lines{1, 2, 4, 5, 7, 8};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST(!expected[i].bad);
    BOOST_TEST(expected[i].fields.size() == 2u);
    BOOST_TEST(expected[i].fields[0] == std::to_string(i + 1));
    BOOST_TEST(expected[i].line == lines[i]);
  }
  for (std::size_t read_bytes : {4u, 5u, 6u, 7u}) {
    PreprocessOptions options;
    options.read_bytes = read_bytes;
    const auto rows = parse(content, options);
    BOOST_REQUIRE(rows.size() == expected.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      BOOST_TEST(rows[i].fields == expected[i].fields, "read_bytes " << read_bytes << " row " << i);
      BOOST_TEST(rows[i].line == expected[i].line, "read_bytes " << read_bytes << " row " << i);
    }
  }
}

BOOST_AUTO_TEST_CASE(tsv_with_header_and_quotes_inside_unquoted_fields) {
  PreprocessOptions options;
  options.delimiter = '\t';
  options.header = true;
  TempDir dir;
  const std::string path =
      dir.write("sst.tsv", "label\tsentence\n0\tit 's a \" quoted word\n1\t\"quoted, tab\tinside\"\n");
  auto reader = make_delimited_reader(path, options, true);
  const auto rows = read_all(*reader);
  BOOST_TEST(reader->header() == (std::vector<std::string>{"label", "sentence"}));
  BOOST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0].fields == (std::vector<std::string>{"0", "it 's a \" quoted word"}));
  BOOST_TEST(rows[1].fields == (std::vector<std::string>{"1", "quoted, tab\tinside"}));
  BOOST_TEST(rows[0].line == 2);
  BOOST_TEST(rows[0].ordinal == 0);
}

BOOST_AUTO_TEST_CASE(many_small_blocks_keep_every_record_in_order) {
  PreprocessOptions options;
  options.block_bytes = 100;
  std::string content;
  for (int i = 0; i < 5000; ++i) content += "\"" + std::to_string(i % 4 + 1) + "\",\"row " + std::to_string(i) + "\"\n";
  const auto rows = parse(content, options);
  BOOST_REQUIRE(rows.size() == 5000u);
  for (int i = 0; i < 5000; ++i) {
    BOOST_TEST(rows[static_cast<std::size_t>(i)].ordinal == i);
    BOOST_TEST(rows[static_cast<std::size_t>(i)].fields[1] == "row " + std::to_string(i));
    BOOST_TEST(rows[static_cast<std::size_t>(i)].line == i + 1);
  }
}

BOOST_AUTO_TEST_CASE(gzip_input_reads_like_plain_and_hashes_stored_bytes) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 20000; ++i) content += "\"1\",\"a fairly long line of text number " + std::to_string(i) + "\"\n";
  const std::string plain = dir.write("plain.csv", content);
  const std::string packed = (dir.path / "packed.csv.gz").string();
  gzFile gz = gzopen(packed.c_str(), "wb");
  gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
  gzclose(gz);
  PreprocessOptions options;
  auto a = make_delimited_reader(plain, options, true);
  auto b = make_delimited_reader(packed, options, true);
  const auto rows_a = read_all(*a);
  const auto rows_b = read_all(*b);
  BOOST_REQUIRE(rows_a.size() == 20000u);
  BOOST_REQUIRE(rows_b.size() == rows_a.size());
  BOOST_TEST(rows_b.back().fields == rows_a.back().fields);
  BOOST_TEST(a->text_bytes() == content.size());
  BOOST_TEST(b->text_bytes() == content.size());
  BOOST_TEST(b->stored_bytes() == fs::file_size(packed));
  BOOST_TEST(a->sha256_hex() != b->sha256_hex());
}

BOOST_AUTO_TEST_CASE(sha256_of_known_bytes) {
  TempDir dir;
  ByteSource source(dir.write("abc", "abc"));
  char buffer[16];
  while (source.read(buffer, sizeof buffer) > 0) {
  }
  // FIPS 180-2 test vector for "abc".
  BOOST_TEST(source.sha256_hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

BOOST_AUTO_TEST_CASE(truncated_gzip_is_an_error_naming_the_file) {
  TempDir dir;
  const std::string packed = (dir.path / "cut.gz").string();
  gzFile gz = gzopen(packed.c_str(), "wb");
  const std::string content(100000, 'x');
  gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
  gzclose(gz);
  fs::resize_file(packed, fs::file_size(packed) / 2);
  ByteSource source(packed);
  std::vector<char> buffer(1 << 16);
  try {
    while (source.read(buffer.data(), buffer.size()) > 0) {
    }
    BOOST_FAIL("a truncated gzip stream must not read as complete");
  } catch (const textscale::IoError& error) {
    BOOST_TEST(std::string(error.what()).find("cut.gz") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(missing_input_and_directory_input_are_errors) {
  BOOST_CHECK_THROW(ByteSource("/nonexistent/file.csv"), textscale::IoError);
  TempDir dir;
  BOOST_CHECK_THROW(ByteSource(dir.path.string()), textscale::IoError);
}

BOOST_AUTO_TEST_CASE(imdb_folder_neg_then_pos_by_numeric_id) {
  TempDir dir;
  dir.write("train/neg/10_2.txt", "neg ten");
  dir.write("train/neg/2_1.txt", "neg two");
  dir.write("train/pos/1_9.txt", "pos one");
  dir.write("train/pos/notes.md", "ignored");
  PreprocessOptions options;
  auto reader = make_imdb_reader((dir.path / "train").string(), options, true);
  const auto rows = read_all(*reader);
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(rows[0].fields[0] == "neg two");
  BOOST_TEST(rows[1].fields[0] == "neg ten");
  BOOST_TEST(rows[2].fields[0] == "pos one");
  BOOST_TEST(rows[0].preset_label == 0);
  BOOST_TEST(rows[2].preset_label == 1);
  BOOST_TEST(rows[1].where.find("neg/10_2.txt") != std::string::npos);
  BOOST_TEST(reader->sha256_hex().size() == 64u);
  BOOST_CHECK_THROW(make_imdb_reader((dir.path / "train/pos").string(), options, true), textscale::InputError);
}

BOOST_AUTO_TEST_CASE(tiny_reads_split_every_token_and_give_the_same_records) {
  // Quotes, "" escapes, CRLF, empty lines and a bad row, read a few bytes at a time so that every
  // state of the reader meets the end of its buffer.
  const std::string content =
      "\xEF\xBB\xBF\"1\",\"a \"\"b\"\"\",\"c,d\"\r\n"
      "\r\n"
      "\"2\",\"multi\nline\",\"x\"\r\n"
      "\n"
      "3,plain,\"q\"z\n"
      "4,\"\",last\r\n";
  PreprocessOptions whole;
  const auto expected = parse(content, whole);
  BOOST_REQUIRE(expected.size() == 4u);
  BOOST_TEST(expected[0].fields == (std::vector<std::string>{"1", "a \"b\"", "c,d"}));  // BOM dropped
  BOOST_TEST(expected[1].fields == (std::vector<std::string>{"2", "multi\nline", "x"}));
  BOOST_TEST(expected[1].line == 3);  // the empty line 2 is skipped, not a record
  BOOST_TEST((expected[2].bad && expected[2].reason == BadRowReason::stray_quote && expected[2].line == 6));
  BOOST_TEST(expected[3].fields == (std::vector<std::string>{"4", "", "last"}));
  BOOST_TEST(expected[3].line == 7);
  for (std::size_t read_bytes : {4u, 5u, 6u, 7u, 11u, 13u}) {
    PreprocessOptions options;
    options.read_bytes = read_bytes;
    const auto rows = parse(content, options);
    BOOST_REQUIRE(rows.size() == expected.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      BOOST_TEST(rows[i].fields == expected[i].fields, "read_bytes " << read_bytes << " row " << i);
      BOOST_TEST(rows[i].line == expected[i].line, "read_bytes " << read_bytes << " row " << i);
      BOOST_TEST(rows[i].bad == expected[i].bad);
    }
  }
}

BOOST_AUTO_TEST_CASE(field_count_is_the_most_common_one_not_the_first_rows) {
  const auto rows = parse("\"1\",\"a\",\"b\",\"extra\"\n\"2\",\"c\",\"d\"\n\"1\",\"e\",\"f\"\n\"2\",\"g\",\"h\"\n");
  BOOST_REQUIRE(rows.size() == 4u);
  BOOST_TEST((rows[0].bad && rows[0].reason == BadRowReason::field_count));
  BOOST_TEST((!rows[1].bad && !rows[2].bad && !rows[3].bad));
}

BOOST_AUTO_TEST_CASE(without_quoting_quotes_are_text) {
  PreprocessOptions options;
  options.delimiter = '\t';
  options.quoting = false;
  const auto rows = parse("0\t\"quoted\" start\n1\t\" never closed\n0\tfine\n", options);
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(rows[0].fields[1] == "\"quoted\" start");
  BOOST_TEST(rows[1].fields[1] == "\" never closed");
  BOOST_TEST(!rows[2].bad);
}
