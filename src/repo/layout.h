// The repository's layout in its location and its sealed JSON files
// (docs/repository.md, "Layout"):
//   config  keys/<id>.json  data/<2 hex>/<pack id>  index/<id>  snapshots/<id>
//
// Invariants: every file is written whole or not at all (the location's
// put: temporary name and rename on a disk, one PutObject on S3), so a reader
// sees a whole file or none; a sealed file opens only with the repository's
// key and its own kind's additional data (an index file cannot pass for a
// snapshot).
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "repo/crypto.h"

#include <boost/json/value.hpp>

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::repo {

enum class SealedKind { kIndex, kSnapshot };

// "data/ab/ab12..." for pack "ab12...".
std::string pack_path(const std::string& pack);
std::string random_hex(size_t bytes);
Result<BlobId> parse_blob_id(std::string_view hex);
inline std::span<const uint8_t> as_bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
inline std::string_view as_chars(std::span<const uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

Status write_sealed(location::Location& loc, const std::string& path, const Key256& key, SealedKind kind, const boost::json::value& doc);
Result<boost::json::value> read_sealed(const location::Location& loc, const std::string& path, const Key256& key, SealedKind kind);

// Writes a pack under data/ by its name (the SHA-256 of its bytes) and returns
// the name. Whole or not at all, but not yet durable on a disk: the caller
// syncs the location once for all its packs before an index names them.
Result<std::string> write_pack_file(location::Location& loc, std::span<const uint8_t> bytes);

struct PackFile {
  std::string name;
  std::string path;  // in the location
  uint64_t size = 0;
  std::chrono::system_clock::time_point mtime{};  // when it was written
};
// The pack files under data/, by name; what interrupted writes left there goes to `temporaries`.
Result<std::vector<PackFile>> list_pack_files(const location::Location& loc, std::vector<location::FileInfo>* temporaries = nullptr);

}  // namespace kvb::repo
