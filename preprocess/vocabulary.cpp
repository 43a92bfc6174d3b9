#include "textscale/preprocess/vocabulary.h"

#include <algorithm>
#include <cstring>

#include "textscale/common/error.h"

namespace textscale::preprocess {

std::uint64_t hash_word(std::string_view word) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0x2545F4914F6CDD1Dull ^ (word.size() * kMul);
  std::size_t i = 0;
  for (; i + 8 <= word.size(); i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, word.data() + i, 8);
    h = (h ^ chunk) * kMul;
    h ^= h >> 29;
  }
  if (i < word.size()) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, word.data() + i, word.size() - i);
    h = (h ^ chunk) * kMul;
    h ^= h >> 29;
  }
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

TokenCounter::TokenCounter() : slots_(1u << 12) {}

void TokenCounter::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const std::uint64_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.count == 0) continue;
    std::uint64_t i = slot.hash & mask;
    while (slots_[i].count != 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void TokenCounter::add(std::string_view word, std::int64_t count) {
  total_ += count;
  const std::uint64_t h = hash_word(word);
  const std::uint64_t mask = slots_.size() - 1;
  std::uint64_t i = h & mask;
  for (;;) {
    Slot& slot = slots_[i];
    if (slot.count == 0) break;
    if (slot.hash == h && slot.size == word.size() &&
        std::memcmp(arena_.data() + slot.offset, word.data(), word.size()) == 0) {
      slot.count += count;
      return;
    }
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{h, arena_.size(), static_cast<std::uint32_t>(word.size()), count};
  arena_.append(word);
  if (++size_ * 2 > slots_.size()) grow();
}

void TokenCounter::merge(const TokenCounter& other) {
  other.for_each([this](std::string_view word, std::int64_t count) { add(word, count); });
}

Vocabulary Vocabulary::build(const TokenCounter& counter, int size, std::int64_t min_count) {
  struct Entry {
    std::string_view word;
    std::int64_t count;
  };
  std::vector<Entry> entries;
  entries.reserve(counter.distinct());
  counter.for_each([&](std::string_view word, std::int64_t count) {
    if (count >= min_count) entries.push_back({word, count});
  });
  const std::size_t keep = std::min<std::size_t>(entries.size(), static_cast<std::size_t>(std::max(size - 2, 0)));
  const auto order = [](const Entry& a, const Entry& b) {
    return a.count != b.count ? a.count > b.count : a.word < b.word;
  };
  std::partial_sort(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(keep), entries.end(), order);
  Vocabulary vocabulary;
  vocabulary.words_ = {std::string(kPaddingToken), std::string(kUnknownToken)};
  std::int64_t in_vocabulary = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    vocabulary.words_.emplace_back(entries[i].word);
    vocabulary.counts_.push_back(entries[i].count);
    in_vocabulary += entries[i].count;
  }
  vocabulary.counts_.insert(vocabulary.counts_.begin(), {0, counter.total() - in_vocabulary});
  vocabulary.index();
  return vocabulary;
}

Vocabulary Vocabulary::from_words(std::vector<std::string> words, std::vector<std::int64_t> counts) {
  if (words.size() < 2 || words[0] != kPaddingToken || words[1] != kUnknownToken)
    throw InputError("vocabulary must start with the reserved words <pad> and <unk>");
  if (!counts.empty() && counts.size() != words.size())
    throw InputError("vocabulary has " + std::to_string(words.size()) + " words but " +
                     std::to_string(counts.size()) + " counts");
  Vocabulary vocabulary;
  vocabulary.words_ = std::move(words);
  vocabulary.counts_ = counts.empty() ? std::vector<std::int64_t>(vocabulary.words_.size(), 0) : std::move(counts);
  vocabulary.index();
  return vocabulary;
}

void Vocabulary::index() {
  std::size_t capacity = 16;
  while (capacity < words_.size() * 2) capacity *= 2;
  table_.assign(capacity, -1);
  mask_ = capacity - 1;
  for (std::size_t id = 2; id < words_.size(); ++id) {
    std::uint64_t i = hash_word(words_[id]) & mask_;
    while (table_[i] >= 0) {
      if (words_[static_cast<std::size_t>(table_[i])] == words_[id])
        throw InputError("vocabulary lists the word '" + words_[id] + "' twice");
      i = (i + 1) & mask_;
    }
    table_[i] = static_cast<std::int32_t>(id);
  }
}

std::int32_t Vocabulary::id(std::string_view word) const {
  std::uint64_t i = hash_word(word) & mask_;
  for (;;) {
    const std::int32_t candidate = table_[i];
    if (candidate < 0) return kUnknown;
    if (words_[static_cast<std::size_t>(candidate)] == word) return candidate;
    i = (i + 1) & mask_;
  }
}

}  // namespace textscale::preprocess
