// RegionCheck: a restored image, fed in order, checked region by region
// against its snapshot's image map, and handed on only once checked
// (docs/repository.md, "Restore").
//
// Why: the map holds a seeded XXH3-128 of every 1 MiB region of the image as
// the put read it. Comparing the restored bytes with it is an end-to-end
// check of the whole restore (each blob, its place, the holes), at memory
// speed; it replaces recomputing every blob's HMAC-SHA-256 id on restore (a
// quarter of `repo get`'s CPU), which `repo check --read-data` still does. A
// snapshot without a usable map is not checked here: its blobs are then
// checked against their ids as they are decoded (the caller's part).
//
// Invariants: no byte reaches `data` or `zeros` before every region it lies
// in has matched; bytes are handed on in image order, each exactly once; the
// first mismatch is an error naming the snapshot, the region and its bytes,
// and nothing of that region or after it is handed on.
#pragma once

#include "common/error.h"
#include "repo/image_map.h"

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

struct Snapshot;

class RegionCheck {
 public:
  using Data = std::function<Status(uint64_t offset, std::span<const uint8_t> bytes)>;
  using Zeros = std::function<Status(uint64_t offset, uint64_t length)>;

  // `snap` (with its map, or without: then everything passes at once) must
  // outlive the check.
  RegionCheck(const Snapshot& snap, uint64_t seed, Data data, Zeros zeros);

  bool checks() const { return map_ != nullptr; }
  // The next bytes of the image, in order.
  Status data(std::vector<uint8_t>&& bytes);
  Status zeros(uint64_t length);
  // After the last extent: the whole image was fed (and so checked and handed on).
  Status finish();

 private:
  struct Piece {
    uint64_t offset = 0, length = 0;
    std::vector<uint8_t> bytes;  // empty: zeros
    uint64_t handed = 0;         // bytes of it handed on
  };
  uint64_t region_end() const;              // where the region being hashed ends
  uint64_t in_region(uint64_t left) const;  // of the next `left` bytes, those in it (all, past the image's end)
  void matched();                           // the region matched: its bytes may be handed on
  Status hashed(uint64_t n);  // n more bytes hashed: finishes the region that ends
  Status hand_on();           // every piece's bytes below checked_

  const Snapshot& snap_;
  const ImageMap* map_;
  Data data_;
  Zeros zeros_;
  uint64_t seed_;
  RegionHasher hasher_;
  std::optional<std::array<uint8_t, 16>> zero_region_;  // the print of a whole region of zeros
  uint64_t fed_ = 0;      // image bytes fed
  uint64_t checked_ = 0;  // image bytes whose regions matched
  size_t region_ = 0;     // the region being hashed
  std::deque<Piece> pending_;
};

}  // namespace kvb::repo
