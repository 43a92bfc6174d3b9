#include "textscale/common/checksum.h"

#include <openssl/evp.h>

#include "textscale/common/error.h"

namespace textscale {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (!context_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_), EVP_sha256(), nullptr) != 1)
    throw Error("OpenSSL: cannot initialise SHA-256");
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_));
}

void Sha256::update(const void* data, std::size_t size) {
  if (size > 0) EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), data, size);
}

std::array<unsigned char, 32> Sha256::digest() {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), digest.data(), &length) != 1 || length != digest.size())
    throw Error("OpenSSL: cannot finish SHA-256");
  return digest;
}

std::string Sha256::hex() {
  return hex_string(digest());
}

std::string hex_string(const std::array<unsigned char, 32>& digest) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const unsigned char byte : digest) {
    out.push_back(digits[byte >> 4]);
    out.push_back(digits[byte & 15]);
  }
  return out;
}

std::string sha256_hex(const void* data, std::size_t size) {
  Sha256 sha;
  sha.update(data, size);
  return sha.hex();
}

std::uint32_t fletcher32(const void* data, std::size_t size) {
  // HDF5's H5_checksum_fletcher32: 360 words is the most that can be summed without overflow
  // before folding the sums back to 16 bits.
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::size_t words = size / 2;
  std::uint32_t sum1 = 0, sum2 = 0;
  const auto fold = [](std::uint32_t sum) { return (sum & 0xffff) + (sum >> 16); };
  while (words > 0) {
    std::size_t block = words > 360 ? 360 : words;
    words -= block;
    for (; block > 0; --block, bytes += 2) {
      sum1 += (static_cast<std::uint32_t>(bytes[0]) << 8) | bytes[1];
      sum2 += sum1;
    }
    sum1 = fold(sum1);
    sum2 = fold(sum2);
  }
  if (size % 2 != 0) {
    sum1 += static_cast<std::uint32_t>(*bytes) << 8;
    sum2 += sum1;
    sum1 = fold(sum1);
    sum2 = fold(sum2);
  }
  sum1 = fold(sum1);
  sum2 = fold(sum2);
  return (sum2 << 16) | sum1;
}

}  // namespace textscale
