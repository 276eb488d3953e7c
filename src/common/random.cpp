#include "common/random.h"

#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace kvb {

namespace {
std::vector<unsigned char> random_bytes(size_t n) {
  std::vector<unsigned char> b(n);
  if (n && RAND_bytes(b.data(), static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
  return b;
}
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

std::string random_uuid() {
  auto b = random_bytes(16);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  std::string s;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += kHex[b[i] >> 4];
    s += kHex[b[i] & 15];
  }
  return s;
}

std::string random_hex(size_t chars) {
  auto b = random_bytes((chars + 1) / 2);
  std::string s;
  for (auto c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  s.resize(chars);
  return s;
}

}  // namespace kvb
