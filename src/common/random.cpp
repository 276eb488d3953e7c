#include "common/random.h"

#include "common/hex.h"

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
}  // namespace

std::string random_uuid() {
  auto b = random_bytes(16);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  std::string s = hex_encode(b);
  for (size_t at : {size_t{8}, size_t{13}, size_t{18}, size_t{23}}) s.insert(at, 1, '-');
  return s;
}

std::string random_hex(size_t chars) {
  std::string s = hex_encode(random_bytes((chars + 1) / 2));
  s.resize(chars);
  return s;
}

}  // namespace kvb
