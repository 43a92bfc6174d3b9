#include "textscale/preprocess/vocabulary.h"

#include <algorithm>
#include <cstring>

#include "textscale/common/error.h"

namespace textscale::preprocess {

WordKey WordKey::of(std::string_view word) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const std::size_t n = word.size();
  WordKey key;
  const std::size_t head = n < 8 ? n : 8;
  for (std::size_t i = 0; i < head; ++i) key.prefix |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  std::uint64_t h = (key.prefix ^ n) * kMul;
  for (std::size_t i = 8; i < n; i += 8) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, p + i, std::min<std::size_t>(8, n - i));
    h = ((h ^ (h >> 29)) ^ chunk) * kMul;
  }
  h ^= h >> 32;
  key.tag = static_cast<std::uint32_t>(h & 0xFFFFFF00u) | static_cast<std::uint32_t>(n < 255 ? n : 255);
  return key;
}

WordKey WordKey::of_padded(std::string_view word) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const std::size_t n = word.size();
  const auto load = [p](std::size_t at, std::size_t bytes) {
    std::uint64_t value;
    std::memcpy(&value, p + at, 8);
    return bytes >= 8 ? value : value & ((std::uint64_t{1} << (8 * bytes)) - 1);
  };
  WordKey key;
  key.prefix = n == 0 ? 0 : load(0, n);
  std::uint64_t h = (key.prefix ^ n) * kMul;
  for (std::size_t i = 8; i < n; i += 8) h = ((h ^ (h >> 29)) ^ load(i, n - i)) * kMul;
  h ^= h >> 32;
  key.tag = static_cast<std::uint32_t>(h & 0xFFFFFF00u) | static_cast<std::uint32_t>(n < 255 ? n : 255);
  return key;
}

WordIndex::WordIndex() : slots_(1u << 12) {}

void WordIndex::grow() {
  std::vector<Slot> slots(slots_.size() * 2);
  const std::uint64_t mask = slots.size() - 1;
  for (const Slot& slot : slots_) {
    if (slot.entry == kAbsent) continue;
    const WordKey key{slot.prefix, slot.tag};
    std::uint64_t i = (key.spread() >> 24) & mask;
    while (slots[i].entry != kAbsent) i = (i + 1) & mask;
    slots[i] = slot;
  }
  slots_.swap(slots);
}

std::uint32_t WordIndex::insert(std::string_view word, const WordKey& key) {
  const std::uint64_t mask = slots_.size() - 1;
  std::uint64_t i = (key.spread() >> 24) & mask;
  for (;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.entry == kAbsent) break;
    if (matches(slot, key, word)) return slot.entry;
  }
  const auto entry = static_cast<std::uint32_t>(offsets_.size());
  offsets_.push_back(arena_.size());
  arena_.append(word);
  slots_[i] = Slot{key.prefix, key.tag, entry};
  if (offsets_.size() * 2 > slots_.size()) grow();
  return entry;
}

std::uint32_t WordIndex::find(std::string_view word, const WordKey& key) const {
  const std::uint64_t mask = slots_.size() - 1;
  for (std::uint64_t i = (key.spread() >> 24) & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.entry == kAbsent) return kAbsent;
    if (matches(slot, key, word)) return slot.entry;
  }
}

void WordIndex::prefetch(const std::string_view* words, std::size_t count, std::vector<WordKey>& keys) const {
  keys.resize(count);
  const std::uint64_t mask = slots_.size() - 1;
  for (std::size_t i = 0; i < count; ++i) {
    keys[i] = WordKey::of_padded(words[i]);
    __builtin_prefetch(&slots_[(keys[i].spread() >> 24) & mask]);
  }
}

void WordIndex::insert_all(const std::string_view* words, std::size_t count, std::uint32_t* entries,
                           std::vector<WordKey>& keys) {
  prefetch(words, count, keys);
  for (std::size_t i = 0; i < count; ++i) entries[i] = insert(words[i], keys[i]);
}

void WordIndex::find_all(const std::string_view* words, std::size_t count, std::uint32_t* entries,
                         std::vector<WordKey>& keys) const {
  prefetch(words, count, keys);
  for (std::size_t i = 0; i < count; ++i) entries[i] = find(words[i], keys[i]);
}

const std::uint32_t* TokenCounter::add_all(const std::string_view* words, std::size_t count, bool counted) {
  entries_.resize(count);
  index_.insert_all(words, count, entries_.data(), keys_);
  if (index_.size() > counts_.size()) counts_.resize(index_.size(), 0);
  if (counted) {
    for (std::size_t i = 0; i < count; ++i) ++counts_[entries_[i]];
    total_ += static_cast<std::int64_t>(count);
  }
  return entries_.data();
}

void Vocabulary::ids(const std::string_view* words, std::size_t count, std::int32_t* ids, Scratch& scratch) const {
  scratch.entries.resize(count);
  index_.find_all(words, count, scratch.entries.data(), scratch.keys);
  for (std::size_t i = 0; i < count; ++i)
    ids[i] = scratch.entries[i] == WordIndex::kAbsent ? kUnknown : static_cast<std::int32_t>(scratch.entries[i]) + 2;
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
    if (count > 0 && count >= min_count) entries.push_back({word, count});
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
    throw InputError("vocabulary has " + std::to_string(words.size()) + " words but " + std::to_string(counts.size()) +
                     " counts");
  Vocabulary vocabulary;
  vocabulary.words_ = std::move(words);
  vocabulary.counts_ = counts.empty() ? std::vector<std::int64_t>(vocabulary.words_.size(), 0) : std::move(counts);
  vocabulary.index();
  return vocabulary;
}

void Vocabulary::index() {
  index_ = WordIndex();
  for (std::size_t id = 2; id < words_.size(); ++id) {
    if (index_.insert(words_[id]) != id - 2) throw InputError("vocabulary lists the word '" + words_[id] + "' twice");
  }
}

}  // namespace textscale::preprocess
