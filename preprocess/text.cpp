#include "textscale/preprocess/text.h"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace textscale::preprocess {

void append_unescaped(std::string& out, std::string_view field, Unescape mode) {
  if (mode == Unescape::none) {
    out.append(field);
    return;
  }
  std::size_t i = 0;
  while (i < field.size()) {
    const void* hit = std::memchr(field.data() + i, '\\', field.size() - i);
    if (!hit) {
      out.append(field.substr(i));
      return;
    }
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(hit) - field.data());
    out.append(field.substr(i, at - i));
    if (mode == Unescape::newline) {
      if (at + 1 < field.size() && field[at + 1] == 'n') {
        out.push_back('\n');
        i = at + 2;
      } else {
        out.push_back('\\');
        i = at + 1;
      }
      continue;
    }
    // Unescape::backslash (AG News): "\$" is an escaped dollar; any other run of backslashes
    // marks a line break.
    if (at + 1 < field.size() && field[at + 1] == '$') {
      out.push_back('$');
      i = at + 2;
      continue;
    }
    std::size_t run_end = at;
    while (run_end < field.size() && field[run_end] == '\\') ++run_end;
    out.push_back('\n');
    i = run_end;
  }
}

bool is_blank(std::string_view text) {
  for (const char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

std::size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length;
    std::uint32_t minimum;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      length = 2, minimum = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, minimum = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, minimum = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + length > n) return i;
    for (std::size_t k = 1; k < length; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

namespace {
void classify_tail(const unsigned char* text, std::size_t n, std::uint64_t& separator, std::uint64_t& special) {
  separator = 0;
  special = 0;
  for (std::size_t k = 0; k < 64; ++k) {
    if (k >= n) {
      separator |= ~std::uint64_t{0} << k;
      break;
    }
    const unsigned char c = text[k];
    const bool digit = c >= '0' && c <= '9';
    const bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    const bool upper = c >= 'A' && c <= 'Z';
    separator |= static_cast<std::uint64_t>(c < 0x80 && !digit && !letter) << k;
    special |= static_cast<std::uint64_t>(upper || c >= 0x80) << k;
  }
}
}  // namespace

void classify_tokens(const unsigned char* text, std::size_t n, std::uint64_t* separators, std::uint64_t* specials) {
  std::size_t w = 0;
#if defined(__SSE2__)
  // Range checks as signed compares after shifting the range to start at -128.
  const auto in_range = [](__m128i x, char low, char count) {
    const __m128i shifted = _mm_add_epi8(x, _mm_set1_epi8(static_cast<char>(-128 - low)));
    return _mm_cmplt_epi8(shifted, _mm_set1_epi8(static_cast<char>(-128 + count)));
  };
  for (; (w + 1) * 64 <= n; ++w) {
    std::uint64_t separator = 0, special = 0;
    for (int q = 0; q < 4; ++q) {
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text + w * 64 + 16 * q));
      const __m128i digit = in_range(c, '0', 10);
      const __m128i letter = in_range(_mm_or_si128(c, _mm_set1_epi8(0x20)), 'a', 26);
      const __m128i upper = in_range(c, 'A', 26);
      const auto high = static_cast<std::uint32_t>(_mm_movemask_epi8(c));
      const auto word = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_or_si128(digit, letter)));
      const auto capital = static_cast<std::uint32_t>(_mm_movemask_epi8(upper));
      separator |= static_cast<std::uint64_t>(~(word | high) & 0xFFFFu) << (16 * q);
      special |= static_cast<std::uint64_t>(capital | high) << (16 * q);
    }
    separators[w] = separator;
    specials[w] = special;
  }
#endif
  for (; w * 64 < n; ++w) classify_tail(text + w * 64, n - w * 64, separators[w], specials[w]);
}

CharQuantizer::CharQuantizer() {
  for (const char c : kZhangAlphabetAsListed) {
    if (alphabet_.find(c) == std::string::npos) alphabet_.push_back(c);
  }
  for (std::size_t i = 0; i < alphabet_.size(); ++i) {
    const auto c = static_cast<unsigned char>(alphabet_[i]);
    table_[c] = static_cast<std::uint8_t>(i + 1);
    if (c >= 'a' && c <= 'z') table_[c - 'a' + 'A'] = static_cast<std::uint8_t>(i + 1);
  }
}

int CharQuantizer::encode(std::string_view text, int length, std::uint8_t* destination) const {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto limit = static_cast<std::size_t>(length);
  // Fast path, the common case: the first `length` bytes (or the whole text) are ASCII, so
  // characters are bytes and the reversed codes are written in one pass.
  const std::size_t prefix = std::min(limit, text.size());
  std::size_t ascii = 0;
  for (; ascii + 8 <= prefix; ascii += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + ascii, 8);
    if (word & 0x8080808080808080ull) break;
  }
  while (ascii < prefix && p[ascii] < 0x80) ++ascii;
  if (ascii == prefix) {
    for (std::size_t j = 0; j < prefix; ++j) destination[j] = table_[p[prefix - 1 - j]];
    std::memset(destination + prefix, 0, limit - prefix);
    return static_cast<int>(prefix);
  }
  // General path: a multi-byte character is one character with code 0. Write the kept prefix
  // forwards, then reverse it in place.
  const auto* end = p + text.size();
  int kept = 0;
  while (p < end && kept < length) {
    const unsigned char c = *p;
    if (c < 0x80) {
      destination[kept++] = table_[c];
      ++p;
    } else {
      destination[kept++] = 0;
      p += c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    }
  }
  for (int a = 0, b = kept - 1; a < b; ++a, --b) std::swap(destination[a], destination[b]);
  std::memset(destination + kept, 0, static_cast<std::size_t>(length - kept));
  return kept;
}

}  // namespace textscale::preprocess
