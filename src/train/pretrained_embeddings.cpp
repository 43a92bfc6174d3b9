#include "textscale/train/pretrained_embeddings.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>

#include "textscale/common/error.h"
#include "textscale/common/interrupt.h"
#include "textscale/preprocess/text.h"

namespace textscale::train {

namespace {

constexpr std::int64_t kMaxDim = 65536;                       // far above any published vectors
constexpr std::size_t kMaxLineBytes = std::size_t{64} << 20;  // a text row of kMaxDim values fits
constexpr std::size_t kMaxWordBytes = std::size_t{1} << 20;   // binary: a space must come before
constexpr std::int64_t kPollRows = 4096;                      // rows between interrupt checks

// `bytes` for a message: quoted, at most 40 bytes, control and non-ASCII bytes as \xNN.
std::string shown(std::string_view bytes) {
  std::string out = "'";
  for (std::size_t i = 0; i < bytes.size() && i < 40; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out + (bytes.size() > 40 ? "...'" : "'");
}

// "18,234"
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

// part / whole as "91.2%", rounded down so that 100.0% means all.
std::string percent(std::int64_t part, std::int64_t whole) {
  const std::int64_t tenths = part * 1000 / whole;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "%";
}

// Buffered reads of a file that may be many GB, with the byte offset for messages. A read
// interrupted by a signal (the handlers do not restart calls) throws Interrupted.
class ByteReader {
 public:
  explicit ByteReader(std::string path) : path_(std::move(path)), buffer_(std::size_t{1} << 20) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError(errno_message("cannot open '" + path_ + "'", errno));
  }
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;
  ~ByteReader() { ::close(fd_); }

  [[nodiscard]] std::int64_t offset() const { return base_ + static_cast<std::int64_t>(pos_); }

  // The next byte, or -1 at the end of the file.
  int get() {
    if (pos_ == end_ && !fill()) return -1;
    return static_cast<unsigned char>(buffer_[pos_++]);
  }

  // Up to `n` bytes into `out`; fewer only at the end of the file.
  std::size_t read(char* out, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      if (pos_ == end_ && !fill()) break;
      const std::size_t take = std::min(n - done, end_ - pos_);
      std::memcpy(out + done, buffer_.data() + pos_, take);
      pos_ += take;
      done += take;
    }
    return done;
  }

  // The bytes up to the next newline (consumed, not stored) into `line`, stopping early past
  // `max_bytes`. False at the end of the file; `newline` says whether the line ended with one.
  bool read_line(std::string& line, std::size_t max_bytes, bool& newline) {
    line.clear();
    newline = false;
    if (pos_ == end_ && !fill()) return false;
    while (line.size() <= max_bytes) {
      if (pos_ == end_ && !fill()) return true;
      const char* start = buffer_.data() + pos_;
      const auto* found = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      const std::size_t take = found ? static_cast<std::size_t>(found - start) : end_ - pos_;
      line.append(start, take);
      pos_ += take;
      if (found) {
        ++pos_;
        newline = true;
        return true;
      }
    }
    return true;
  }

 private:
  bool fill() {
    base_ += static_cast<std::int64_t>(end_);
    pos_ = end_ = 0;
    for (;;) {
      const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
      if (n > 0) {
        end_ = static_cast<std::size_t>(n);
        return true;
      }
      if (n == 0) return false;
      if (errno != EINTR) throw IoError(errno_message("cannot read '" + path_ + "'", errno));
      throw_if_interrupted();
    }
  }

  std::string path_;
  int fd_ = -1;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, end_ = 0;
  std::int64_t base_ = 0;  // offset of buffer_[0] in the file
};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

struct Header {
  std::int64_t count = 0, dim = 0;
};

// Line 1: "COUNT DIM", two positive integers.
Header parse_header(ByteReader& in, const std::string& path, std::int64_t expected_dim) {
  const auto fail = [&](const std::string& what) { throw InputError(path + ": line 1: " + what); };
  std::string line;
  bool newline = false;
  if (!in.read_line(line, 1024, newline)) throw InputError(path + ": empty file (expected a header line 'COUNT DIM')");
  if (line.size() >= 4 && std::memcmp(line.data(), "\xba\x16\x4f\x2f", 4) == 0)
    fail("this is a fastText model (.bin), not word vectors: use the .vec file fastText wrote beside it");
  std::string_view text = trim_right(line);
  if (text.starts_with("\xef\xbb\xbf")) text.remove_prefix(3);  // a UTF-8 byte order mark
  std::vector<std::string_view> fields;
  for (std::size_t i = 0; i < text.size();) {
    while (i < text.size() && is_space(text[i])) ++i;
    std::size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    if (j > i) fields.push_back(text.substr(i, j - i));
    i = j;
  }
  Header header;
  std::int64_t* targets[] = {&header.count, &header.dim};
  bool numbers = fields.size() == 2;
  for (std::size_t f = 0; numbers && f < 2; ++f) {
    const auto [end, error] = std::from_chars(fields[f].data(), fields[f].data() + fields[f].size(), *targets[f]);
    numbers = error == std::errc() && end == fields[f].data() + fields[f].size();
  }
  if (!numbers) {
    std::string hint;
    if (fields.size() > 2) hint = " (a GloVe file has no header: add the line 'COUNT DIM' before its first line)";
    fail("expected the header 'COUNT DIM' (two positive integers), found " + shown(line) + hint);
  }
  if (header.dim == 0) fail("the header gives 0-dimensional vectors");
  if (header.count <= 0 || header.dim < 0)
    fail("expected the header 'COUNT DIM' (two positive integers), found " + shown(line));
  if (header.dim > kMaxDim)
    fail("the header gives " + std::to_string(header.dim) + "-dimensional vectors, more than " +
         std::to_string(kMaxDim));
  if (expected_dim > 0 && header.dim != expected_dim)
    fail("the vectors are " + std::to_string(header.dim) + "-dimensional, the embedding size is " +
         std::to_string(expected_dim));
  return header;
}

// Text when the bytes after the first entry's word, up to its line's end, are characters of
// decimal numbers and spaces, with at least one digit; binary float32 bytes almost never are.
PretrainedFormat detect_format(const std::string& path) {
  ByteReader in(path);
  std::string line;
  bool newline = false;
  if (!in.read_line(line, 1024, newline) || !newline) return PretrainedFormat::text;  // the header's error
  int c = in.get();
  while (c == '\n') c = in.get();
  for (std::size_t n = 0; c != ' ' && c != '\t'; ++n, c = in.get())
    if (c == -1 || c == '\n' || n > kMaxWordBytes) return PretrainedFormat::text;  // no values: the text error
  bool digit = false;
  for (c = in.get(); c != -1 && c != '\n'; c = in.get()) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (!std::strchr(" \t\r+-.eEnNaAiIfFtTyY", c) || c == 0) {
      return PretrainedFormat::binary;
    }
  }
  return digit ? PretrainedFormat::text : PretrainedFormat::binary;
}

// One decimal number as float32; false when it is not one. Values too small for float32 become
// (signed) 0 as strtof would give; too large ones are refused.
bool parse_float(std::string_view field, float& value) {
  if (field.size() > 1 && field[0] == '+' && field[1] != '-') field.remove_prefix(1);
  const char* end = field.data() + field.size();
  auto [stop, error] = std::from_chars(field.data(), end, value);
  if (error == std::errc::result_out_of_range) {
    double wide = 0;
    const auto [wide_stop, wide_error] = std::from_chars(field.data(), end, wide);
    if (wide_stop != end) return false;
    const bool tiny = wide_error == std::errc() ? std::fabs(wide) < 1.0
                                                : field.find("e-") != field.npos || field.find("E-") != field.npos;
    if (!tiny) return false;
    value = field[0] == '-' ? -0.0f : static_cast<float>(wide_error == std::errc() ? wide : 0.0);
    return true;
  }
  return error == std::errc() && stop == end;
}

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Where the vocabulary's words are found: rows of the table, and where each was seen first.
class Matcher {
 public:
  Matcher(const std::vector<std::string>& vocab, PretrainedEmbeddings& out) : out_(out) {
    const auto v = static_cast<std::int64_t>(vocab.size());
    index_.reserve(vocab.size());
    for (std::int64_t id = 1; id < v; ++id) {  // never <pad> (id 0)
      const auto [it, added] = index_.emplace(vocab[static_cast<std::size_t>(id)], static_cast<std::int32_t>(id));
      if (!added)
        throw InputError("the vocabulary holds " + shown(it->first) + " twice (ids " + std::to_string(it->second) +
                         " and " + std::to_string(id) + ")");
    }
    seen_at_.assign(vocab.size(), 0);
  }

  // The row of `word`, or -1. `place` (a line or an entry number, from 1) is remembered for a
  // duplicate; `where` names it in a message.
  template <typename Where>
  std::int64_t find(std::string_view word, std::int64_t place, const Where& where, const char* unit) {
    const auto it = index_.find(word);
    if (it == index_.end()) return -1;
    const auto id = static_cast<std::size_t>(it->second);
    if (seen_at_[id] != 0)
      throw InputError(where() + ": duplicate word " + shown(word) + " (first at " + unit + " " +
                       std::to_string(seen_at_[id]) + ")");
    seen_at_[id] = place;
    out_.matched[id] = 1;
    return it->second;
  }

  float* row(std::int64_t id) { return out_.table.data() + id * out_.dim; }

 private:
  PretrainedEmbeddings& out_;
  std::unordered_map<std::string, std::int32_t, TransparentHash, std::equal_to<>> index_;
  std::vector<std::int64_t> seen_at_;
};

template <typename Where>
void check_word(std::string_view word, const Where& where) {
  const std::size_t bad = preprocess::find_invalid_utf8(word);
  if (bad != std::string_view::npos)
    throw InputError(where() + ": the word " + shown(word) + " is not valid UTF-8 (byte " + std::to_string(bad + 1) +
                     ")");
}

// Row `line_number`: "word v1 .. vDIM" into the matcher's table when the word is in the vocabulary.
void parse_text_row(std::string_view line, std::int64_t line_number, std::int64_t dim, Matcher& matcher,
                    std::vector<float>& values, const std::string& path) {
  const auto where = [&] { return path + ": line " + std::to_string(line_number); };
  line = trim_right(line);
  if (line.empty()) throw InputError(where() + ": empty line (expected a word and " + std::to_string(dim) + " values)");
  if (is_space(line[0])) throw InputError(where() + ": the line starts with a space (an empty word)");
  std::size_t i = 0;
  while (i < line.size() && !is_space(line[i])) ++i;
  const std::string_view word = line.substr(0, i);
  check_word(word, where);
  std::int64_t count = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    std::size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    const std::string_view field = line.substr(i, j - i);
    if (count < dim) {
      float& value = values[static_cast<std::size_t>(count)];
      if (!parse_float(field, value))
        throw InputError(where() + ": value " + std::to_string(count + 1) + " of " + shown(word) + ", " + shown(field) +
                         ", is not a float32 number");
      if (!std::isfinite(value))
        throw InputError(where() + ": value " + std::to_string(count + 1) + " of " + shown(word) + " is " +
                         shown(field) + ", not a finite number");
    }
    ++count;
    i = j;
  }
  if (count != dim)
    throw InputError(where() + ": " + std::to_string(count) + " values for " + shown(word) + ", the header says " +
                     std::to_string(dim));
  const std::int64_t id = matcher.find(word, line_number, where, "line");
  if (id >= 0) std::copy(values.begin(), values.end(), matcher.row(id));
}

void read_text(ByteReader& in, const Header& header, Matcher& matcher, const std::string& path) {
  std::string line;
  std::vector<float> values(static_cast<std::size_t>(header.dim));
  bool newline = false;
  std::int64_t line_number = 1;
  for (std::int64_t k = 0; k < header.count; ++k) {
    if (k % kPollRows == 0) throw_if_interrupted();
    ++line_number;
    if (!in.read_line(line, kMaxLineBytes, newline))
      throw InputError(path + ": line " + std::to_string(line_number) + ": the file ends after " + grouped(k) +
                       " of the " + grouped(header.count) + " words of its header (truncated?)");
    if (line.size() > kMaxLineBytes)
      throw InputError(path + ": line " + std::to_string(line_number) + ": longer than " +
                       std::to_string(kMaxLineBytes >> 20) + " MiB");
    try {
      parse_text_row(line, line_number, header.dim, matcher, values, path);
    } catch (const InputError& error) {
      if (newline) throw;
      throw InputError(std::string(error.what()) + " (the file ends in this line: truncated?)");
    }
  }
  while (in.read_line(line, kMaxLineBytes, newline)) {
    ++line_number;
    if (!trim_right(line).empty())
      throw InputError(path + ": line " + std::to_string(line_number) + ": more words than the header's " +
                       grouped(header.count) + " (" + shown(line) + ")");
  }
}

void read_binary(ByteReader& in, const Header& header, Matcher& matcher, const std::string& path) {
  const auto bytes = static_cast<std::size_t>(header.dim) * sizeof(float);
  std::vector<char> raw(bytes);
  std::vector<float> values(static_cast<std::size_t>(header.dim));
  std::string word;
  for (std::int64_t k = 1; k <= header.count; ++k) {
    if (k % kPollRows == 0) throw_if_interrupted();
    int c = in.get();
    while (c == '\n') c = in.get();  // word2vec and gensim end each vector with one
    const std::int64_t start = in.offset() - 1;
    const auto where = [&] { return path + ": word " + grouped(k) + " at byte " + std::to_string(start); };
    if (c == -1)
      throw InputError(path + ": word " + grouped(k) + " at byte " + std::to_string(in.offset()) +
                       ": the file ends after " + grouped(k - 1) + " of the " + grouped(header.count) +
                       " words of its header (truncated?)");
    word.clear();
    for (; c != ' '; c = in.get()) {
      if (c == -1) throw InputError(where() + ": the file ends inside the word (truncated?)");
      if (c == '\n') throw InputError(where() + ": a newline inside the word " + shown(word) + " (not a binary file?)");
      if (word.size() == kMaxWordBytes)
        throw InputError(where() + ": no space after the word within " + std::to_string(kMaxWordBytes >> 20) +
                         " MiB (not a binary file?)");
      word += static_cast<char>(c);
    }
    if (word.empty()) throw InputError(where() + ": an empty word");
    check_word(word, where);
    const std::size_t got = in.read(raw.data(), bytes);
    if (got != bytes)
      throw InputError(where() + ": the vector of " + shown(word) + " is cut short, " + std::to_string(got) + " of " +
                       std::to_string(bytes) + " bytes (truncated?)");
    for (std::size_t d = 0; d < values.size(); ++d) {
      std::uint32_t bits;
      std::memcpy(&bits, raw.data() + d * sizeof bits, sizeof bits);
      if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
      values[d] = std::bit_cast<float>(bits);
      if (!std::isfinite(values[d]))
        throw InputError(where() + ": value " + std::to_string(d + 1) + " of " + shown(word) + " is " +
                         (std::isnan(values[d]) ? "NaN" : "infinite") + ", not a finite number");
    }
    const std::int64_t id = matcher.find(word, k, where, "word");
    if (id >= 0) std::copy(values.begin(), values.end(), matcher.row(id));
  }
  for (int c = in.get(); c != -1; c = in.get())
    if (!is_space(static_cast<char>(c)) && c != '\n')
      throw InputError(path + ": byte " + std::to_string(in.offset() - 1) + ": more words than the header's " +
                       grouped(header.count));
}

}  // namespace

PretrainedFormat parse_pretrained_format(const std::string& name, const std::string& option) {
  if (name == "auto") return PretrainedFormat::detect;
  if (name == "text") return PretrainedFormat::text;
  if (name == "binary") return PretrainedFormat::binary;
  throw InputError(option + " must be auto, text or binary, not '" + name + "'");
}

const char* format_name(PretrainedFormat format) {
  switch (format) {
    case PretrainedFormat::text:
      return "text";
    case PretrainedFormat::binary:
      return "binary";
    case PretrainedFormat::detect:
      break;
  }
  return "auto";
}

double PretrainedEmbeddings::word_coverage() const {
  return vocabulary_words > 0 ? static_cast<double>(matched_words) / static_cast<double>(vocabulary_words) : 0.0;
}

double PretrainedEmbeddings::token_coverage() const {
  return training_tokens > 0 ? static_cast<double>(matched_tokens) / static_cast<double>(training_tokens) : 0.0;
}

std::string PretrainedEmbeddings::describe() const {
  std::string line = "embeddings " + path + ": " + std::to_string(dim) + "-d, " + grouped(matched_words) + " of " +
                     grouped(vocabulary_words) + " words";
  if (vocabulary_words > 0) line += " (" + percent(matched_words, vocabulary_words) + ")";
  if (!counts_known)
    line += ", token coverage unknown (no vocab_counts)";
  else if (training_tokens > 0)
    line += ", " + percent(matched_tokens, training_tokens) + " of training tokens";
  else
    line += ", no training tokens";
  return line;
}

PretrainedEmbeddings match_pretrained(const std::string& path, const std::vector<std::string>& vocab,
                                      const std::vector<std::int64_t>& vocab_counts, std::int64_t expected_dim,
                                      PretrainedFormat format) {
  if (vocab.size() < 2 || vocab[0] != "<pad>" || vocab[1] != "<unk>")
    throw InputError("pretrained embeddings: the vocabulary must start with <pad> and <unk>");
  if (!vocab_counts.empty() && vocab_counts.size() != vocab.size())
    throw InputError("pretrained embeddings: " + std::to_string(vocab_counts.size()) + " vocabulary counts for " +
                     std::to_string(vocab.size()) + " words");
  if (expected_dim < 0) throw InputError("pretrained embeddings: negative expected dimension");
  PretrainedEmbeddings out;
  out.path = path;
  out.format = format == PretrainedFormat::detect ? detect_format(path) : format;
  ByteReader in(path);
  const Header header = parse_header(in, path, expected_dim);
  out.dim = header.dim;
  out.file_words = header.count;
  out.vocab_size = static_cast<std::int64_t>(vocab.size());
  out.table.assign(vocab.size() * static_cast<std::size_t>(header.dim), 0.0f);
  out.matched.assign(vocab.size(), 0);
  Matcher matcher(vocab, out);
  if (out.format == PretrainedFormat::text)
    read_text(in, header, matcher, path);
  else
    read_binary(in, header, matcher, path);

  out.vocabulary_words = out.vocab_size - 2;
  out.unk_matched = out.matched[1] != 0;
  out.counts_known = !vocab_counts.empty();
  for (std::size_t id = 2; id < vocab.size(); ++id) {
    const std::int64_t count = vocab_counts.empty() ? 0 : vocab_counts[id];
    out.training_tokens += count;
    if (out.matched[id]) {
      ++out.matched_words;
      out.matched_tokens += count;
    }
  }
  return out;
}

}  // namespace textscale::train
