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

// 64-bit hash of a short string (word-at-a-time multiply-xorshift).
[[nodiscard]] std::uint64_t hash_word(std::string_view word);

// Counts tokens; one per encoding thread, merged at the end of the counting pass.
class TokenCounter {
 public:
  TokenCounter();
  void add(std::string_view word, std::int64_t count = 1);
  void merge(const TokenCounter& other);
  [[nodiscard]] std::size_t distinct() const { return size_; }
  [[nodiscard]] std::int64_t total() const { return total_; }
  // Calls f(word, count) for every word, in no particular order.
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& slot : slots_)
      if (slot.count > 0) f(std::string_view(arena_).substr(slot.offset, slot.size), slot.count);
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint64_t offset = 0;
    std::uint32_t size = 0;
    std::int64_t count = 0;  // 0 marks an empty slot
  };
  void grow();

  std::vector<Slot> slots_;
  std::string arena_;
  std::size_t size_ = 0;
  std::int64_t total_ = 0;
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

  [[nodiscard]] std::int32_t id(std::string_view word) const;
  [[nodiscard]] const std::vector<std::string>& words() const { return words_; }
  [[nodiscard]] const std::vector<std::int64_t>& counts() const { return counts_; }
  [[nodiscard]] std::size_t size() const { return words_.size(); }

 private:
  void index();

  std::vector<std::string> words_;
  std::vector<std::int64_t> counts_;
  std::vector<std::int32_t> table_;  // open addressing over ids; -1 = empty
  std::uint64_t mask_ = 0;
};

}  // namespace textscale::preprocess
