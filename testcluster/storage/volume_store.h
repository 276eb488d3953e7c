// VolumeStore: the bytes behind the test cluster's volumes and snapshots.
//
// Every bound claim is a sparse file <state>/volumes/<ns>/<claim>.img of the
// claim's size (ftruncate: holes stay holes, creation costs O(1) whatever the
// size). Every storage snapshot (a VolumeSnapshotContent's snapshotHandle) is
// a file <state>/snapshots/<handle>.img holding the claim's bytes at the cut:
// a FICLONE reflink where the file system offers one, else a copy of the data
// extents only (SEEK_DATA/SEEK_HOLE), so holes stay holes.
//
// Guest writes are deterministic and cheap: a volume written by a guest at
// generation G holds, at a few fixed offsets (0, 1 MiB, the middle and the
// last 4 KiB), 4 KiB blocks derived from (writer, volume, G); everything else
// is whatever the volume held before (zeros for a new volume). Writes are
// applied lazily by sync(): before a cut, before the bytes are read (export,
// oracle), so a snapshot's bytes are exactly the volume's at its cut.
//
// The oracle: sha256() of a claim or snapshot file, computed by reading only
// the data extents and hashing holes from a static zero buffer; cached until
// the file is written again.
//
// Cuts and restores share files, as an array snapshots and clones in place:
// a snapshot cut from a claim is a hard link to the claim's file, and a claim
// restored from a snapshot (at the snapshot's size) a hard link to the
// snapshot's file; no byte is copied until the claim is written. The store
// gives a shared claim a file of its own (reflink or data extents, renamed
// over the link) before its own writes (write_generation, write_import) and
// in writable_claim_path(), which every writer outside the store uses (CDI
// upload, a QEMU guest, tests and benches) before each time it writes; such a
// writer is "out" until it calls claim_written(), and a claim with a writer
// out, an external writer or a caller's copier is cut by copying, as before.
// A snapshot's file is never written after its cut, so no share can change
// a snapshot's bytes.
//
// Hooks for other writers (a real QEMU guest backs its disk with the claim's
// file): writable_claim_path() names a claim's file for writing (its own
// inode), claim_path() and snapshot_path() name the files for reading, and
// cut() accepts a caller-supplied copier that produces the snapshot file
// instead of the default reflink/extent copy.
//
// Invariants: a file exists exactly while its claim is bound or its storage
// snapshot exists; a claim's file is another file's inode only while
// FileState::shared, and nothing writes it then; every method runs on the
// cluster's loop thread (the export server only opens the files by path,
// read-only).
#pragma once

#include "common/error.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace kvb::testcluster {

class VolumeStore {
 public:
  // Copies the bytes of `from` into the new file `to` (which the caller's
  // copier creates); the default copier is copy_sparse().
  using Copier = std::function<Status(const std::filesystem::path& from, const std::filesystem::path& to)>;

  explicit VolumeStore(std::filesystem::path state_dir);

  // For reading (a restored claim may still share its snapshot's inode).
  std::filesystem::path claim_path(const std::string& ns, const std::string& claim) const;
  // For writing: the claim's file, first made its own if it shares a snapshot's;
  // call it again before each later write (a cut in between may share it again).
  Result<std::filesystem::path> writable_claim_path(const std::string& ns, const std::string& claim);
  std::filesystem::path snapshot_path(const std::string& handle) const;

  // `generation`: the guest generation the new file's bytes stand for
  // (write_generation() of that generation writes nothing).
  // A new zero-filled (sparse) claim file of `size` bytes; replaces one left over.
  Status create_claim(const std::string& ns, const std::string& claim, int64_t size, int64_t generation = 0);
  // A claim file holding the snapshot's bytes, grown to `size` if larger
  // (not larger: a hard link to the snapshot's file, copied on first write).
  Status restore_claim(const std::string& ns, const std::string& claim, const std::string& handle, int64_t size,
                       int64_t generation);
  // A claim file holding another claim's current bytes (CDI clone), grown to `size`.
  Status clone_claim(const std::string& ns, const std::string& claim, const std::string& src_ns,
                     const std::string& src_claim, int64_t size, int64_t generation);
  // Someone else (a real guest) wrote the claim's file: forget the cached hash
  // (and the writer is done: the next cut may share the file).
  void claim_written(const std::string& ns, const std::string& claim);
  // A claim whose bytes another writer owns (a real QEMU guest's disk):
  // write_generation() leaves it alone.
  void set_external_writer(const std::string& ns, const std::string& claim, bool external);
  void remove_claim(const std::string& ns, const std::string& claim);
  bool has_claim(const std::string& ns, const std::string& claim) const;

  // Brings the claim's bytes to what `writer` wrote at `generation` (no-op
  // when that generation is already written).
  Status write_generation(const std::string& ns, const std::string& claim, const std::string& writer, int64_t generation);
  // Fills the claim with an import's deterministic bytes (derived from `source`).
  Status write_import(const std::string& ns, const std::string& claim, const std::string& source);

  // Cuts a storage snapshot of the claim's current bytes.
  Status cut(const std::string& ns, const std::string& claim, const std::string& handle, const Copier& copier = {});
  void remove_snapshot(const std::string& handle);
  bool has_snapshot(const std::string& handle) const;

  // The oracle: size and SHA-256 (hex) of a file.
  Result<std::string> claim_sha256(const std::string& ns, const std::string& claim);
  Result<std::string> snapshot_sha256(const std::string& handle);
  int64_t claim_size(const std::string& ns, const std::string& claim) const;
  int64_t snapshot_size(const std::string& handle) const;

  // Removes every file (the cluster is going away).
  void clear();

 private:
  struct FileState {
    int64_t size = 0;
    std::optional<int64_t> written_generation;
    std::optional<std::string> sha256;  // cached until the next write
    bool external = false;              // written by someone else: no synthetic writes
    bool shared = false;                // its inode is a snapshot's too: unshare() before writing
    bool writer_out = false;            // writable_claim_path() handed out, no claim_written() since
  };
  static std::string key(const std::string& ns, const std::string& claim) { return ns + "/" + claim; }
  Result<std::string> hash(const std::filesystem::path& p, FileState& st);
  // Gives a shared claim a file of its own (a copy, renamed over the link).
  Status unshare(const std::string& ns, const std::string& claim, FileState& st);

  std::filesystem::path root_;
  std::map<std::string, FileState> claims_;     // "ns/claim"
  std::map<std::string, FileState> snapshots_;  // handle
};

// Copies `from` to a new file `to`: FICLONE reflink, else only the data
// extents (holes stay holes); `to` ends with from's size.
Status copy_sparse(const std::filesystem::path& from, const std::filesystem::path& to);
// SHA-256 (hex) of a file, reading only its data extents.
Result<std::string> sparse_sha256(const std::filesystem::path& p);

}  // namespace kvb::testcluster
