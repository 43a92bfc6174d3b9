#include "textscale/predict/line_reader.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "textscale/preprocess/source.h"
#include "textscale/preprocess/text.h"

namespace textscale::predict {

namespace {

using preprocess::BadRowReason;
using preprocess::Block;
using preprocess::RawRecord;

constexpr std::size_t kMaxRecordsPerBlock = 4096;

class LineReader final : public preprocess::RecordReader {
 public:
  LineReader(std::unique_ptr<preprocess::ByteSource> source, LineFormat format,
             const preprocess::PreprocessOptions& options, const std::vector<std::string>& class_names,
             std::int64_t classes)
      : source_(std::move(source)),
        format_(format),
        options_(options),
        class_names_(class_names),
        classes_(classes),
        buffer_(std::max<std::size_t>(options.read_bytes, 64)) {}

  std::optional<Block> next() override {
    Block block;
    block.sources.push_back(source_->path());
    while (block.arena.size() < options_.block_bytes && block.records.size() < kMaxRecordsPerBlock) {
      if (!next_line()) break;
      ++line_number_;
      if (format_ == LineFormat::jsonl && preprocess::is_blank(line_)) continue;
      RawRecord record;
      record.ordinal = ordinal_++;
      record.line = line_number_;
      record.preset_label = preprocess::kUnlabelled;
      record.first_field = static_cast<std::uint32_t>(block.fields.size());
      if (too_long_) {
        flag(record, BadRowReason::row_too_long,
             "longer than --max-row-bytes " + std::to_string(options_.max_row_bytes));
        add_field(block, record, "");
      } else if (format_ == LineFormat::lines) {
        add_field(block, record, line_);
      } else {
        parse_json(block, record);
      }
      block.records.push_back(std::move(record));
    }
    if (block.records.empty()) return std::nullopt;
    return block;
  }

  std::string sha256_hex() const override { return {}; }
  std::uint64_t stored_bytes() const override { return source_->stored_bytes(); }
  std::uint64_t text_bytes() const override { return text_bytes_; }
  const std::vector<std::string>& header() const override { return header_; }

 private:
  // The next line into line_ (without its LF or CR LF); false at the end of the input. A line
  // over max_row_bytes keeps only its start and sets too_long_.
  bool next_line() {
    line_.clear();
    too_long_ = false;
    bool any = false;
    for (;;) {
      if (pos_ == end_) {
        end_ = source_->read(buffer_.data(), buffer_.size());
        pos_ = 0;
        text_bytes_ += end_;
        if (end_ == 0) break;
      }
      any = true;
      const char* start = buffer_.data() + pos_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      const std::size_t take = newline ? static_cast<std::size_t>(newline - start) : end_ - pos_;
      append(start, take);
      pos_ += take;
      if (newline) {
        ++pos_;
        break;
      }
    }
    if (!any) return false;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (first_line_) {  // a UTF-8 byte order mark is not text
      first_line_ = false;
      if (line_.compare(0, 3, "\xEF\xBB\xBF") == 0) line_.erase(0, 3);
    }
    return true;
  }

  void append(const char* data, std::size_t size) {
    const std::size_t room = options_.max_row_bytes + 1 > line_.size() ? options_.max_row_bytes + 1 - line_.size() : 0;
    if (size > room) too_long_ = true;
    line_.append(data, std::min(size, room));
    if (line_.size() > options_.max_row_bytes) too_long_ = true;
  }

  static void flag(RawRecord& record, BadRowReason reason, std::string detail) {
    record.bad = true;
    record.reason = reason;
    record.detail = std::move(detail);
  }

  static void add_field(Block& block, RawRecord& record, std::string_view text) {
    block.fields.push_back(
        preprocess::FieldSpan{static_cast<std::uint32_t>(block.arena.size()), static_cast<std::uint32_t>(text.size())});
    block.arena.append(text);
    ++record.field_count;
  }

  void parse_json(Block& block, RawRecord& record) {
    const nlohmann::json object = nlohmann::json::parse(line_, nullptr, false);
    std::string text, id;
    if (object.is_discarded() || !object.is_object()) {
      flag(record, BadRowReason::invalid_json, object.is_discarded() ? "not JSON" : "not a JSON object");
    } else if (!object.contains("text") || !object["text"].is_string()) {
      flag(record, BadRowReason::invalid_json, "no string field \"text\"");
    } else {
      text = object["text"].get<std::string>();
      if (object.contains("id")) id = object["id"].is_string() ? object["id"].get<std::string>() : object["id"].dump();
      if (object.contains("label")) read_label(object["label"], record);
    }
    add_field(block, record, text);
    add_field(block, record, id);
  }

  void read_label(const nlohmann::json& label, RawRecord& record) const {
    if (label.is_null()) return;
    if (label.is_string()) {
      const std::string name = label.get<std::string>();
      for (std::size_t c = 0; c < class_names_.size(); ++c)
        if (class_names_[c] == name) {
          record.preset_label = static_cast<std::int32_t>(c);
          return;
        }
      flag(record, BadRowReason::unknown_label_name, "label '" + name + "' is not a class of the model");
    } else if (label.is_number_integer()) {
      const auto index = label.get<std::int64_t>();
      if (index < 0 || index >= classes_)
        flag(record, BadRowReason::label_out_of_range,
             "label " + std::to_string(index) + " outside [0, " + std::to_string(classes_) + ")");
      else
        record.preset_label = static_cast<std::int32_t>(index);
    } else {
      flag(record, BadRowReason::label_not_integer, "label is neither a class name nor a 0-based index");
    }
  }

  std::unique_ptr<preprocess::ByteSource> source_;
  LineFormat format_;
  const preprocess::PreprocessOptions& options_;
  std::vector<std::string> class_names_;
  std::int64_t classes_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, end_ = 0;
  std::string line_;
  bool too_long_ = false, first_line_ = true;
  std::int64_t ordinal_ = 0, line_number_ = 0;
  std::uint64_t text_bytes_ = 0;
  std::vector<std::string> header_;
};

}  // namespace

std::unique_ptr<preprocess::RecordReader> make_line_reader(std::unique_ptr<preprocess::ByteSource> source,
                                                           LineFormat format,
                                                           const preprocess::PreprocessOptions& options,
                                                           const std::vector<std::string>& class_names,
                                                           std::int64_t classes) {
  return std::make_unique<LineReader>(std::move(source), format, options, class_names, classes);
}

}  // namespace textscale::predict
