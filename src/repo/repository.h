// Repository: a local directory holding deduplicated, compressed, encrypted
// snapshots of files and block devices (docs/repository.md).
//
// This first version is single-threaded and keeps the whole index in memory.
// What it already guarantees: files are written atomically (packs before the
// index that names them, index before the snapshot that needs it), so a crash
// leaves only unreferenced packs; every blob read is authenticated and checked
// against its id; all-zero chunks are stored as nothing.
#pragma once

#include "common/error.h"
#include "common/secret.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "repo/pack.h"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvb::repo {

struct PutStats {
  uint64_t bytes = 0;          // read from the source
  uint64_t zero_bytes = 0;     // all-zero chunks, not stored
  uint64_t new_bytes = 0;      // plaintext of chunks not in the repository yet
  uint64_t stored_bytes = 0;   // what those took on disk (compressed, sealed)
  size_t chunks = 0;
  size_t new_chunks = 0;
  size_t packs = 0;
};

struct SnapshotInfo {
  std::string id;
  std::string name;
  std::string time;
  uint64_t size = 0;
};

struct CheckReport {
  size_t packs = 0;
  size_t blobs = 0;
  std::vector<std::string> problems;  // each names the pack or blob
  bool ok() const { return problems.empty(); }
};

class Repository {
 public:
  static Status init(const std::filesystem::path& dir, const Secret& password, uint64_t scrypt_n = uint64_t{1} << 15);
  static Result<std::unique_ptr<Repository>> open(const std::filesystem::path& dir, const Secret& password);

  Result<PutStats> put(const std::string& name, const std::filesystem::path& source);
  // Restores a snapshot (by name, the newest of that name, or by id) to `target`, sparse where zero.
  Status get(const std::string& snapshot, const std::filesystem::path& target);
  Result<std::vector<SnapshotInfo>> snapshots();
  CheckReport check(bool read_data);

 private:
  Repository(std::filesystem::path dir, MasterKey key, ChunkerParams params);
  Status load_index();
  Status flush_pack(PutStats& stats, std::vector<PackEntry>& written, std::string& pack_name);

  struct Location {
    std::string pack;
    PackEntry entry;
  };
  std::filesystem::path dir_;
  MasterKey key_;
  Chunker chunker_;
  std::map<BlobId, Location> index_;
  PackWriter writer_;
  std::vector<std::pair<std::string, std::vector<PackEntry>>> new_packs_;  // since the last index file
};

}  // namespace kvb::repo
