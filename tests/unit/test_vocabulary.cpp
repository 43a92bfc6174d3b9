// Token counting, vocabulary order, reserved ids and lookups.
#define BOOST_TEST_MODULE vocabulary
#include <boost/test/unit_test.hpp>

#include <map>
#include <random>
#include <string>

#include "textscale/common/error.h"
#include "textscale/preprocess/vocabulary.h"

using namespace textscale::preprocess;

BOOST_AUTO_TEST_CASE(counts_match_a_plain_map_over_many_words) {
  std::mt19937 rng(7);
  std::map<std::string, std::int64_t> expected;
  TokenCounter a, b;
  for (int i = 0; i < 200000; ++i) {
    const std::string word = "w" + std::to_string(rng() % 50000) + (i % 3 ? "" : "-long-suffix-to-pass-eight-bytes");
    ++expected[word];
    (i % 2 ? a : b).add(word);
  }
  a.merge(b);
  BOOST_TEST(a.distinct() == expected.size());
  BOOST_TEST(a.total() == 200000);
  std::size_t matched = 0;
  a.for_each([&](std::string_view word, std::int64_t count) {
    const auto found = expected.find(std::string(word));
    BOOST_REQUIRE(found != expected.end());
    BOOST_TEST(found->second == count);
    ++matched;
  });
  BOOST_TEST(matched == expected.size());
}

BOOST_AUTO_TEST_CASE(vocabulary_order_ties_and_reserved_ids) {
  TokenCounter counter;
  for (const char* w : {"the", "the", "the", "cat", "cat", "bat", "bat", "ant", "zebra"}) counter.add(w);
  // Size 5 = <pad>, <unk> + 3 words: "the" (3), then the tie "bat"/"cat" (2) in byte order.
  const Vocabulary v = Vocabulary::build(counter, 5, 1);
  BOOST_TEST(v.words() == (std::vector<std::string>{"<pad>", "<unk>", "the", "bat", "cat"}));
  BOOST_TEST(v.counts() == (std::vector<std::int64_t>{0, 2, 3, 2, 2}));  // <unk> = ant + zebra
  BOOST_TEST(v.id("the") == 2);
  BOOST_TEST(v.id("cat") == 4);
  BOOST_TEST(v.id("ant") == Vocabulary::kUnknown);
  BOOST_TEST(v.id("") == Vocabulary::kUnknown);
}

BOOST_AUTO_TEST_CASE(min_count_and_small_corpus) {
  TokenCounter counter;
  for (const char* w : {"a", "a", "b"}) counter.add(w);
  const Vocabulary v = Vocabulary::build(counter, 100, 2);
  BOOST_TEST(v.size() == 3u);  // <pad>, <unk>, a
  BOOST_TEST(v.id("b") == Vocabulary::kUnknown);
}

BOOST_AUTO_TEST_CASE(from_words_checks_reserved_ids_and_duplicates) {
  BOOST_CHECK_THROW(Vocabulary::from_words({"x", "<unk>", "a"}, {}), textscale::InputError);
  BOOST_CHECK_THROW(Vocabulary::from_words({"<pad>", "<unk>", "a", "a"}, {}), textscale::InputError);
  const Vocabulary v = Vocabulary::from_words({"<pad>", "<unk>", "a", "b"}, {});
  BOOST_TEST(v.id("b") == 3);
}

BOOST_AUTO_TEST_CASE(padded_keys_equal_plain_keys) {
  // of_padded reads whole 8-byte words past the end; bytes there must not change the key.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string word(rng() % 40 + 1, 'x');
    for (char& c : word) c = static_cast<char>('a' + rng() % 26);
    std::string padded = word + std::string(8, static_cast<char>(rng()));
    const WordKey a = WordKey::of(word);
    const WordKey b = WordKey::of_padded(std::string_view(padded.data(), word.size()));
    BOOST_TEST(a.prefix == b.prefix);
    BOOST_TEST(a.tag == b.tag);
  }
}

BOOST_AUTO_TEST_CASE(batched_lookups_equal_single_lookups) {
  TokenCounter counter;
  for (const char* w : {"alpha", "beta", "beta", "a-rather-long-word-over-eight", "gamma"}) counter.add(w);
  const Vocabulary v = Vocabulary::build(counter, 10, 1);
  const std::string text = std::string("beta alpha a-rather-long-word-over-eight zeta") + std::string(8, '\0');
  const std::vector<std::string_view> words = {std::string_view(text.data(), 4), std::string_view(text.data() + 5, 5),
                                               std::string_view(text.data() + 11, 29),
                                               std::string_view(text.data() + 41, 4)};
  std::vector<std::int32_t> ids(words.size());
  Vocabulary::Scratch scratch;
  v.ids(words.data(), words.size(), ids.data(), scratch);
  for (std::size_t i = 0; i < words.size(); ++i) BOOST_TEST(ids[i] == v.id(words[i]));
  BOOST_TEST(ids[3] == Vocabulary::kUnknown);
  BOOST_TEST(ids[0] == 2);  // beta, the most frequent
}
