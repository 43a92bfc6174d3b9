#include "textscale/train/dataset.h"

#include <algorithm>
#include <cstdio>

#include "textscale/common/error.h"
#include "textscale/common/hash.h"
#include "textscale/data/dataset_file.h"

namespace textscale::train {

namespace {

constexpr std::size_t kChunkCacheBytes = std::size_t{256} << 20;  // per training file and rank

data::DatasetFile open_file(const std::string& path, engine::IdType ids, std::size_t chunk_cache_bytes = 0) {
  data::DatasetFile file(path, {.name = {}, .chunk_cache_bytes = chunk_cache_bytes});
  if (ids == engine::IdType::words) {
    file.require_words();
    file.require_vocabulary();
  } else {
    file.require_chars();
  }
  return file;
}

Encoding encoding_of(const data::DatasetFile& file, engine::IdType ids) {
  Encoding e;
  e.ids = ids;
  if (ids == engine::IdType::words) {
    e.word_length = file.word_length();
    e.vocab_size = file.vocab_size();
    e.vocab_digest = vocabulary_digest(file.read_vocabulary());
  } else {
    e.alphabet = file.alphabet();
    e.char_length = file.char_length();
    e.char_order = file.char_order();
  }
  e.num_classes = file.num_classes();
  e.classes = file.classes();
  return e;
}

// A hash of what identifies a file's content: its content digest when it has one, and rows,
// encoding, the source's SHA-256 and how `textscale preprocess` read it (format, unescaping,
// split). Not the paths or creation time: two copies of one file on two nodes are the same data.
std::uint64_t fingerprint_of(const data::DatasetFile& file, const Encoding& e, std::int64_t rows) {
  std::string identity = file.content_sha256() + "|" + std::to_string(rows) + "|" + e.alphabet + "|" +
                         std::to_string(e.char_length) + "|" + std::to_string(e.num_classes) + "|" + e.char_order +
                         "|" + std::to_string(e.word_length) + "|" + e.vocab_digest + "|";
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
  if (ids != other.ids) fail("input", to_string(ids), to_string(other.ids));
  if (ids == engine::IdType::words) {
    if (vocab_size != other.vocab_size || vocab_digest != other.vocab_digest)
      fail("vocabulary (preprocess the file with --vocab-from the training file)",
           std::to_string(vocab_size) + " words, digest " + vocab_digest,
           std::to_string(other.vocab_size) + " words, digest " + other.vocab_digest);
    if (word_length != other.word_length)
      fail("words a row", std::to_string(word_length), std::to_string(other.word_length));
  } else {
    if (alphabet != other.alphabet) fail("alphabet", "'" + alphabet + "'", "'" + other.alphabet + "'");
    if (char_length != other.char_length)
      fail("character length", std::to_string(char_length), std::to_string(other.char_length));
    if (char_order != other.char_order) fail("character order", char_order, other.char_order);
  }
  if (num_classes != other.num_classes)
    fail("number of classes", std::to_string(num_classes), std::to_string(other.num_classes));
  if (!classes.empty() && !other.classes.empty() && classes != other.classes) {
    std::string a, b;
    for (const auto& c : classes) a += (a.empty() ? "" : ",") + c;
    for (const auto& c : other.classes) b += (b.empty() ? "" : ",") + c;
    fail("class names", a, b);
  }
}

std::string vocabulary_digest(const std::vector<std::string>& vocab) {
  std::string all;
  for (const auto& word : vocab) all += word + "\n";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(all)));
  return hex;
}

Encoding read_encoding(const std::string& path, engine::IdType ids) {
  return encoding_of(open_file(path, ids), ids);
}

TextSource read_text_source(const std::string& path, engine::IdType ids) {
  const data::DatasetFile file = open_file(path, ids);
  TextSource source;
  source.options_json = file.text_attribute("options").value_or("");
  if (source.options_json.empty()) return source;
  if (ids == engine::IdType::words) {
    source.tokenizer = file.text_attribute("tokenizer").value_or("");
    if (source.tokenizer.empty()) throw InputError(path + ": attribute 'tokenizer' is missing");
    source.vocab = file.read_vocabulary();
  }
  return source;
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

Dataset load_dataset(const std::string& path, engine::IdType ids, std::int64_t begin, std::int64_t end) {
  const data::DatasetFile file = open_file(path, ids);
  Dataset d;
  d.path = path;
  d.encoding = encoding_of(file, ids);
  d.content_sha256 = file.content_sha256();
  d.total_rows = file.rows();
  d.fingerprint = fingerprint_of(file, d.encoding, d.total_rows);
  d.first_row = begin;
  d.rows = row_range(path, d.total_rows, begin, end);
  const auto rows = static_cast<std::size_t>(d.rows), width = static_cast<std::size_t>(d.encoding.width());
  d.labels.resize(rows);
  file.read_labels(begin, d.rows, d.labels.data());
  if (ids == engine::IdType::words) {
    d.words.resize(rows * width);
    file.read_words(begin, d.rows, d.words.data());
    d.lengths.assign(rows, static_cast<std::int32_t>(width));
    if (!file.shape("word_lengths").empty()) file.read_word_lengths(begin, d.rows, d.lengths.data());
  } else {
    d.chars.resize(rows * width);
    file.read_chars(begin, d.rows, d.chars.data());
  }
  return d;
}

std::int64_t cut_to_longest(std::int32_t* words, std::int64_t count, std::int64_t width, const std::int32_t* lengths) {
  std::int64_t longest = 1;
  for (std::int64_t i = 0; i < count; ++i) longest = std::max<std::int64_t>(longest, lengths[i]);
  longest = std::min(longest, width);
  if (longest < width)  // row i moves down to i * longest <= i * width: a forward copy is safe
    for (std::int64_t i = 1; i < count; ++i) std::copy_n(words + i * width, longest, words + i * longest);
  return longest;
}

engine::InputBatch Dataset::batch(std::int64_t begin, std::int64_t count, std::vector<std::int32_t>& scratch) const {
  if (begin < 0 || count < 0 || begin + count > rows)
    throw Error(path + ": rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") outside the " +
                std::to_string(rows) + " held");
  const std::int64_t width = encoding.width();
  if (encoding.ids == engine::IdType::characters)
    return engine::InputBatch::characters(chars.data() + begin * width, count, width);
  scratch.assign(words.begin() + begin * width, words.begin() + (begin + count) * width);
  const std::int32_t* row_lengths = lengths.data() + begin;
  const std::int64_t cut = cut_to_longest(scratch.data(), count, width, row_lengths);
  return engine::InputBatch::words(scratch.data(), count, cut, row_lengths);
}

struct ShardReader::Impl {
  data::DatasetFile file;
};

ShardReader::ShardReader(const std::string& path, engine::IdType ids, std::int64_t limit_rows)
    : path_(path),
      // Rows are read in random order: a chunk cache of kChunkCacheBytes keeps the chunks read so
      // far (HDF5's default, 1 MiB, holds a few chunks, so nearly every row would read its chunk
      // again).
      impl_(std::make_shared<Impl>(Impl{open_file(path, ids, kChunkCacheBytes)})) {
  const data::DatasetFile& file = impl_->file;
  encoding_ = encoding_of(file, ids);
  content_sha256_ = file.content_sha256();
  rows_ = limit_rows >= 0 ? std::min(limit_rows, file.rows()) : file.rows();
  labels_.resize(static_cast<std::size_t>(rows_));
  file.read_labels(0, rows_, labels_.data());
  if (ids == engine::IdType::words) {
    lengths_.assign(static_cast<std::size_t>(rows_), static_cast<std::int32_t>(encoding_.word_length));
    if (!file.shape("word_lengths").empty()) file.read_word_lengths(0, rows_, lengths_.data());
  }
  fingerprint_ = fingerprint_of(file, encoding_, rows_);
}

std::int64_t file_rows(const std::string& path, engine::IdType ids) {
  return open_file(path, ids).rows();
}

void ShardReader::read(const std::int64_t* rows, std::int64_t count, void* ids, std::int32_t* labels,
                       std::int32_t* lengths) {
  const bool words = encoding_.ids == engine::IdType::words;
  // Bytes a row.
  const std::int64_t row_bytes = encoding_.width() * (words ? std::int64_t{sizeof(std::int32_t)} : 1);
  auto* out = static_cast<std::uint8_t*>(ids);
  sorted_.clear();
  for (std::int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= rows_)
      throw Error(path_ + ": row " + std::to_string(rows[i]) + " requested, the file has " + std::to_string(rows_));
    sorted_.emplace_back(rows[i], i);
    labels[i] = labels_[static_cast<std::size_t>(rows[i])];
    if (words && lengths) lengths[i] = lengths_[static_cast<std::size_t>(rows[i])];
  }
  std::sort(sorted_.begin(), sorted_.end());
  for (std::size_t a = 0; a < sorted_.size();) {
    std::size_t b = a + 1;  // [a, b): consecutive distinct rows, one read
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first + 1) ++b;
    const std::int64_t first = sorted_[a].first, run = static_cast<std::int64_t>(b - a);
    staging_.resize(static_cast<std::size_t>(run * row_bytes));
    if (words)
      impl_->file.read_words(first, run, reinterpret_cast<std::int32_t*>(staging_.data()));
    else
      impl_->file.read_chars(first, run, staging_.data());
    for (std::size_t k = a; k < b; ++k) {
      const std::uint8_t* row = staging_.data() + (sorted_[k].first - first) * row_bytes;
      std::copy(row, row + row_bytes, out + sorted_[k].second * row_bytes);
    }
    // A repeated row (same index twice) is copied from the first copy.
    while (b < sorted_.size() && sorted_[b].first == sorted_[b - 1].first) {
      std::copy(out + sorted_[b - 1].second * row_bytes, out + sorted_[b - 1].second * row_bytes + row_bytes,
                out + sorted_[b].second * row_bytes);
      ++b;
    }
    a = b;
  }
}

}  // namespace textscale::train
