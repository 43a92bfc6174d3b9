#include "textscale/preprocess/record_reader.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "textscale/common/error.h"

namespace textscale::preprocess {

const char* to_string(BadRowReason reason) {
  switch (reason) {
    case BadRowReason::unterminated_quote:
      return "unterminated quote";
    case BadRowReason::stray_quote:
      return "character after closing quote";
    case BadRowReason::field_count:
      return "wrong number of fields";
    case BadRowReason::row_too_long:
      return "row too long";
    case BadRowReason::label_not_integer:
      return "label not an integer";
    case BadRowReason::label_out_of_range:
      return "label out of range";
    case BadRowReason::unknown_label_name:
      return "unknown class name";
    case BadRowReason::empty_text:
      return "empty text";
    case BadRowReason::invalid_utf8:
      return "invalid UTF-8";
    case BadRowReason::unreadable_file:
      return "unreadable file";
    case BadRowReason::invalid_json:
      return "invalid JSON";
    case BadRowReason::count_:
      break;
  }
  return "?";
}

namespace {

// Also bounds the memory of a block's encoded rows (about 2.2 KB a row with the default sizes).
constexpr std::size_t kMaxRecordsPerBlock = 4096;

class DelimitedReader final : public RecordReader {
 public:
  DelimitedReader(std::unique_ptr<ByteSource> source, const PreprocessOptions& options)
      : source_(std::move(source)), options_(options), buffer_(std::max<std::size_t>(options.read_bytes, 4)) {
    if (options_.header) {
      Block scratch;
      scratch.sources.push_back(source_->path());
      RawRecord record;
      if (read_record(scratch, record)) {
        if (record.bad)
          throw InputError(scratch.where(record) + ": header: " + to_string(record.reason) + ": " + record.detail);
        for (std::uint32_t i = 0; i < record.field_count; ++i) header_.emplace_back(scratch.field(record, i));
        expected_fields_ = static_cast<int>(record.field_count);
      }
    }
  }

  std::optional<Block> next() override {
    Block block;
    block.sources.push_back(source_->path());
    block.arena.reserve(options_.block_bytes + options_.block_bytes / 4);
    while (block.arena.size() < options_.block_bytes && block.records.size() < kMaxRecordsPerBlock) {
      RawRecord record;
      if (!read_record(block, record)) break;
      record.ordinal = ordinal_++;
      block.records.push_back(std::move(record));
    }
    if (block.records.empty()) return std::nullopt;
    if (expected_fields_ < 0) settle_field_count(block);
    return block;
  }

  std::string sha256_hex() const override { return source_->sha256_hex(); }
  std::uint64_t stored_bytes() const override { return source_->stored_bytes(); }
  std::uint64_t text_bytes() const override { return text_bytes_; }
  const std::vector<std::string>& header() const override { return header_; }

 private:
  enum class State { field_start, unquoted, quoted, after_quote, skip_line };

  bool fill() {
    if (eof_) return false;
    pos_ = 0;
    end_ = 0;
    // The first fill gathers at least 3 bytes, to see a byte order mark.
    for (std::size_t got = 1; got > 0 && (end_ == 0 || (first_fill_ && end_ < 3));)
      end_ += got = source_->read(buffer_.data() + end_, buffer_.size() - end_);
    text_bytes_ += end_;
    if (end_ == 0) eof_ = true;
    if (first_fill_) {
      // A UTF-8 byte order mark at the start of the input is not text.
      first_fill_ = false;
      if (end_ >= 3 && std::memcmp(buffer_.data(), "\xEF\xBB\xBF", 3) == 0) pos_ = 3;
    }
    return end_ > pos_;
  }

  void end_field(Block& block, RawRecord& record, std::size_t field_start) {
    block.fields.push_back(FieldSpan{static_cast<std::uint32_t>(field_start),
                                     static_cast<std::uint32_t>(block.arena.size() - field_start)});
    ++record.field_count;
  }

  // A line ended at the CR just consumed: a LF right after it is part of that line end (CRLF),
  // skipped at the next record's start, even when it comes with the next buffer.
  void end_line_at_cr() {
    if (pos_ < end_ && buffer_[pos_] == '\n') {
      ++pos_;
    } else {
      after_cr_ = true;
    }
    ++line_;
  }

  // A line ended at the character just consumed: a CR (end_line_at_cr) or a LF.
  void end_line(bool at_cr) {
    if (at_cr)
      end_line_at_cr();
    else
      ++line_;
  }

  void mark_bad(RawRecord& record, BadRowReason reason, std::string detail) {
    if (record.bad) return;
    record.bad = true;
    record.reason = reason;
    record.detail = std::move(detail);
  }
  // Ends the record: checks its size, and its number of fields against the header or, without
  // one, against the most common count in the first block (settle_field_count).
  void finish_record(const Block& block, std::size_t record_start, RawRecord& record) {
    if (record.bad) return;
    if (block.arena.size() - record_start > options_.max_row_bytes) {
      mark_bad(record, BadRowReason::row_too_long,
               "longer than --max-row-bytes " + std::to_string(options_.max_row_bytes));
      return;
    }
    if (expected_fields_ >= 0) check_field_count(record);
  }

  void check_field_count(RawRecord& record) {
    if (static_cast<int>(record.field_count) != expected_fields_)
      mark_bad(record, BadRowReason::field_count,
               "expected " + std::to_string(expected_fields_) + " fields, found " + std::to_string(record.field_count));
  }

  // Without a header, the number of fields is the most common one in the first block (ties: the
  // first seen), so that one malformed first row does not condemn the rows after it.
  void settle_field_count(Block& block) {
    std::vector<std::pair<std::uint32_t, std::size_t>> seen;  // (fields, rows), in first-seen order
    for (const RawRecord& record : block.records) {
      if (record.bad) continue;
      auto found = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == record.field_count; });
      if (found == seen.end())
        seen.emplace_back(record.field_count, 1);
      else
        ++found->second;
    }
    if (seen.empty()) return;  // decided by a later block
    expected_fields_ = static_cast<int>(std::max_element(seen.begin(), seen.end(), [](const auto& a, const auto& b) {
                                          return a.second < b.second;
                                        })->first);
    for (RawRecord& record : block.records)
      if (!record.bad) check_field_count(record);
  }

  // Parses one record into the block; false when the input is exhausted before a record starts.
  // The unquoted part of a field, up to a delimiter or the end of the line (or of the buffer).
  // Returns true when the record ended.
  bool read_unquoted(Block& block, RawRecord& record, std::size_t record_start, std::size_t& field_start,
                     State& state) {
    const char* begin = buffer_.data() + pos_;
    const std::size_t available = end_ - pos_;
    const char* newline = static_cast<const char*>(std::memchr(begin, '\n', available));
    std::size_t limit = newline ? static_cast<std::size_t>(newline - begin) : available;
    // A carriage return ends the line too: CRLF, or a lone CR (old Mac files; Python's csv
    // module reads them the same way).
    const char* cr = static_cast<const char*>(std::memchr(begin, '\r', limit));
    if (cr) limit = static_cast<std::size_t>(cr - begin);
    const char* stop = static_cast<const char*>(std::memchr(begin, options_.delimiter, limit));
    if (stop) {
      block.arena.append(begin, static_cast<std::size_t>(stop - begin));
      end_field(block, record, field_start);
      field_start = block.arena.size();
      pos_ += static_cast<std::size_t>(stop - begin) + 1;
      state = State::field_start;
    } else if (cr || newline) {
      block.arena.append(begin, limit);
      end_field(block, record, field_start);
      pos_ += limit + 1;
      end_line(cr != nullptr);
      finish_record(block, record_start, record);
      return true;
    } else {
      block.arena.append(begin, available);
      pos_ = end_;
    }
    return false;
  }

  // The character after a quoted field's closing quote: "" (a literal quote), the delimiter, the
  // end of the line, or anything else (a bad record, skipped to the end of its line). Returns true
  // when the record ended.
  bool read_after_quote(Block& block, RawRecord& record, std::size_t record_start, std::size_t& field_start,
                        State& state, std::int64_t quote_line) {
    const char c = buffer_[pos_];
    if (c == '"') {  // "" inside a quoted field: one literal quote
      block.arena.push_back('"');
      ++pos_;
      state = State::quoted;
    } else if (c == options_.delimiter) {
      end_field(block, record, field_start);
      field_start = block.arena.size();
      ++pos_;
      state = State::field_start;
    } else if (c == '\n' || c == '\r') {
      end_field(block, record, field_start);
      ++pos_;
      end_line(c == '\r');
      finish_record(block, record_start, record);
      return true;
    } else {
      mark_bad(record, BadRowReason::stray_quote,
               std::string("unexpected '") + c + "' after the closing quote of field " +
                   std::to_string(record.field_count + 1) + " (opened on line " + std::to_string(quote_line) +
                   "; --no-quoting reads quotes as text)");
      state = State::skip_line;
    }
    return false;
  }

  bool read_record(Block& block, RawRecord& record) {
    record.line = line_;
    record.source = 0;
    record.first_field = static_cast<std::uint32_t>(block.fields.size());
    record.field_count = 0;
    const std::size_t record_start = block.arena.size();
    std::size_t field_start = record_start;
    State state = State::field_start;
    bool started = false;
    std::int64_t quote_line = 0;

    for (;;) {
      if (pos_ == end_ && !fill()) {
        // End of input.
        if (!started) return false;
        if (state == State::quoted) {
          mark_bad(record, BadRowReason::unterminated_quote,
                   "quoted field opened on line " + std::to_string(quote_line) +
                       " never closes (--no-quoting reads quotes as text)");
        }
        if (state != State::skip_line) end_field(block, record, field_start);
        finish_record(block, record_start, record);
        return true;
      }
      started = true;
      if (block.arena.size() - record_start > options_.max_row_bytes) {
        mark_bad(record, BadRowReason::row_too_long,
                 "longer than --max-row-bytes " + std::to_string(options_.max_row_bytes));
        // Parsing goes on to where the record really ends (a newline inside quotes is text, not
        // the end), but what was copied is dropped: the arena stays bounded.
        block.arena.resize(record_start);
        block.fields.resize(record.first_field);
        record.field_count = 0;
        field_start = record_start;
      }
      const char* data = buffer_.data();
      if (state == State::field_start && record.field_count == 0 && block.arena.size() == record_start &&
          (data[pos_] == '\n' || data[pos_] == '\r')) {
        // Empty lines are skipped. A line ends at LF, CRLF or a lone CR; the LF of a CRLF whose
        // CR ended the previous line is not a line of its own.
        if (data[pos_] == '\r' || !after_cr_) ++line_;
        after_cr_ = data[pos_] == '\r';
        ++pos_;
        record.line = line_;
        started = false;
        continue;
      }
      after_cr_ = false;
      switch (state) {
        case State::field_start:
          if (data[pos_] == '"' && options_.quoting) {
            quote_line = line_;
            ++pos_;
            state = State::quoted;
          } else {
            state = State::unquoted;
          }
          break;
        case State::unquoted:
          if (read_unquoted(block, record, record_start, field_start, state)) return true;
          break;
        case State::quoted: {
          const char* begin = data + pos_;
          const std::size_t available = end_ - pos_;
          const char* quote = static_cast<const char*>(std::memchr(begin, '"', available));
          const std::size_t length = quote ? static_cast<std::size_t>(quote - begin) : available;
          line_ += std::count(begin, begin + length, '\n');
          block.arena.append(begin, length);
          pos_ += length;
          if (quote) {
            ++pos_;
            state = State::after_quote;
          }
          break;
        }
        case State::after_quote:
          if (read_after_quote(block, record, record_start, field_start, state, quote_line)) return true;
          break;
        case State::skip_line: {
          const char* begin = data + pos_;
          const char* newline = static_cast<const char*>(std::memchr(begin, '\n', end_ - pos_));
          const std::size_t limit = newline ? static_cast<std::size_t>(newline - begin) : end_ - pos_;
          const char* cr = static_cast<const char*>(std::memchr(begin, '\r', limit));
          if (cr || newline) {
            pos_ += (cr ? static_cast<std::size_t>(cr - begin) : limit) + 1;
            end_line(cr != nullptr);
            // Drop whatever part of the bad record was copied; keep its fields empty.
            block.arena.resize(record_start);
            block.fields.resize(record.first_field);
            record.field_count = 0;
            return true;
          }
          pos_ = end_;
          break;
        }
      }
    }
  }

  std::unique_ptr<ByteSource> source_;
  const PreprocessOptions& options_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
  bool first_fill_ = true;
  bool after_cr_ = false;  // the last line ended at a CR at the end of the buffer
  std::int64_t line_ = 1;
  std::int64_t ordinal_ = 0;
  int expected_fields_ = -1;
  std::uint64_t text_bytes_ = 0;
  std::vector<std::string> header_;
};

class ImdbReader final : public RecordReader {
 public:
  ImdbReader(const std::string& folder, const PreprocessOptions& options, bool hash)
      : options_(options), root_(folder) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(root_))
      throw IoError("input '" + folder + "' is not a folder (--format imdb reads an aclImdb split folder)");
    for (const auto& [name, label] : {std::pair{"neg", 0}, std::pair{"pos", 1}}) {
      const fs::path dir = root_ / name;
      if (!fs::is_directory(dir))
        throw InputError("input '" + folder + "' is not an aclImdb split folder: '" + dir.string() + "' is missing");
      std::vector<std::pair<std::uint64_t, fs::path>> entries;
      std::error_code error;
      for (fs::directory_iterator entry(dir, error), end; !error && entry != end; entry.increment(error)) {
        if (entry->path().extension() != ".txt") continue;
        const std::string stem = entry->path().filename().string();
        std::uint64_t id = UINT64_MAX;
        std::from_chars(stem.data(), stem.data() + stem.size(), id);
        entries.emplace_back(id, entry->path());
      }
      if (error) throw IoError("cannot list '" + dir.string() + "': " + error.message());
      std::sort(entries.begin(), entries.end());
      for (auto& [id, path] : entries) files_.emplace_back(std::move(path), label);
    }
    if (hash) sha_ = std::make_unique<Sha256>();
  }

  std::optional<Block> next() override {
    if (index_ >= files_.size()) {
      if (sha_ && digest_.empty()) digest_ = sha_->hex();
      return std::nullopt;
    }
    Block block;
    while (index_ < files_.size() && block.arena.size() < options_.block_bytes &&
           block.records.size() < kMaxRecordsPerBlock) {
      const auto& [path, label] = files_[index_];
      RawRecord record;
      record.ordinal = static_cast<std::int64_t>(index_++);
      record.line = 0;
      record.source = static_cast<std::int32_t>(block.sources.size());
      block.sources.push_back(path.string());
      record.preset_label = label;
      record.first_field = static_cast<std::uint32_t>(block.fields.size());
      std::string content;
      if (std::string problem = read_file(path, content, options_.max_row_bytes); !problem.empty()) {
        record.bad = true;
        record.reason = BadRowReason::unreadable_file;
        record.detail = std::move(problem);
      } else if (content.size() > options_.max_row_bytes) {
        record.bad = true;
        record.reason = BadRowReason::row_too_long;
        record.detail = "longer than --max-row-bytes " + std::to_string(options_.max_row_bytes);
      } else {
        block.fields.push_back(
            FieldSpan{static_cast<std::uint32_t>(block.arena.size()), static_cast<std::uint32_t>(content.size())});
        block.arena += content;
        record.field_count = 1;
      }
      if (sha_) {
        // Hash of the split: relative path, a NUL, then the content, file after file.
        std::error_code error;  // e.g. a symlink loop: the path as listed
        std::filesystem::path relative_path = std::filesystem::relative(path, root_, error);
        if (error) relative_path = path.lexically_relative(root_);
        const std::string relative = relative_path.generic_string();
        sha_->update(relative.data(), relative.size() + 1);
        sha_->update(content.data(), content.size());
      }
      stored_ += content.size();
      block.records.push_back(std::move(record));
    }
    if (index_ >= files_.size() && sha_ && digest_.empty()) digest_ = sha_->hex();
    return block;
  }

  std::string sha256_hex() const override { return digest_; }
  std::uint64_t stored_bytes() const override { return stored_; }
  std::uint64_t text_bytes() const override { return stored_; }
  const std::vector<std::string>& header() const override { return header_; }

 private:
  // The file into `content`, at most `max_bytes` + 1 bytes of it (enough to tell it is too long);
  // on failure returns why. Only regular files: a folder, FIFO or device named *.txt is refused
  // without blocking on it (O_NONBLOCK) or reading it.
  static std::string read_file(const std::filesystem::path& path, std::string& content, std::size_t max_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno_message("cannot open the file", errno);
    struct stat info {};
    std::string problem;
    if (::fstat(fd, &info) != 0) {
      problem = errno_message("cannot stat the file", errno);
    } else if (!S_ISREG(info.st_mode)) {
      problem = "not a regular file";
    } else {
      content.resize(std::min(static_cast<std::size_t>(info.st_size), max_bytes + 1));
      std::size_t done = 0;
      while (done < content.size()) {
        const ssize_t got = ::read(fd, content.data() + done, content.size() - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
          problem = errno_message("cannot read the file", errno);
          break;
        }
        if (got == 0) break;  // shrank while being read: keep what is there
        done += static_cast<std::size_t>(got);
      }
      content.resize(done);
    }
    ::close(fd);
    return problem;
  }

  const PreprocessOptions& options_;
  std::filesystem::path root_;
  std::vector<std::pair<std::filesystem::path, int>> files_;
  std::size_t index_ = 0;
  std::unique_ptr<Sha256> sha_;
  std::string digest_;
  std::uint64_t stored_ = 0;
  std::vector<std::string> header_;
};

}  // namespace

std::unique_ptr<RecordReader> make_delimited_reader(const std::string& path, const PreprocessOptions& options,
                                                    bool hash) {
  return std::make_unique<DelimitedReader>(std::make_unique<ByteSource>(path, hash), options);
}

std::unique_ptr<RecordReader> make_delimited_reader(std::unique_ptr<ByteSource> source,
                                                    const PreprocessOptions& options) {
  return std::make_unique<DelimitedReader>(std::move(source), options);
}

std::unique_ptr<RecordReader> make_imdb_reader(const std::string& folder, const PreprocessOptions& options, bool hash) {
  return std::make_unique<ImdbReader>(folder, options, hash);
}

}  // namespace textscale::preprocess
