// Text to tensors: unescaping, UTF-8 validation, Zhang's character quantisation and the word
// tokenizer. docs/hdf5-schema.md states the same rules for users of the files.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    token_.clear();
    while (p < end) {
      const unsigned char c = *p;
      if (c < 0x80) {
        const char mapped = kAscii[c];
        if (mapped) {
          token_.push_back(mapped);
        } else if (!token_.empty()) {
          if (!on_token(std::string_view(token_))) return;
          token_.clear();
        }
        ++p;
        continue;
      }
      const int length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      const std::uint32_t cp = decode(p, length);
      if (is_token_code_point(cp)) {
        if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) {  // Latin-1 upper case -> lower case
          token_.push_back(static_cast<char>(p[0]));
          token_.push_back(static_cast<char>(p[1] + 0x20));
        } else {
          token_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(length));
        }
      } else if (!token_.empty()) {
        if (!on_token(std::string_view(token_))) return;
        token_.clear();
      }
      p += length;
    }
    if (!token_.empty()) on_token(std::string_view(token_));
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
      case 2: return (std::uint32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
      case 3: return (std::uint32_t(p[0] & 0x0F) << 12) | (std::uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
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

  std::string token_;
};

}  // namespace textscale::preprocess
