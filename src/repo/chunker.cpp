#include "repo/chunker.h"

#include <algorithm>
#include <bit>

namespace kvb::repo {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A mask with `bits` one-bits spread over the high 48 bits (FastCDC's spread
// masks: the Gear hash's low bits see only the last few bytes).
uint64_t spread_mask(int bits) {
  uint64_t mask = 0;
  int placed = 0;
  for (int pos = 63; pos >= 16 && placed < bits; pos -= 2, ++placed) mask |= uint64_t{1} << pos;
  for (int pos = 62; pos >= 16 && placed < bits; pos -= 2, ++placed) mask |= uint64_t{1} << pos;
  return mask;
}

}  // namespace

Chunker::Chunker(ChunkerParams params, uint64_t seed) : params_(params) {
  uint64_t state = seed;
  for (auto& g : gear_) g = splitmix64(state);
  int bits = std::countr_zero(params_.avg);  // log2(avg)
  mask_small_ = spread_mask(bits + 2);       // normalized chunking, level 2
  mask_large_ = spread_mask(bits - 2);
}

size_t Chunker::cut(std::span<const uint8_t> data, bool last) const {
  size_t n = data.size();
  if (n <= params_.min) return last || n == params_.max ? n : 0;
  size_t end = std::min(n, params_.max);
  size_t normal = std::min(end, params_.avg);
  uint64_t h = 0;
  size_t i = params_.min;
  // The hash only needs the 64 bytes before a position; start warm.
  for (size_t j = i >= 64 ? i - 64 : 0; j < i; ++j) h = (h << 1) + gear_[data[j]];
  for (; i < normal; ++i) {
    h = (h << 1) + gear_[data[i]];
    if ((h & mask_small_) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    h = (h << 1) + gear_[data[i]];
    if ((h & mask_large_) == 0) return i + 1;
  }
  if (end == params_.max) return end;
  return last ? n : 0;
}

}  // namespace kvb::repo
