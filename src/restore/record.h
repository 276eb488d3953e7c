// The restore record: what a restore did, VM by VM, written atomically to
// <location>/restores/<name>/restore.json. Every object the restore created
// is listed, so that a failed restore never leaves objects behind that no
// record mentions.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "location/location.h"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::restore {

enum class RestorePhase { kInProgress, kCompleted, kPartiallyFailed, kFailed };
std::string_view to_string(RestorePhase p);

struct ClaimRecord {
  std::string volume;          // the volume's name in the VM spec
  std::string claim;           // the restored claim
  std::string source_claim;    // the claim that was backed up
  std::string volume_snapshot; // the snapshot it was restored from (target namespace)
  std::string storage_class;
  std::string size;
  std::string phase;           // Bound, Pending, ...
};

struct CreatedObject {
  std::string resource;
  std::string ns;
  std::string name;
  bool removed = false;        // cleaned up after a failure
};

struct VmRestoreRecord {
  std::string source_ns, source_name;
  std::string ns, name;        // target
  std::string phase = "Pending";  // Completed, Failed, Pending
  std::string reason;
  std::string run_strategy;
  std::vector<ClaimRecord> claims;
  std::vector<CreatedObject> created;
  std::vector<std::string> replaced;  // "resource ns/name" deleted by --existing replace
  std::vector<std::string> problems;
};

struct RestoreRecord {
  std::string name;
  std::string backup;
  std::string kvbackup_version;
  std::string cluster;
  WallTime started{};
  std::optional<WallTime> finished;
  RestorePhase phase = RestorePhase::kInProgress;
  std::string error;
  std::vector<VmRestoreRecord> vms;

  boost::json::object to_json() const;
  static Result<RestoreRecord> from_json(const boost::json::value& v, const std::string& origin);
};

// "restores/<name>/restore.json" in a location.
std::string restore_record_path(const std::string& name);
Result<RestoreRecord> load_restore_record(const location::Location& loc, const std::string& name);

}  // namespace kvb::restore
