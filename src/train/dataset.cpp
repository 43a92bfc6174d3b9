#include "textscale/train/dataset.h"

#include <algorithm>

#include "textscale/common/error.h"
#include "textscale/common/hash.h"
#include "textscale/data/dataset_file.h"

namespace textscale::train {

namespace {

constexpr std::size_t kChunkCacheBytes = std::size_t{256} << 20;  // per training file and rank

data::DatasetFile open_char_file(const std::string& path, std::size_t chunk_cache_bytes = 0) {
  data::DatasetFile file(path, {.name = {}, .chunk_cache_bytes = chunk_cache_bytes});
  file.require_chars();
  return file;
}

Encoding encoding_of(const data::DatasetFile& file) {
  Encoding e;
  e.alphabet = file.alphabet();
  e.char_length = file.char_length();
  e.char_order = file.char_order();
  e.num_classes = file.num_classes();
  e.classes = file.classes();
  return e;
}

// A hash of what identifies a file's content: its content digest when it has one, and rows,
// encoding, the source's SHA-256 and how `textscale preprocess` read it (format, unescaping,
// split). Not the paths or creation time: two copies of one file on two nodes are the same data.
std::uint64_t fingerprint_of(const data::DatasetFile& file, std::int64_t rows) {
  std::string identity = file.content_sha256() + "|" + std::to_string(rows) + "|" + file.alphabet() + "|" +
                         std::to_string(file.char_length()) + "|" + std::to_string(file.num_classes()) + "|" +
                         file.char_order() + "|";
  for (const char* name : {"source_sha256", "input_format", "unescape", "split"})
    identity += file.text_attribute(name).value_or("") + "|";
  return fnv1a(identity);
}

}  // namespace

void Encoding::check_compatible(const Encoding& other, const std::string& this_source,
                                const std::string& other_source) const {
  auto fail = [&](const std::string& what, const std::string& a, const std::string& b) {
    throw InputError(other_source + " does not match " + this_source + ": " + what + " " + b + " vs " + a);
  };
  if (alphabet != other.alphabet) fail("alphabet", "'" + alphabet + "'", "'" + other.alphabet + "'");
  if (char_length != other.char_length)
    fail("character length", std::to_string(char_length), std::to_string(other.char_length));
  if (char_order != other.char_order) fail("character order", char_order, other.char_order);
  if (num_classes != other.num_classes)
    fail("number of classes", std::to_string(num_classes), std::to_string(other.num_classes));
  if (!classes.empty() && !other.classes.empty() && classes != other.classes) {
    std::string a, b;
    for (const auto& c : classes) a += (a.empty() ? "" : ",") + c;
    for (const auto& c : other.classes) b += (b.empty() ? "" : ",") + c;
    fail("class names", a, b);
  }
}

Encoding read_encoding(const std::string& path) {
  return encoding_of(open_char_file(path));
}

namespace {

// The rows [begin, end) of a file of `total` rows (end < 0 or past the end: to the end); throws
// InputError naming the file for a range outside it. Returns the number of rows.
std::int64_t row_range(const std::string& path, std::int64_t total, std::int64_t begin, std::int64_t end) {
  if (end < 0 || end > total) end = total;
  if (begin < 0 || begin > end)
    throw InputError(path + ": row range [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") outside the file's " + std::to_string(total) + " rows");
  return end - begin;
}

}  // namespace

CharDataset load_char_dataset(const std::string& path, std::int64_t begin, std::int64_t end) {
  const data::DatasetFile file = open_char_file(path);
  CharDataset d;
  d.path = path;
  d.encoding = encoding_of(file);
  d.content_sha256 = file.content_sha256();
  d.total_rows = file.rows();
  d.first_row = begin;
  d.rows = row_range(path, d.total_rows, begin, end);
  d.chars.resize(static_cast<std::size_t>(d.rows * d.encoding.char_length));
  d.labels.resize(static_cast<std::size_t>(d.rows));
  file.read_chars(begin, d.rows, d.chars.data());
  file.read_labels(begin, d.rows, d.labels.data());
  return d;
}

WordDataset load_word_dataset(const std::string& path, std::int64_t begin, std::int64_t end) {
  const data::DatasetFile file(path);
  file.require_words();
  file.require_vocabulary();
  WordDataset d;
  d.path = path;
  d.word_length = file.word_length();
  d.vocab_size = file.vocab_size();
  d.num_classes = file.num_classes();
  d.content_sha256 = file.content_sha256();
  d.total_rows = file.rows();
  d.first_row = begin;
  d.rows = row_range(path, d.total_rows, begin, end);
  d.words.resize(static_cast<std::size_t>(d.rows * d.word_length));
  d.labels.resize(static_cast<std::size_t>(d.rows));
  file.read_words(begin, d.rows, d.words.data());
  file.read_labels(begin, d.rows, d.labels.data());
  if (!file.shape("word_lengths").empty()) {
    d.lengths.resize(static_cast<std::size_t>(d.rows));
    file.read_word_lengths(begin, d.rows, d.lengths.data());
  }
  return d;
}

engine::InputBatch WordDataset::batch(std::int64_t begin, std::int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > rows)
    throw Error(path + ": rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") outside the " +
                std::to_string(rows) + " held");
  return engine::InputBatch::words(words.data() + begin * word_length, count, word_length,
                                   lengths.empty() ? nullptr : lengths.data() + begin);
}

struct ShardReader::Impl {
  data::DatasetFile file;
};

ShardReader::ShardReader(const std::string& path, std::int64_t limit_rows)
    : path_(path),
      // Rows are read in random order: a chunk cache of kChunkCacheBytes keeps the chunks read so
      // far (HDF5's default, 1 MiB, holds a few chunks, so nearly every row would read its chunk
      // again).
      impl_(std::make_shared<Impl>(Impl{open_char_file(path, kChunkCacheBytes)})) {
  const data::DatasetFile& file = impl_->file;
  encoding_ = encoding_of(file);
  content_sha256_ = file.content_sha256();
  rows_ = limit_rows >= 0 ? std::min(limit_rows, file.rows()) : file.rows();
  labels_.resize(static_cast<std::size_t>(rows_));
  file.read_labels(0, rows_, labels_.data());
  fingerprint_ = fingerprint_of(file, rows_);
}

std::uint64_t file_fingerprint(const std::string& path) {
  const data::DatasetFile file = open_char_file(path);
  return fingerprint_of(file, file.rows());
}

void ShardReader::read(const std::int64_t* rows, std::int64_t count, std::uint8_t* codes, std::int32_t* labels) {
  const std::int64_t length = encoding_.char_length;
  sorted_.clear();
  for (std::int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= rows_)
      throw Error(path_ + ": row " + std::to_string(rows[i]) + " requested, the file has " + std::to_string(rows_));
    sorted_.emplace_back(rows[i], i);
    labels[i] = labels_[static_cast<std::size_t>(rows[i])];
  }
  std::sort(sorted_.begin(), sorted_.end());
  for (std::size_t a = 0; a < sorted_.size();) {
    std::size_t b = a + 1;  // [a, b): consecutive distinct rows, one read
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first + 1) ++b;
    const std::int64_t first = sorted_[a].first, run = static_cast<std::int64_t>(b - a);
    staging_.resize(static_cast<std::size_t>(run * length));
    impl_->file.read_chars(first, run, staging_.data());
    for (std::size_t k = a; k < b; ++k) {
      const std::uint8_t* row = staging_.data() + (sorted_[k].first - first) * length;
      std::copy(row, row + length, codes + sorted_[k].second * length);
    }
    // A repeated row (same index twice) is copied from the first copy.
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first) {
      std::copy(codes + sorted_[b - 1].second * length, codes + sorted_[b - 1].second * length + length,
                codes + sorted_[b].second * length);
      ++b;
    }
    a = b;
  }
}

}  // namespace textscale::train
