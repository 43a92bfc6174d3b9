#include "textscale/preprocess/row_encoder.h"

#include <algorithm>
#include <functional>

namespace textscale::preprocess {

bool in_validation(std::uint64_t seed, std::int64_t ordinal, double fraction) {
  if (fraction <= 0.0) return false;
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(ordinal) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 < fraction;
}

RowEncoder::RowEncoder(const PreprocessOptions& options, const CharQuantizer& quantizer)
    : options_(options), quantizer_(quantizer), labels_(options.labels, options.class_names, options.max_classes) {}

bool RowEncoder::prepare(const Block& block, const RawRecord& record, BlockResult& result, std::int32_t& label) {
  const auto reject = [&](BadRowReason reason, std::string detail) {
    result.bad.push_back(BadRow{reason, record.ordinal, block.where(record), std::move(detail)});
    return false;
  };
  if (record.bad) return reject(record.reason, record.detail);

  const bool delimited = record.preset_label == kLabelInFields;
  if (delimited) {
    const bool labelled = options_.label_column != kNoLabelColumn;
    const int last_text = options_.text_columns.empty()
                              ? (labelled ? 1 : 0)
                              : *std::max_element(options_.text_columns.begin(), options_.text_columns.end());
    const auto needed = static_cast<std::uint32_t>(std::max(options_.label_column, last_text) + 1);
    const std::uint32_t least = labelled ? std::max(needed, 2u) : needed;
    if (record.field_count < least)
      return reject(BadRowReason::field_count, "found " + std::to_string(record.field_count) +
                                                   " fields, the layout needs " + std::to_string(least));
    if (labelled) {
      const LabelMapper::Result mapped =
          labels_.map(block.field(record, static_cast<std::uint32_t>(options_.label_column)));
      if (!mapped.ok) return reject(mapped.reason, mapped.detail);
      label = mapped.label;
    } else {
      label = -1;
    }
  } else {
    label = record.preset_label == kUnlabelled ? -1 : record.preset_label;
  }

  // Text: the text columns, each unescaped, joined by one space.
  text_.clear();
  bool first = true;
  const auto add = [&](std::uint32_t index) {
    if (!first) text_.push_back(' ');
    first = false;
    append_unescaped(text_, block.field(record, index), options_.unescape);
  };
  if (!delimited) {
    add(0);
  } else if (options_.text_columns.empty()) {
    for (std::uint32_t i = 0; i < record.field_count; ++i)
      if (static_cast<int>(i) != options_.label_column) add(i);
  } else {
    for (const int column : options_.text_columns) add(static_cast<std::uint32_t>(column));
  }
  if (is_blank(text_)) return reject(BadRowReason::empty_text, "no text in the text columns");
  const std::size_t invalid = find_invalid_utf8(text_);
  if (invalid != std::string_view::npos)
    return reject(BadRowReason::invalid_utf8, "invalid UTF-8 at byte " + std::to_string(invalid) + " of the text");
  text_.append(kPadding, '\0');
  return true;
}

void RowEncoder::collect_tokens(std::size_t limit) {
  tokens_.clear();
  lowered_.clear();
  // Lower-cased tokens never add up to more than the text: lowered_ does not reallocate while
  // tokens_ points into it.
  lowered_.reserve(text_.size());
  const std::string_view text = this->text();
  tokenizer_.for_each(text, [&](std::string_view token) {
    const std::less<const char*> before;
    if (before(token.data(), text.data()) || !before(token.data(), text.data() + text.size())) {
      const std::size_t at = lowered_.size();
      lowered_.append(token);
      token = std::string_view(lowered_).substr(at);
    }
    tokens_.push_back(token);
    return tokens_.size() < limit;
  });
  lowered_.append(kPadding, '\0');
}

void RowEncoder::count(const Block& block, TokenCounter& counter, BlockResult& result) {
  result.sequence = block.sequence;
  result.records = static_cast<std::int64_t>(block.records.size());
  const auto W = static_cast<std::size_t>(options_.word_length);
  for (const RawRecord& record : block.records) {
    std::int32_t label = 0;
    if (!prepare(block, record, result, label)) continue;
    const bool validation = in_validation(options_.seed, record.ordinal, options_.validation_fraction);
    ++(validation ? result.valid_rows : result.train_rows);
    // Training rows count all their tokens; validation rows only need entries for their first W.
    collect_tokens(validation ? W : SIZE_MAX);
    const std::uint32_t* entries = counter.add_all(tokens_.data(), tokens_.size(), !validation);
    const std::size_t kept = std::min(W, tokens_.size());
    result.token_rows.push_back(static_cast<std::uint32_t>(kept << 1) | (validation ? 1u : 0u));
    result.token_entries.insert(result.token_entries.end(), entries, entries + kept);
  }
}

void RowEncoder::encode(const Block& block, const Vocabulary* vocabulary, BlockResult& result) {
  result.sequence = block.sequence;
  result.records = static_cast<std::int64_t>(block.records.size());
  const auto L = static_cast<std::size_t>(options_.char_length);
  const auto W = static_cast<std::size_t>(options_.word_length);
  // Room for every record in the main output, so the rows are never copied by vector growth.
  const std::size_t expected = block.records.size();
  result.train.labels.reserve(expected);
  if (options_.chars) {
    result.train.chars.reserve(expected * L);
    result.train.char_lengths.reserve(expected);
  }
  if (vocabulary) {
    result.train.words.reserve(expected * W);
    result.train.word_lengths.reserve(expected);
  }
  for (const RawRecord& record : block.records) {
    std::int32_t label = 0;
    if (!prepare(block, record, result, label)) continue;
    EncodedRows& rows =
        in_validation(options_.seed, record.ordinal, options_.validation_fraction) ? result.valid : result.train;
    rows.labels.push_back(label);
    if (options_.chars) {
      const std::size_t at = rows.chars.size();
      rows.chars.resize(at + L);
      rows.char_lengths.push_back(quantizer_.encode(text(), options_.char_length, rows.chars.data() + at));
    }
    if (vocabulary) {
      const std::size_t at = rows.words.size();
      rows.words.resize(at + W, Vocabulary::kPadding);
      collect_tokens(W);
      vocabulary->ids(tokens_.data(), tokens_.size(), rows.words.data() + at, scratch_);
      rows.word_lengths.push_back(static_cast<std::int32_t>(tokens_.size()));
    }
  }
}

}  // namespace textscale::preprocess
