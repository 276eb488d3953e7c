// Chunker: FastCDC content-defined chunking (Gear rolling hash, normalized
// chunking level 2), the boundaries of which depend on a secret seed.
//
// Invariants: every chunk is at least `min` and at most `max` bytes, except
// the last chunk of a stream, which may be shorter. A boundary depends only on
// the bytes before it within the current chunk, so an insertion moves the
// boundaries near it and leaves the later ones where they were (shifted).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace kvb::repo {

struct ChunkerParams {
  size_t min = 64 << 10;
  size_t avg = 256 << 10;  // a power of two
  size_t max = 1 << 20;
};

class Chunker {
 public:
  Chunker(ChunkerParams params, uint64_t seed);

  // The length of the first chunk of `data`. When `data` holds fewer than
  // `max` bytes and `last` is false, returns 0 if no boundary was found (the
  // caller must supply more bytes); with `last`, all of data is a chunk.
  size_t cut(std::span<const uint8_t> data, bool last) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  uint64_t mask_small_;  // stricter, before avg
  uint64_t mask_large_;  // looser, after avg
  std::array<uint64_t, 256> gear_;
};

}  // namespace kvb::repo
