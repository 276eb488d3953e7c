// The backup record: what a backup did, VM by VM, written atomically to
// <location>/backups/<name>/backup.json and printed by `-o json`.
//
// Truth in reporting: consistency is FileSystemConsistent only when the freeze
// was verified and every snapshot of the VM was seen cut before the thaw was
// requested; CrashConsistent (with a reason) when the VM ran unfrozen;
// Offline when the VM was not running (its disks were at rest).
// Invariant: no secret (token, key, password) is ever written to a record.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "location/location.h"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::backup {

enum class Consistency { kFileSystemConsistent, kCrashConsistent, kOffline, kNone };
enum class VmPhase { kCompleted, kFailed, kSkipped };
enum class BackupPhase { kInProgress, kCompleted, kPartiallyFailed, kFailed };

std::string_view to_string(Consistency c);
std::string_view to_string(VmPhase p);
std::string_view to_string(BackupPhase p);

struct FreezeRecord {
  std::string method;  // exec-builtin, exec-custom, subresource, none
  std::optional<WallTime> requested_at, frozen_at, thaw_requested_at, thawed_at;
  std::string evidence;  // frozen, not frozen (why), failed (why)
  double window_ms() const;  // frozen_at (or requested_at) .. thawed_at (or thaw_requested_at)
};

struct VolumeRecord {
  std::string name;            // the volume's name in the VM spec
  std::string pvc;
  std::string storage_class;
  std::string snapshot_class;
  std::string volume_snapshot;
  std::string content;         // VolumeSnapshotContent
  std::optional<WallTime> cut_at;    // status.creationTime (the content's, with nanoseconds)
  std::optional<WallTime> ready_at;  // when kvbackup saw readyToUse
  std::string restore_size;
  std::string size;            // the claim's requested size
  std::string error;
};

struct ExecutionRecord {
  std::string phase;  // pre | post
  std::string rule;
  std::string pod;
  std::string container;
  std::vector<std::string> command;
  int exit_code = -1;
  int attempts = 0;
  double duration_ms = 0;
  std::string verdict;
  std::string stdout_excerpt;
  std::string stderr_excerpt;
};

struct VmRecord {
  std::string ns;
  std::string name;
  VmPhase phase = VmPhase::kFailed;
  Consistency promised = Consistency::kNone;
  Consistency consistency = Consistency::kNone;
  std::string reason;
  FreezeRecord freeze;
  std::vector<VolumeRecord> volumes;
  std::vector<ExecutionRecord> executions;
  std::vector<std::string> problems;
  std::vector<std::string> resources;  // files under resources/
};

struct BackupOptionsRecord {
  std::vector<std::string> namespaces;
  bool all_namespaces = false;
  std::vector<std::string> vms;
  std::string selector;
  std::string rules = "builtin";
  std::string pre_rule, post_rule;
  std::string freeze_method = "exec";
  std::string on_no_agent = "crash-consistent";
  int concurrency = 10;
  std::string freeze_deadline = "30s";
  std::string consistency_group = "none";
};

struct BackupRecord {
  int format_version = 1;
  std::string name;
  std::string kvbackup_version;
  std::string cluster;  // API server URL
  BackupOptionsRecord options;
  WallTime started{};
  std::optional<WallTime> finished;
  BackupPhase phase = BackupPhase::kInProgress;
  std::vector<VmRecord> vms;
  std::vector<std::string> warnings;
  std::string error;  // why the backup as a whole failed, if it did

  boost::json::object to_json() const;
  static Result<BackupRecord> from_json(const boost::json::value& v, const std::string& origin);
};

// "backups/<name>/backup.json" in a location.
std::string backup_record_path(const std::string& name);
// Reads and parses a backup's record; errors name the backup and the location.
Result<BackupRecord> load_backup_record(const location::Location& loc, const std::string& name);

}  // namespace kvb::backup
