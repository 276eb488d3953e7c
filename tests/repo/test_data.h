// Test data for the repository tests: reproducible pseudo-random bytes.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kvb::repo {

inline std::vector<uint8_t> random_data(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) v[i + j] = static_cast<uint8_t>(x >> (8 * j));
  }
  return v;
}

inline std::string bytes_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace kvb::repo
