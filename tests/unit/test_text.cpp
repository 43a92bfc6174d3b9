// Character quantisation, unescaping, UTF-8 validation and the word tokenizer.
#define BOOST_TEST_MODULE text
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "textscale/preprocess/text.h"

using namespace textscale::preprocess;

namespace {
std::vector<int> encode(const std::string& text, int length) {
  static const CharQuantizer quantizer;
  std::vector<std::uint8_t> row(static_cast<std::size_t>(length), 0xFF);  // poisoned
  const int kept = quantizer.encode(text, length, row.data());
  std::vector<int> out(row.begin(), row.end());
  out.push_back(kept);
  return out;
}

std::vector<std::string> tokens(const std::string& text) {
  Tokenizer tokenizer;
  std::vector<std::string> out;
  tokenizer.for_each(text, [&](std::string_view t) {
    out.emplace_back(t);
    return true;
  });
  return out;
}

std::string unescaped(const std::string& field, Unescape mode) {
  std::string out;
  append_unescaped(out, field, mode);
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(alphabet_has_69_symbols_in_paper_order) {
  const CharQuantizer q;
  BOOST_TEST(q.alphabet().size() == 69u);
  BOOST_TEST(q.index('a') == 1);
  BOOST_TEST(q.index('z') == 26);
  BOOST_TEST(q.index('0') == 27);
  BOOST_TEST(q.index('9') == 36);
  BOOST_TEST(q.index('-') == 37);  // first listing; the second '-' adds nothing
  BOOST_TEST(q.index(',') == 38);
  BOOST_TEST(q.index('~') == 57);
  BOOST_TEST(q.index('`') == 58);
  BOOST_TEST(q.index('+') == 59);
  BOOST_TEST(q.index('=') == 60);  // right after '+', the duplicate '-' skipped
  BOOST_TEST(q.index('}') == 68);
  BOOST_TEST(q.index('\n') == 69);
  BOOST_TEST(q.index('A') == 1);  // lower-cased
  BOOST_TEST(q.index(' ') == 0);
  BOOST_TEST(q.index('\t') == 0);
}

BOOST_AUTO_TEST_CASE(keeps_first_characters_reversed_and_pads) {
  // "Hello, World" with L = 5 keeps "hello" and stores "olleh".
  BOOST_TEST(encode("Hello, World", 5) == (std::vector<int>{15, 12, 12, 5, 8, 5}));
  // Shorter than L: reversed text then zeros.
  BOOST_TEST(encode("ab!", 6) == (std::vector<int>{41, 2, 1, 0, 0, 0, 3}));
  BOOST_TEST(encode("", 3) == (std::vector<int>{0, 0, 0, 0}));
}

BOOST_AUTO_TEST_CASE(multibyte_character_is_one_unknown_symbol) {
  // "é" is two bytes but one character: "aéb" -> b, 0, a.
  BOOST_TEST(encode("a\xC3\xA9"
                    "b",
                    4) == (std::vector<int>{2, 0, 1, 0, 3}));
  // A 4-byte emoji counts once, and the length limit counts characters, not bytes.
  BOOST_TEST(encode("\xF0\x9F\x98\x80xyz", 2) == (std::vector<int>{24, 0, 2}));
}

BOOST_AUTO_TEST_CASE(unescape_modes) {
  BOOST_TEST(unescaped("a\\nb", Unescape::newline) == "a\nb");
  BOOST_TEST(unescaped("second\\team", Unescape::newline) == "second\\team");
  BOOST_TEST(unescaped("a\\nb", Unescape::none) == "a\\nb");
  // AG News: a backslash (or a run of them) is a line break, "\$" a dollar sign.
  BOOST_TEST(unescaped("social\\network", Unescape::backslash) == "social\nnetwork");
  BOOST_TEST(unescaped("over \\$1 billion", Unescape::backslash) == "over $1 billion");
  BOOST_TEST(unescaped("end.\\\\Next", Unescape::backslash) == "end.\nNext");
  BOOST_TEST(unescaped("trailing\\", Unescape::backslash) == "trailing\n");
  BOOST_TEST(unescaped("trailing\\", Unescape::newline) == "trailing\\");
}

BOOST_AUTO_TEST_CASE(blank_text) {
  BOOST_TEST(is_blank(""));
  BOOST_TEST(is_blank(" \t\r\n"));
  BOOST_TEST(!is_blank("  x "));
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
  const auto npos = std::string_view::npos;
  BOOST_TEST(find_invalid_utf8("plain ascii text that is longer than eight bytes") == npos);
  BOOST_TEST(find_invalid_utf8("caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80") == npos);
  BOOST_TEST(find_invalid_utf8("abc\xFF") == 3u);            // never valid
  BOOST_TEST(find_invalid_utf8("abcdefgh\xC0\x80") == 8u);   // overlong NUL
  BOOST_TEST(find_invalid_utf8("x\xED\xA0\x80") == 1u);      // UTF-16 surrogate
  BOOST_TEST(find_invalid_utf8("x\xE2\x80") == 1u);          // truncated
  BOOST_TEST(find_invalid_utf8("x\xF4\x90\x80\x80") == 1u);  // above U+10FFFF
  BOOST_TEST(find_invalid_utf8("\xC3(") == 0u);              // bad continuation
  BOOST_TEST(find_invalid_utf8("latin1 caf\xE9") == 10u);    // Latin-1, not UTF-8
}

BOOST_AUTO_TEST_CASE(tokenizer_rules) {
  BOOST_TEST(tokens("Hello, World! It's 2024.") == (std::vector<std::string>{"hello", "world", "it", "s", "2024"}));
  // U+2014 EM DASH and U+2019 separate; Latin-1 capitals are lower-cased; other scripts are words.
  BOOST_TEST(tokens("caf\xC3\xA9\xE2\x80\x94\xC3\x89"
                    "COLE don\xE2\x80\x99t \xD0\x9C\xD0\xB8\xD1\x80") ==
             (std::vector<std::string>{"caf\xC3\xA9",
                                       "\xC3\xA9"
                                       "cole",
                                       "don", "t", "\xD0\x9C\xD0\xB8\xD1\x80"}));
  BOOST_TEST(tokens("<br /><br />Great").size() == 3u);  // HTML is not special: br, br, great
  BOOST_TEST(tokens("  ...  ").empty());
  BOOST_TEST(tokens("\xC2\xA0x\xC3\x97y") == (std::vector<std::string>{"x", "y"}));  // NBSP and multiplication sign
}

BOOST_AUTO_TEST_CASE(tokenizer_stops_when_asked) {
  Tokenizer tokenizer;
  int seen = 0;
  tokenizer.for_each("a b c d e", [&](std::string_view) { return ++seen < 2; });
  BOOST_TEST(seen == 2);
}

namespace {
// The tokenizer's rules as docs/hdf5-schema.md states them, written over code points: an oracle
// independent of both of Tokenizer's paths.
std::vector<std::string> tokens_by_the_spec(const std::string& text) {
  std::vector<std::uint32_t> points;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    points.push_back(cp);
    i += static_cast<std::size_t>(n);
  }
  const auto token_char = [](std::uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    const std::pair<std::uint32_t, std::uint32_t> excluded[] = {{0x80, 0xBF},     {0xD7, 0xD7},     {0xF7, 0xF7},
                                                                {0x2000, 0x206F}, {0x3000, 0x303F}, {0xFE30, 0xFE4F},
                                                                {0xFF00, 0xFF0F}, {0xFFF0, 0xFFFF}};
    for (const auto& [low, high] : excluded)
      if (cp >= low && cp <= high) return false;
    return true;
  };
  const auto lower = [](std::uint32_t cp) -> std::uint32_t {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
    return cp;
  };
  const auto append_utf8 = [](std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  std::vector<std::string> out;
  std::string current;
  for (const std::uint32_t cp : points) {
    if (token_char(cp)) {
      append_utf8(current, lower(cp));
    } else if (!current.empty()) {
      out.push_back(current);
      current.clear();
    }
  }
  if (!current.empty()) out.push_back(current);
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(tokenizer_paths_equal_the_spec_on_random_text) {
  // Random text over a pool with ASCII letters of both cases, digits, punctuation, whitespace
  // and multi-byte characters that are token characters (é, É, Ж) or separators (—, NBSP),
  // long enough to cross many 64-byte words.
  const std::vector<std::string> pool = {"a",
                                         "Z",
                                         "q",
                                         "7",
                                         " ",
                                         ".",
                                         "'",
                                         "\n",
                                         "\xC3\xA9",
                                         "\xC3\x89",
                                         "\xD0\x96",
                                         "\xE2\x80\x94",
                                         "\xC2\xA0",
                                         "x",
                                         "Y",
                                         "-",
                                         "\xF0\x9F\x98\x80"};
  std::uint64_t state = 12345;
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int length = trial % 7 == 0 ? trial : 1 + trial * 3;
    for (int i = 0; i < length; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      text += pool[(state >> 33) % pool.size()];
    }
    Tokenizer fast, scalar;
    std::vector<std::string> a, b;
    fast.for_each(text, [&](std::string_view t) {
      a.emplace_back(t);
      return true;
    });
    scalar.for_each_scalar(text, [&](std::string_view t) {
      b.emplace_back(t);
      return true;
    });
    const std::vector<std::string> expected = tokens_by_the_spec(text);
    BOOST_TEST(a == expected, "bit-mask path, trial " << trial);
    BOOST_TEST(b == expected, "byte-by-byte path, trial " << trial);
  }
}

BOOST_AUTO_TEST_CASE(ascii_fast_path_equals_the_general_path) {
  // Texts whose first L bytes are ASCII take a one-pass path; the result must not depend on it:
  // compare against the same text with a multi-byte character appended far past L (general path
  // only when it falls within the first L bytes).
  const CharQuantizer q;
  for (int length : {1, 7, 8, 9, 64, 1014}) {
    for (std::size_t size : {0u, 1u, 5u, 8u, 63u, 1013u, 1014u, 1015u, 3000u}) {
      std::string text;
      for (std::size_t i = 0; i < size; ++i) text.push_back(static_cast<char>(32 + (i * 7) % 95));
      std::vector<std::uint8_t> fast(static_cast<std::size_t>(length), 0xFF);
      const int kept = q.encode(text, length, fast.data());
      // Reference: reversed table lookups of the first min(L, size) characters.
      const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(length), size);
      BOOST_TEST(kept == static_cast<int>(k));
      for (std::size_t j = 0; j < static_cast<std::size_t>(length); ++j)
        BOOST_TEST(fast[j] == (j < k ? q.index(static_cast<unsigned char>(text[k - 1 - j])) : 0));
      // A multi-byte character in the middle forces the general path and still counts once.
      if (size > 2) {
        std::string mixed = text.substr(0, size / 2) + "\xC3\xA9" + text.substr(size / 2);
        std::vector<std::uint8_t> general(static_cast<std::size_t>(length), 0xFF);
        const int kept_mixed = q.encode(mixed, length, general.data());
        BOOST_TEST(kept_mixed == static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(length), size + 1)));
      }
    }
  }
}
