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
#include <string>
#include <unordered_set>
#include <vector>

namespace kvb::repo::put_detail {

inline constexpr uint64_t kWindow = 16 << 20;  // a multiple of kRegionSize

// Zero runs: a run of at least kZeroRun bytes of all-zero kZeroBlock blocks
// (aligned to the image) is a hole, whether the file system had a hole there,
// the file held written zeros, or the bytes came as a stream; a file hole
// shorter than that is chunked as zeros. So the pieces, and with them the
// chunks, depend only on the image's bytes. kZeroRun is the chunker's minimum:
// a shorter run would only cut a data chunk short.
inline constexpr uint64_t kZeroBlock = 4096;
inline constexpr uint64_t kZeroRun = 64 << 10;

// A data range or hole within a window.
struct Piece {
  uint64_t offset = 0, length = 0;
  bool hole = false;
  uint64_t zeros_read = 0;                    // of a hole: bytes that were read (written zeros, a stream's)
  std::span<const uint8_t> data;              // the bytes of a data piece (empty for a hole)
  std::shared_ptr<const MappedBytes> mapped;  // keeps a regular file's mapping alive
};

struct Window {
  uint64_t offset = 0, length = 0;
  std::vector<Piece> pieces;             // in order, contiguous, covering the window
  std::shared_ptr<std::string> owned;    // a stream's or device's bytes (pieces point into them)
  // A put with known changes: per region of the window, true when it was not
  // read (known to hold the parent's bytes). Its print is the parent's, and
  // its bytes in `owned` are read back from the parent's chunks only where
  // chunking needs them (then `filled`). Empty: every byte was read.
  std::vector<bool> known, filled;
  std::span<const uint8_t> bytes(const Piece& p) const { return p.data; }
};

// Rewrites w.pieces so that every zero run (above) is one hole and every
// other byte is data. Called by each worker before process_window. With known
// changes, the regions not read count as data: a zero run there stays in the
// parent's extents (reused as they are), and chunking next to a change may cut
// a zero run that continues into an unread region as data (the bytes are
// right; such a chunk can differ from what a full put would cut).
void mark_zero_runs(Window& w);

struct ChunkOut {
  uint64_t offset = 0, length = 0;
  bool hole = false, zero = false;  // not stored
  bool reused = false;              // the parent's chunk (or zeros), not read
  uint64_t zeros_read = 0;          // of a hole: bytes read as zeros (the rest was a file hole)
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
