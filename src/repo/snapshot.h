// Snapshot manifests (docs/repository.md, "Snapshots"): one sealed file per
// stored image, naming its content as an ordered list of extents.
//
// Invariants: extents are sorted by offset, do not overlap and cover
// [0, size) exactly; an extent without a blob is zeros (a sparse hole or an
// all-zero chunk: the sparse map), and adjacent zero extents are merged.
// A manifest is written only after the index names every blob it uses. Its
// optional image map covers [0, size) in regions (repo/image_map.h).
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "repo/crypto.h"
#include "repo/image_map.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kvb::repo {

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::optional<BlobId> blob;  // nullopt: zeros
  bool operator==(const Extent&) const = default;
};

struct Snapshot {
  std::string id;      // the manifest's file name
  std::string name;    // what the user called it; several snapshots share a name over time
  std::string source;  // the file, device or "-" it was read from
  std::string time;    // RFC 3339, UTC, nanoseconds
  uint64_t size = 0;
  std::vector<std::string> tags;
  std::vector<Extent> extents;  // empty when listed without them
  // The image map (repo/image_map.h), loaded with the extents; absent in
  // snapshots written before maps existed. A map that is present but cannot
  // be used leaves `map` empty and says why in `map_problem`: the snapshot
  // itself stays readable.
  std::optional<ImageMap> map;
  std::string map_problem;
};

// Appends an extent, merging it into the previous one when both are zeros.
void append_extent(std::vector<Extent>& extents, Extent e);
// Checks the invariants above; the error names the snapshot and the extent.
Status validate_extents(const Snapshot& s);

Result<std::string> save_snapshot(location::Location& loc, const Key256& key, const Snapshot& s);
Result<Snapshot> load_snapshot(const location::Location& loc, const Key256& key, const std::string& id, bool with_extents = true);
// Every snapshot, oldest first.
Result<std::vector<Snapshot>> list_snapshots(const location::Location& loc, const Key256& key, bool with_extents = false);
// By id, or the newest of that name.
Result<Snapshot> find_snapshot(const location::Location& loc, const Key256& key, const std::string& id_or_name);

}  // namespace kvb::repo
