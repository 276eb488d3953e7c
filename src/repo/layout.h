// The repository's directory layout and its sealed JSON files
// (docs/repository.md, "Layout"):
//   config  keys/<id>.json  lock  data/<2 hex>/<pack id>  index/<id>  snapshots/<id>
//
// Invariants: every file is written under a temporary name, fsynced and
// renamed (write_sealed), so a reader sees a whole file or none; a sealed
// file opens only with the repository's key and its own kind's additional
// data (an index file cannot pass for a snapshot).
#pragma once

#include "common/error.h"
#include "repo/crypto.h"

#include <boost/json/value.hpp>

#include <chrono>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::repo {

enum class SealedKind { kIndex, kSnapshot };

std::filesystem::path pack_path(const std::filesystem::path& repo, const std::string& pack);
std::string random_hex(size_t bytes);
Result<BlobId> parse_blob_id(std::string_view hex);
inline std::span<const uint8_t> as_bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

Status write_sealed(const std::filesystem::path& path, const Key256& key, SealedKind kind, const boost::json::value& doc);
Result<boost::json::value> read_sealed(const std::filesystem::path& path, const Key256& key, SealedKind kind);

// Removes a file and makes the removal durable; a file already gone is fine.
Status remove_durably(const std::filesystem::path& path);

// Writes a pack under data/ by its name (the SHA-256 of its bytes) and returns
// the name. Atomic but not fsynced: the caller syncs the file system once for
// all its packs before an index names them.
Result<std::string> write_pack_file(const std::filesystem::path& repo, std::span<const uint8_t> bytes);

struct PackFile {
  std::string name;
  std::filesystem::path path;
  uint64_t size = 0;
  std::chrono::system_clock::time_point mtime{};  // when it was written
};
// The pack files under data/, by name; temporary files a crash left there go to `temporaries`.
Result<std::vector<PackFile>> list_pack_files(const std::filesystem::path& repo, std::vector<std::filesystem::path>* temporaries = nullptr);

// The file's modification time (the epoch when it cannot be read).
std::chrono::system_clock::time_point modification_time(const std::filesystem::path& path);

// A temporary file a crash left behind ("<name>.tmp-*"): never part of the repository.
bool is_temporary(const std::filesystem::path& path);

}  // namespace kvb::repo
