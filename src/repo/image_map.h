// ImageMap: the compact map of an image kept in every snapshot manifest
// (docs/repository.md, "Image maps"). Per fixed region of the image (1 MiB at
// absolute offsets) it holds a fast fingerprint of the region's bytes (keyed
// XXH3-128, holes read as zeros) and a hash of where the region's holes lie.
// The chunks that cover a region are the snapshot's extents overlapping it.
// A put with a parent fingerprints each region at memory speed and reuses the
// parent's chunks where both hashes match (repo/put.cpp).
//
// Invariants: a map has exactly ceil(size / region_size) regions; the content
// fingerprint depends only on the bytes (a hole and written zeros hash alike),
// so check --read-data can recompute it from the chunks; the layout hash only
// steers where chunking restarts and never decides which bytes are stored.
// The map is trusted only as far as its fingerprint: a collision of XXH3-128
// between a region's old and new bytes would keep the old bytes (the risk
// budget is in docs/repository.md); `put --rehash` and `check --read-data`
// find such a region.
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "repo/crypto.h"
#include "repo/index.h"

#include <boost/json/fwd.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

struct Extent;

inline constexpr uint64_t kRegionSize = 1 << 20;
inline constexpr int kImageMapVersion = 1;

struct RegionPrint {
  std::array<uint8_t, 16> content{};  // XXH3-128 of the region's bytes, seeded with the repository's map seed
  uint64_t layout = 0;                // XXH3-64 of the region's holes (offset, length pairs); 0: no holes
  bool operator==(const RegionPrint&) const = default;
};

struct ImageMap {
  uint64_t region_size = kRegionSize;
  std::vector<RegionPrint> regions;
};

// The seed of the fingerprints: secret, derived from the master key, so that
// a guest cannot compute another repository's fingerprints.
uint64_t map_seed(const MasterKey& key);

// Fingerprints one region from its pieces, in order: data and holes.
class RegionHasher {
 public:
  explicit RegionHasher(uint64_t seed);
  ~RegionHasher();
  RegionHasher(const RegionHasher&) = delete;
  RegionHasher& operator=(const RegionHasher&) = delete;

  void data(std::span<const uint8_t> bytes);
  void hole(uint64_t length);  // zeros to the content, and its place to the layout
  RegionPrint finish();        // and starts the next region

 private:
  uint64_t seed_;
  void* state_;                      // XXH3_state_t
  uint64_t at_ = 0;                  // bytes of the region so far
  std::vector<uint64_t> holes_;      // offset, length pairs
};

// The map as a field of the snapshot manifest, and back. from_json checks the
// version, the region size and that the regions cover `image_size`.
boost::json::value map_to_json(const ImageMap& map);
Result<ImageMap> map_from_json(const boost::json::value& v, uint64_t image_size);

// A few decoded blobs kept for the next region (a chunk often spans two).
class BlobCache {
 public:
  Result<std::shared_ptr<const std::vector<uint8_t>>> get(const location::Location& loc, const Index& index, const MasterKey& key,
                                                          const BlobId& id);

 private:
  std::vector<std::pair<BlobId, std::shared_ptr<const std::vector<uint8_t>>>> recent_;  // newest last
};

// The bytes [offset, offset + length) of an image as `extents` (sorted,
// contiguous) restore them, each blob authenticated and checked against its id.
Result<std::vector<uint8_t>> read_image_range(const location::Location& loc, const Index& index, const MasterKey& key,
                                              std::span<const Extent> extents, uint64_t offset, uint64_t length, BlobCache& cache);

// The extents overlapping [offset, offset + length) (sorted input): data
// extents whole, zero extents clipped to the range and merged. Two such lists
// that are equal mean equal bytes in the range.
std::vector<Extent> covering_extents(std::span<const Extent> extents, uint64_t offset, uint64_t length);

}  // namespace kvb::repo
