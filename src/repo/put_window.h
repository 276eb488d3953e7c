// One window of a put (16 MiB at an absolute offset of the image): its
// regions fingerprinted for the image map, then cut into chunks. Without a
// parent every data byte goes through FastCDC, HMAC and (when new) zstd and
// AES-GCM. With a parent (the previous snapshot of the series) the parent's
// chunks are reused wherever the regions under them fingerprint as they did,
// and only the rest is chunked: from the parent's chunk boundary before a
// changed region until a cut lands on one of the parent's boundaries again
// (docs/repository.md, "Incremental puts").
//
// With known changes (a storage delta) the regions the delta calls unchanged
// were never read: they take the parent's prints and count as unchanged.
//
// Invariant: if the fingerprints tell the truth, the chunks are exactly those
// a full put would cut (chunking restarts at window boundaries and hole ends,
// a boundary depends only on the bytes since the previous one, and a region
// counts as unchanged only if its holes lie where they did). With `verify`
// (put --rehash), every byte is chunked and the regions that fingerprint as
// unchanged are compared with the parent's bytes: a mismatch is a
// fingerprint collision or a damaged map, reported, never stored.
// Internal to repo/put.cpp.
#pragma once

#include "repo/blob.h"
#include "repo/chunker.h"
#include "repo/image_map.h"
#include "repo/index.h"
#include "repo/snapshot.h"
#include "repo/source.h"

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_set>
#include <vector>

namespace kvb::repo::put_detail {

inline constexpr uint64_t kWindow = 16 << 20;  // a multiple of kRegionSize

// A data range or hole within a window.
struct Piece {
  uint64_t offset = 0, length = 0;
  bool hole = false;
  std::shared_ptr<const MappedBytes> mapped;  // a regular file's bytes
  size_t owned_at = 0;                        // else: where in Window::owned
};

struct Window {
  uint64_t offset = 0, length = 0;
  std::vector<Piece> pieces;  // in order, contiguous, covering the window
  std::vector<uint8_t> owned;  // a stream's or device's bytes, read
  // A put with known changes: per region of the window, true when it was not
  // read (known to hold the parent's bytes). Its print is the parent's, and
  // its bytes in `owned` are read back from the parent's chunks only where
  // chunking needs them (then `filled`). Empty: every byte was read.
  std::vector<bool> known, filled;
  std::span<const uint8_t> bytes(const Piece& p) const {
    return p.mapped ? p.mapped->bytes() : std::span<const uint8_t>(owned).subspan(p.owned_at, p.length);
  }
};

struct ChunkOut {
  uint64_t offset = 0, length = 0;
  bool hole = false, zero = false;  // not stored
  bool reused = false;              // the parent's chunk (or zeros), not read
  BlobId id{};
  bool is_new = false;  // the one worker that claimed this id first sealed it into `blob`
  EncodedBlob blob;
};

struct WindowReport {
  uint64_t first_region = 0;
  std::vector<RegionPrint> prints;
  uint64_t reused_bytes = 0, chunked_bytes = 0;
  size_t changed_regions = 0;
  std::vector<uint64_t> mismatches;  // verify: offsets of regions that fingerprint alike and differ
  std::string unverified;            // verify: why some region could not be compared (the parent unreadable)
  std::string failed;                // known changes: the parent's bytes could not be read back; the put fails
};

// What every worker shares: read-only, but for the claim set.
struct PutContext {
  const MasterKey& key;
  const Chunker& chunker;
  const Index& index;
  const location::Location& loc;
  uint64_t seed = 0;
  RegionPrint hole_region;          // the print of a region that is one hole
  const Snapshot* parent = nullptr;  // with a map; nullptr: none
  bool reuse = false;                // take the parent's chunks where unchanged
  bool verify = false;               // chunk everything; compare unchanged regions with the parent
  int level = kDefaultCompressionLevel;
  std::mutex* claimed_mu = nullptr;
  std::unordered_set<BlobId, BlobIdHash>* claimed = nullptr;  // new ids some worker is storing in this put
};

// The print of a region that is one hole of kRegionSize bytes.
RegionPrint hole_region_print(uint64_t seed);

// Fingerprints and chunks `w`, handing each chunk to `emit` in order; stops
// early (and returns what it has) when emit returns false.
WindowReport process_window(const PutContext& ctx, Window& w, const std::function<bool(ChunkOut&&)>& emit);

}  // namespace kvb::repo::put_detail
