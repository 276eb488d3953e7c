// Test helpers for volume bytes: deterministic image content, the SHA-256 of
// a string or file.
#pragma once

#include "tests/support/test_cluster.h"
#include "common/hex.h"

#include <openssl/evp.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace kvb::testing {

inline std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex_encode({md, len});
}

inline std::string read_whole(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `size` bytes: runs of pseudo-random data between runs of zeros (holes for a sparse writer).
inline std::string disk_image(size_t size, uint32_t seed) {
  std::string s(size, '\0');
  uint64_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    if ((i / (256 << 10)) % 3 == 1) continue;  // every third 256 KiB stays zero
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

}  // namespace kvb::testing
