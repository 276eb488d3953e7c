// Repository: deduplicated, compressed, encrypted snapshots of files, block
// devices and streams, in a location: a local directory or an S3 bucket
// (docs/repository.md). It talks to location::Location only and does not
// know which it has.
//
// What it guarantees:
// - Crash safety: every file is written whole or not at all (the location's
//   put), in the order packs -> sync -> index -> snapshot (put) and new packs
//   -> sync -> new index -> old index removed -> old packs removed (prune). A
//   crash at any point leaves a repository check accepts; the leftovers are
//   unreferenced packs, which prune removes.
// - Integrity: every blob read is authenticated (AES-256-GCM, bound to its
//   id) and checked against its keyed id before its bytes are used.
// - Concurrency: a Repository holds its location's lock for its lifetime
//   (flock on a disk, lock objects on S3); forget and prune need it exclusive.
// - Bounded memory: put and get hold a fixed number of chunks in flight
//   (bounded queues), whatever the size of the image; the index costs one
//   hash-map slot per distinct blob, and a snapshot's extent list ~40 bytes
//   per 256 KiB of image (a put holds its parent's too) and its image map 24
//   bytes per MiB.
// - Incremental puts: a put reuses the parent's chunks only where the image
//   map's fingerprints say the bytes are unchanged, and then stores exactly
//   the chunks a full put would (docs/repository.md, "Incremental puts").
// - Puts with known changes (KnownChanges): the caller names the parent and
//   the changed regions; the rest is taken from the parent unread, and the
//   chunks are still those a full put would cut (docs/repository.md).
#pragma once

#include "common/error.h"
#include "common/secret.h"
#include "repo/blob.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "location/location.h"
#include "repo/index.h"
#include "repo/retention.h"
#include "repo/snapshot.h"
#include "repo/source.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

using LockMode = location::LockMode;

// Called now and then with the bytes done and the total (0 when unknown: a stream).
using Progress = std::function<void(uint64_t done, uint64_t total)>;

struct InitOptions {
  uint64_t scrypt_n = uint64_t{1} << 15;
  uint64_t pack_size = 16 << 20;  // a pack is closed once it holds this much
};

struct OpenOptions {
  LockMode mode = LockMode::kShared;
  std::chrono::milliseconds lock_wait{0};  // how long to wait for the lock; 0: fail at once if held
  bool load_index = true;                   // false only to rebuild a damaged index
};

// Which earlier snapshot a put builds on (docs/repository.md, "Incremental puts").
enum class ParentMode {
  kAuto,    // the newest snapshot of the same name: its chunks are reused where the image map says a region is unchanged
  kNone,    // read, chunk and hash every byte (as before image maps existed)
  kRehash,  // the same, and compare every region the map calls unchanged with the parent's bytes
};

// A byte range of an image.
struct ByteRange {
  uint64_t offset = 0, length = 0;
  bool operator==(const ByteRange&) const = default;
};

// Changes known from outside the repository (a storage system's changed-block
// tracking; docs/repository.md, "Puts with known changes"): the new image
// differs from snapshot `parent` at most in `changed`; everywhere else it
// holds the parent's bytes. The source stream then carries only the bytes of
// `changed`, in order, and the put takes the parent's chunks and map entries
// for the rest without reading them (it reads the parent's bytes back only
// where a changed region's chunking needs its neighbours). The repository
// trusts the list: a wrong one stores the parent's bytes for a changed range.
struct KnownChanges {
  std::string parent;              // the snapshot id the changes are relative to (must have an image map)
  uint64_t size = 0;               // the new image's size: the parent's
  std::vector<ByteRange> changed;  // whole map regions (see region_ranges), sorted, disjoint, inside [0, size)
};

// A sparse image described by its storage (a CSI driver's allocated blocks):
// an image of `size` bytes whose bytes outside `data` read as zeros. The
// source stream then carries only the bytes of `data`, in order, and the put
// stores the rest as holes without reading them. The repository trusts the
// list: data outside it is stored as zeros.
struct AllocatedRanges {
  uint64_t size = 0;
  std::vector<ByteRange> data;  // sorted, disjoint, non-empty, inside [0, size)
};

// `ranges` (any order, may overlap) rounded out to whole map regions
// (kRegionSize at absolute offsets, the last one ending at `size`) and
// merged: what a caller must read for a put with KnownChanges.
std::vector<ByteRange> region_ranges(std::vector<ByteRange> ranges, uint64_t size);

struct PutOptions {
  std::vector<std::string> tags;
  ParentMode parent = ParentMode::kAuto;
  std::optional<KnownChanges> known_changes;  // set: parent is that snapshot, the source carries only the changes
  std::optional<AllocatedRanges> allocated;   // set (never with known_changes): the source carries only these ranges
  Progress progress;
  unsigned workers = 0;  // hashing and encoding threads; 0: one per core
  int compression_level = kDefaultCompressionLevel;  // zstd level; 0: no compression
};

struct PutStats {
  std::string snapshot;        // the new snapshot's id
  uint64_t bytes = 0;          // the image's size
  uint64_t hole_bytes = 0;     // sparse holes, never read
  uint64_t zero_bytes = 0;     // all-zero chunks read, not stored
  uint64_t new_bytes = 0;      // plaintext of chunks not in the repository yet
  uint64_t stored_bytes = 0;   // what those took on disk (compressed, sealed)
  size_t chunks = 0;
  size_t new_chunks = 0;
  size_t packs = 0;
  std::string parent;          // the snapshot whose map and chunks this put used ("" when none)
  std::string full_reason;     // why no chunks were reused, for the user (empty when some could be)
  uint64_t reused_bytes = 0;   // taken from the parent's chunks: fingerprinted, not chunked or hashed
  uint64_t chunked_bytes = 0;  // data that went through FastCDC and HMAC-SHA-256
  size_t regions = 0, changed_regions = 0;  // the image map's regions; those unlike the parent's
  uint64_t skipped_bytes = 0;  // KnownChanges: bytes known unchanged, never read from the source
  // --rehash: regions whose fingerprint matched the parent's while their bytes
  // differ (a fingerprint collision or a damaged map); the parent restores
  // wrong bytes there, this snapshot does not. Offsets in the image.
  std::vector<uint64_t> map_mismatches;
  std::string map_unverified;  // --rehash: why a region could not be compared (the parent unreadable)
};

struct GetOptions {
  Progress progress;
  unsigned workers = 0;
  bool overwrite = false;  // replace an existing file or write over a block device
};

struct CheckReport {
  size_t packs = 0;
  size_t blobs = 0;
  size_t snapshots = 0;
  size_t unindexed_packs = 0;   // left by an interrupted put or prune: garbage, removed by prune
  std::vector<std::string> problems;  // each names the pack, blob, index file or snapshot
  bool ok() const { return problems.empty(); }
};

struct ForgetReport {
  std::vector<Snapshot> kept, removed;
};

// Packs written less than this long ago are neither removed nor repacked: a
// put that is still running may need them (its index or snapshot is not
// written yet). Only a crash or a lost lock makes this matter; it is the
// second line of defence after the lock.
inline constexpr std::chrono::seconds kDefaultPruneGrace{3600};

struct PruneOptions {
  double max_unused = 0.2;  // repack a pack once this share of its bytes is unused
  bool dry_run = false;
  std::chrono::seconds grace = kDefaultPruneGrace;
};

struct PruneReport {
  size_t packs_removed = 0, packs_repacked = 0, packs_written = 0, index_files_replaced = 0;
  size_t packs_too_young = 0;  // kept whatever their use: written within the grace period
  uint64_t bytes_before = 0, bytes_after = 0;
};

struct RepoStats {
  size_t snapshots = 0, packs = 0, blobs = 0;
  uint64_t logical_bytes = 0;    // the sum of the snapshots' sizes
  uint64_t unique_bytes = 0;     // plaintext of the distinct blobs
  uint64_t stored_bytes = 0;     // pack files on disk
};

class Repository {
 public:
  static Status init(location::Location& loc, const Secret& password, const InitOptions& options = {});
  static Result<std::unique_ptr<Repository>> open(std::shared_ptr<location::Location> loc, const Secret& password,
                                                   const OpenOptions& options = {});
  // The same for a local directory.
  static Status init(const std::filesystem::path& dir, const Secret& password, const InitOptions& options = {});
  static Result<std::unique_ptr<Repository>> open(const std::filesystem::path& dir, const Secret& password, const OpenOptions& options = {});

  // Stores a file, block device or "-" (standard input) as a snapshot named `name`.
  Result<PutStats> put(const std::string& name, const std::filesystem::path& source, const PutOptions& options = {});
  // Stores a source the caller opened (ImageSource::stream: a download fed
  // through a socket, no temporary file); the snapshot's source is its name().
  Result<PutStats> put(const std::string& name, ImageSource source, const PutOptions& options = {});
  // Restores a snapshot (by id, or the newest of a name) to a file (sparse
  // where zero), a block device, or "-" (standard output).
  Status get(const std::string& snapshot, const std::filesystem::path& target, const GetOptions& options = {});
  // A snapshot (by id, or the newest of a name) with its extents.
  Result<Snapshot> find(const std::string& snapshot);
  // Streams a snapshot's whole image, in order and zeros included, into
  // `sink` (a consumer that is not a file: an HTTP upload), no temporary
  // file; blobs are read and authenticated ahead on `options.workers`
  // threads (default 4), and each region reaches the sink only once it
  // matched the snapshot's image map (repo/region_check.h). The first error
  // of the sink, of a blob or of a region stops it, naming the snapshot and
  // the byte range.
  using Sink = std::function<Status(std::span<const uint8_t> bytes)>;
  Status read(const Snapshot& snap, const Sink& sink, const GetOptions& options = {});
  Result<std::vector<Snapshot>> snapshots();
  CheckReport check(bool read_data);
  // Removes the snapshots `policy` does not keep (needs the exclusive lock).
  Result<ForgetReport> forget(const RetentionPolicy& policy, bool dry_run);
  Result<ForgetReport> forget_ids(const std::vector<std::string>& ids, bool dry_run);
  // Removes data no snapshot needs and repacks mostly-unused packs (needs the exclusive lock).
  Result<PruneReport> prune(const PruneOptions& options = {});
  Result<RepoStats> stats();
  // Replaces the index with one read from the packs' trailers (needs the exclusive lock); returns the packs indexed.
  Result<size_t> rebuild_index();

  location::Location& location() const { return *loc_; }

 private:
  Repository(std::shared_ptr<location::Location> loc, MasterKey key, ChunkerParams params, uint64_t pack_size,
             std::unique_ptr<location::Lock> lock, LockMode mode);
  Status need_exclusive(const char* what) const;
  // After a put: the lock is still ours, and every pack the snapshot needs and
  // the put's index file are still there.
  Status verify_stored(const Snapshot& snap, const std::string& index_file) const;
  static unsigned worker_count(unsigned asked);  // asked, or one per core
  Result<PutStats> put_source(const std::string& name, ImageSource& source, const std::string& label, const PutOptions& options);
  // The newest snapshot named `name`, with its map, or why there is none to build on.
  Result<Snapshot> find_parent(const std::string& name, std::string& why_not) const;
  // The snapshot KnownChanges are relative to, checked against them.
  Result<Snapshot> known_changes_parent(const KnownChanges& known) const;
  // The image of `snap` in order, checked (repo/region_check.h): data at its
  // offset, zeros as a length; read ahead on `workers` threads.
  using ExtentData = std::function<Status(uint64_t offset, std::span<const uint8_t> bytes)>;
  using ExtentZeros = std::function<Status(uint64_t offset, uint64_t length)>;
  Status read_in_order(const Snapshot& snap, unsigned workers, const ExtentData& data, const ExtentZeros& zeros, const Progress& progress);
  // check --read-data: every region of every map against the bytes its chunks restore.
  void check_maps(const std::vector<Snapshot>& snaps, CheckReport& r);

  std::shared_ptr<location::Location> loc_;
  MasterKey key_;
  Chunker chunker_;
  uint64_t pack_size_;
  std::unique_ptr<location::Lock> lock_;
  LockMode mode_;
  Index index_;
};

}  // namespace kvb::repo
