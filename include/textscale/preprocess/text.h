// Text to tensors: unescaping, UTF-8 validation, Zhang's character quantisation and the word
// tokenizer. docs/hdf5-schema.md states the same rules for users of the files.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "textscale/preprocess/options.h"

namespace textscale::preprocess {

// Appends `field` to `out`, undoing backslash escapes as `mode` says.
void append_unescaped(std::string& out, std::string_view field, Unescape mode);

// True when `text` holds nothing but ASCII whitespace.
[[nodiscard]] bool is_blank(std::string_view text);

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF are invalid), or std::string_view::npos when all is valid.
[[nodiscard]] std::size_t find_invalid_utf8(std::string_view text);

// Zhang et al. 2015: 69 symbols, index 1..69 in this order; 0 is padding and every other
// character (space included). The paper lists '-' twice; it counts once.
inline constexpr std::string_view kZhangAlphabetAsListed =
    "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{}\n";

class CharQuantizer {
 public:
  CharQuantizer();
  // The 69 distinct symbols, in index order (index = position + 1).
  [[nodiscard]] const std::string& alphabet() const { return alphabet_; }
  // Index of an ASCII byte after lower-casing (0 when not in the alphabet).
  [[nodiscard]] std::uint8_t index(unsigned char c) const { return table_[c]; }

  // Requires: `text` is valid UTF-8; `destination` has room for `length` bytes.
  // Ensures: the first min(length, n) characters c_0.. of `text` (n = its number of code points,
  // ASCII lower-cased, any non-ASCII character = one symbol 0) are written reversed,
  // destination[j] = index(c_{k-1-j}) for j < k, and destination[j] = 0 for k <= j < length.
  // Returns k, the number of characters kept.
  int encode(std::string_view text, int length, std::uint8_t* destination) const;

 private:
  std::string alphabet_;
  std::array<std::uint8_t, 256> table_{};
};

// Bit masks over text[0, n), 64 bytes per word: separators[w] bit k is set when byte 64w+k is
// an ASCII byte other than a letter or digit (and for every position at or past n); specials[w]
// bit k when it is an ASCII capital or a non-ASCII byte. SSE2 where available, else a plain loop.
void classify_tokens(const unsigned char* text, std::size_t n, std::uint64_t* separators, std::uint64_t* specials);

// Word tokenizer "textscale-words-1" (docs/hdf5-schema.md):
// - token characters: ASCII letters and digits, and every non-ASCII code point except the
//   punctuation/symbol ranges U+0080-U+00BF, U+00D7, U+00F7, U+2000-U+206F, U+3000-U+303F,
//   U+FE30-U+FE4F, U+FF00-U+FF0F, U+FFF0-U+FFFF;
// - a token is a maximal run of token characters; everything else separates tokens and is dropped;
// - lower-casing: ASCII A-Z and Latin-1 U+00C0-U+00DE (except U+00D7).
inline constexpr std::string_view kTokenizerName = "textscale-words-1";

class Tokenizer {
 public:
  // Calls on_token(std::string_view) for each token of `text` (valid UTF-8), in order, until it
  // returns false. The view is valid only during the call.
  template <typename OnToken>
  void for_each(std::string_view text, OnToken&& on_token) {
    // Classify 64 bytes per word into bit masks (branch-free), then walk token boundaries with
    // count-trailing-zeros: token boundaries are unpredictable branches in a byte loop, and
    // this is 3x faster on English text. Spans with capitals or non-ASCII bytes go through
    // for_each_scalar, so the tokens are exactly the same.
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    const std::size_t words = (n + 63) / 64;
    separators_.resize(words + 1);
    specials_.resize(words + 1);
    classify_tokens(s, n, separators_.data(), specials_.data());
    separators_[words] = ~std::uint64_t{0};  // the end is a separator
    specials_[words] = 0;
    std::size_t pos = 0;
    for (;;) {
      pos = next_bit(separators_, pos, true);
      if (pos >= n) return;
      const std::size_t stop = next_bit(separators_, pos, false);
      const std::string_view span(text.data() + pos, stop - pos);
      if (!any_bit(specials_, pos, stop)) {
        if (!on_token(span)) return;
      } else if (!for_each_scalar(span, on_token)) {
        return;
      }
      pos = stop;
    }
  }

  // The same tokens, byte by byte: the reference for for_each, and its path for spans holding
  // capitals or non-ASCII. Returns false if on_token asked to stop.
  template <typename OnToken>
  bool for_each_scalar(std::string_view text, OnToken&& on_token) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
      // Skip ASCII separators in a tight loop; non-ASCII goes through the code-point check.
      while (p < end && kByteClass[*p] == kSeparator) ++p;
      if (p >= end) return true;
      if (kByteClass[*p] == kNonAscii) {
        const int length = sequence_length(*p);
        if (!is_token_code_point(decode(p, length))) {
          p += length;
          continue;
        }
      }
      const unsigned char* start = p;
      // Fast path: lower-case letters and digits. Anything else leaves the loop.
      while (p < end && kByteClass[*p] == kPlain) ++p;
      bool lower = false;
      while (p < end && kByteClass[*p] != kSeparator) {
        const unsigned char c = *p;
        if (c < 0x80) {
          lower |= kByteClass[c] == kUpper;
          ++p;
          continue;
        }
        const int length = sequence_length(c);
        const std::uint32_t cp = decode(p, length);
        if (!is_token_code_point(cp)) break;
        lower |= cp >= 0xC0 && cp <= 0xDE && cp != 0xD7;
        p += length;
      }
      std::string_view token(reinterpret_cast<const char*>(start), static_cast<std::size_t>(p - start));
      if (lower) token = lower_case(token);
      if (!on_token(token)) return false;
    }
    return true;
  }

  [[nodiscard]] static bool is_token_code_point(std::uint32_t cp) {
    if (cp < 0x80) return kAscii[cp] != 0;
    if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7) return false;
    if (cp >= 0x2000 && cp <= 0x206F) return false;
    if (cp >= 0x3000 && cp <= 0x303F) return false;
    if (cp >= 0xFE30 && cp <= 0xFE4F) return false;
    if (cp >= 0xFF00 && cp <= 0xFF0F) return false;
    if (cp >= 0xFFF0 && cp <= 0xFFFF) return false;
    return true;
  }

 private:
  static std::uint32_t decode(const unsigned char* p, int length) {
    switch (length) {
      case 2:
        return (std::uint32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
      case 3:
        return (std::uint32_t(p[0] & 0x0F) << 12) | (std::uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
      default:
        return (std::uint32_t(p[0] & 0x07) << 18) | (std::uint32_t(p[1] & 0x3F) << 12) |
               (std::uint32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
  }
  // ASCII byte -> lower-cased token character, or 0 for a separator.
  static constexpr std::array<char, 128> kAscii = [] {
    std::array<char, 128> table{};
    for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<char>(c);
    for (int c = 'a'; c <= 'z'; ++c) table[c] = static_cast<char>(c);
    for (int c = 'A'; c <= 'Z'; ++c) table[c] = static_cast<char>(c - 'A' + 'a');
    return table;
  }();

  // First position >= pos whose bit is 0 (clear = true) or 1 (clear = false); the last word
  // is all ones, so a set bit is always found.
  static std::size_t next_bit(const std::vector<std::uint64_t>& bits, std::size_t pos, bool clear) {
    std::size_t w = pos >> 6;
    std::uint64_t x = (clear ? ~bits[w] : bits[w]) & (~std::uint64_t{0} << (pos & 63));
    while (x == 0) {
      if (++w >= bits.size()) return w * 64;
      x = clear ? ~bits[w] : bits[w];
    }
    return w * 64 + static_cast<std::size_t>(__builtin_ctzll(x));
  }
  // Whether any bit in [begin, end) is set.
  static bool any_bit(const std::vector<std::uint64_t>& bits, std::size_t begin, std::size_t end) {
    std::size_t w = begin >> 6;
    const std::size_t last = (end - 1) >> 6;
    std::uint64_t x = bits[w] & (~std::uint64_t{0} << (begin & 63));
    for (; w < last; x = bits[++w])
      if (x) return true;
    const unsigned top = static_cast<unsigned>(end & 63);
    return (top ? x & ((std::uint64_t{1} << top) - 1) : x) != 0;
  }

  enum : std::uint8_t { kSeparator = 0, kPlain = 1, kUpper = 2, kNonAscii = 3 };
  static constexpr std::array<std::uint8_t, 256> kByteClass = [] {
    std::array<std::uint8_t, 256> table{};
    for (int c = '0'; c <= '9'; ++c) table[c] = kPlain;
    for (int c = 'a'; c <= 'z'; ++c) table[c] = kPlain;
    for (int c = 'A'; c <= 'Z'; ++c) table[c] = kUpper;
    for (int c = 0x80; c < 256; ++c) table[c] = kNonAscii;
    return table;
  }();
  static int sequence_length(unsigned char lead) { return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2; }
  // ASCII A-Z and Latin-1 U+00C0-U+00DE (but U+00D7) to lower case, into token_.
  std::string_view lower_case(std::string_view token) {
    token_.assign(token);
    for (std::size_t i = 0; i < token_.size(); ++i) {
      const auto c = static_cast<unsigned char>(token_[i]);
      if (c < 0x80) {
        token_[i] = kAscii[c];
      } else if (c == 0xC3 && i + 1 < token_.size()) {
        const auto next = static_cast<unsigned char>(token_[i + 1]);
        if (next >= 0x80 && next <= 0x9E && next != 0x97) token_[i + 1] = static_cast<char>(next + 0x20);
        ++i;
      }
    }
    return token_;
  }

  std::string token_;
  std::vector<std::uint64_t> separators_;  // bit i: byte i separates tokens
  std::vector<std::uint64_t> specials_;    // bit i: byte i is a capital or non-ASCII
};

}  // namespace textscale::preprocess
