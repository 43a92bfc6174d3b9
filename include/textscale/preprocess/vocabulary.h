// Word counts and the vocabulary built from them.
//
// Hand-written open addressing: std::unordered_map allocates a node per word and is several times
// slower on the counting pass, and Debian 12's Boost (1.74) predates boost::unordered_flat_map.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace textscale::preprocess {

// The key of a word in a WordIndex: its first 8 bytes (zero padded; tokens never contain NUL)
// and a 32-bit tag made of 24 hash bits and the length (capped at 255).
struct WordKey {
  std::uint64_t prefix = 0;
  std::uint32_t tag = 0;
  [[nodiscard]] static WordKey of(std::string_view word);
  // The same key, reading 8 bytes at a time: requires round_up(size, 8) readable bytes at
  // word.data() (bytes past the word are masked off, so their values do not matter).
  [[nodiscard]] static WordKey of_padded(std::string_view word);
  [[nodiscard]] std::uint64_t spread() const { return (prefix ^ tag) * 0x9E3779B97F4A7C15ull; }
};

// Open-addressing index from words to dense entry numbers 0, 1, 2, ... in insertion order.
// Hand-written because it is hit for every token of the corpus and cache misses are its cost:
// a 16-byte slot holds the key, so a word of up to 8 bytes (most words) is found with one memory
// access; longer ones compare their tail in the arena. std::unordered_map allocates a node per
// word and was 1.6x slower here; Debian 12's Boost (1.74) predates boost::unordered_flat_map.
class WordIndex {
 public:
  static constexpr std::uint32_t kAbsent = UINT32_MAX;
  WordIndex();
  // Entry number of `word`, inserting it if absent.
  std::uint32_t insert(std::string_view word) { return insert(word, WordKey::of(word)); }
  // Entry number of `word`, or kAbsent.
  [[nodiscard]] std::uint32_t find(std::string_view word) const { return find(word, WordKey::of(word)); }
  // The same for many words at once: all their slots are prefetched first, so the cache misses
  // of a row's tokens overlap instead of following one another. entries[i] is the result for
  // words[i]; `keys` is scratch space. Requires 8 readable bytes past the end of every word
  // (WordKey::of_padded).
  void insert_all(const std::string_view* words, std::size_t count, std::uint32_t* entries, std::vector<WordKey>& keys);
  void find_all(const std::string_view* words, std::size_t count, std::uint32_t* entries,
                std::vector<WordKey>& keys) const;
  [[nodiscard]] std::size_t size() const { return offsets_.size(); }
  [[nodiscard]] std::string_view word(std::uint32_t entry) const {
    const std::uint64_t begin = offsets_[entry];
    const std::uint64_t end = entry + 1 < offsets_.size() ? offsets_[entry + 1] : arena_.size();
    return std::string_view(arena_).substr(begin, end - begin);
  }

 private:
  struct Slot {
    std::uint64_t prefix = 0;
    std::uint32_t tag = 0;
    std::uint32_t entry = kAbsent;
  };
  [[nodiscard]] bool matches(const Slot& slot, const WordKey& key, std::string_view word) const {
    return slot.tag == key.tag && slot.prefix == key.prefix && (word.size() <= 8 || this->word(slot.entry) == word);
  }
  std::uint32_t insert(std::string_view word, const WordKey& key);
  [[nodiscard]] std::uint32_t find(std::string_view word, const WordKey& key) const;
  void prefetch(const std::string_view* words, std::size_t count, std::vector<WordKey>& keys) const;
  void grow();

  std::vector<Slot> slots_;
  std::vector<std::uint64_t> offsets_;  // entry -> start of its word in arena_
  std::string arena_;
};

// Counts tokens; one per encoding thread, merged at the end of the counting pass.
class TokenCounter {
 public:
  void add(std::string_view word, std::int64_t count = 1) {
    total_ += count;
    const std::uint32_t entry = index_.insert(word);
    if (entry >= counts_.size()) counts_.resize(entry + 1, 0);
    counts_[entry] += count;
  }
  // Counts every word of words[0, count) (8 readable bytes past the end of each, see WordIndex),
  // or with counted = false only indexes them (words of validation rows: they need entries but
  // must not count). Returns the words' entry numbers, valid until the next call.
  const std::uint32_t* add_all(const std::string_view* words, std::size_t count, bool counted = true);
  [[nodiscard]] const WordIndex& index() const { return index_; }
  void merge(const TokenCounter& other);
  [[nodiscard]] std::size_t distinct() const { return index_.size(); }
  [[nodiscard]] std::int64_t total() const { return total_; }
  // Calls f(word, count) for every word, in first-seen order.
  template <typename F>
  void for_each(F&& f) const {
    for (std::uint32_t e = 0; e < index_.size(); ++e) f(index_.word(e), counts_[e]);
  }

 private:
  WordIndex index_;
  std::vector<std::int64_t> counts_;
  std::int64_t total_ = 0;
  std::vector<WordKey> keys_;
  std::vector<std::uint32_t> entries_;
};

// Word <-> id. Ids 0 and 1 are reserved: 0 pads, 1 stands for every out-of-vocabulary word.
class Vocabulary {
 public:
  static constexpr std::int32_t kPadding = 0;
  static constexpr std::int32_t kUnknown = 1;
  static constexpr std::string_view kPaddingToken = "<pad>";
  static constexpr std::string_view kUnknownToken = "<unk>";

  Vocabulary() = default;
  // Top (size - 2) words with count >= min_count, by count descending, ties by byte order
  // ascending. `counts()` holds the training counts (0 for <pad>, the out-of-vocabulary total for
  // <unk>).
  [[nodiscard]] static Vocabulary build(const TokenCounter& counter, int size, std::int64_t min_count);
  // From the `vocab` dataset of a file (ids 0 and 1 must be <pad> and <unk>).
  [[nodiscard]] static Vocabulary from_words(std::vector<std::string> words, std::vector<std::int64_t> counts);

  [[nodiscard]] std::int32_t id(std::string_view word) const {
    const std::uint32_t entry = index_.find(word);
    return entry == WordIndex::kAbsent ? kUnknown : static_cast<std::int32_t>(entry) + 2;
  }
  // ids[i] = id(words[i]) for i < count (8 readable bytes past the end of each, see WordIndex);
  // `scratch` is the caller's (one per thread).
  struct Scratch {
    std::vector<WordKey> keys;
    std::vector<std::uint32_t> entries;
  };
  void ids(const std::string_view* words, std::size_t count, std::int32_t* ids, Scratch& scratch) const;
  [[nodiscard]] const std::vector<std::string>& words() const { return words_; }
  [[nodiscard]] const std::vector<std::int64_t>& counts() const { return counts_; }
  [[nodiscard]] std::size_t size() const { return words_.size(); }

 private:
  void index();

  std::vector<std::string> words_;
  std::vector<std::int64_t> counts_;
  WordIndex index_;  // entry e is id e + 2
};

}  // namespace textscale::preprocess
