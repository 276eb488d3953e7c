// The backup record: what a backup did, VM by VM, written atomically to
// <location>/backups/<name>/backup.json and printed by `-o json`
// (format: docs/backup.md, "Record format").
//
// Truth in reporting: a VM's consistency is FileSystemConsistent only when its
// freeze was proven, every snapshot of it was created by this run after the
// freeze and seen cut while the guest was still frozen (backup/verdict.h);
// CrashConsistent (with a reason) when the VM ran unfrozen; Offline when the VM
// was not running (its disks were at rest).
// Invariants: no secret (token, key, password) is ever written to a record;
// to_json then from_json gives back every field (tests/record).
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "location/location.h"
#include "record/options.h"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::record {

enum class Consistency { kFileSystemConsistent, kCrashConsistent, kOffline, kNone };
// PartiallyFailed: the snapshots are there and as consistent as the record
// says, but a copy of their data into the repository (--copy-data) failed.
enum class VmPhase { kCompleted, kFailed, kSkipped, kPartiallyFailed };
enum class BackupPhase { kInProgress, kCompleted, kPartiallyFailed, kFailed };
// How a VM is frozen: not at all, by virt-freezer through the built-in or the
// custom rules (pods/exec), or by KubeVirt's freeze API.
enum class FreezeKind { kNone, kBuiltinRules, kCustomRules, kSubresource };

std::string_view to_string(Consistency c);
std::string_view to_string(VmPhase p);
std::string_view to_string(BackupPhase p);
std::string_view to_string(FreezeKind k);  // "none", "exec/builtin", "exec/custom", "subresource"
std::optional<Consistency> parse_consistency(std::string_view s);
std::optional<VmPhase> parse_vm_phase(std::string_view s);
std::optional<BackupPhase> parse_backup_phase(std::string_view s);

struct FreezeRecord {
  FreezeKind kind = FreezeKind::kNone;
  std::optional<WallTime> requested_at;       // the freeze was asked for
  std::optional<WallTime> frozen_at;          // the freeze was confirmed
  std::optional<WallTime> held_at;            // checked still frozen, after the last cut, before the thaw
  std::optional<WallTime> thaw_requested_at;
  std::optional<WallTime> thawed_at;          // set only when the thaw was confirmed
  bool thaw_ok = true;  // false: a thaw was owed and not confirmed; the guest may still be frozen
  std::optional<int64_t> auto_thaw_seconds;   // the guest thaws itself this long after the freeze
  std::string evidence;  // frozen, not frozen (why), failed (why)
  std::string hold;      // what the check before the thaw found
  std::string lease;     // the freeze lease: its name, and whom this backup waited for
  double window_ms() const;  // frozen_at (or requested_at) .. thawed_at (or thaw_requested_at)
};

// A volume's data copied into the repository at the backup location
// (`backup create --copy-data`): which repository snapshot holds it, and the
// SHA-256 of the image as it was read from the cluster.
struct DataCopyRecord {
  std::string series;               // the repository snapshot name: cluster/namespace/VM/volume
  std::string repository_snapshot;  // its id; empty when the copy failed
  std::string volume_mode;          // Filesystem or Block, of the source claim
  uint64_t bytes = 0;               // the image's size
  uint64_t new_bytes = 0;           // plaintext the repository did not have yet
  uint64_t stored_bytes = 0;        // what those took (compressed, sealed)
  std::string sha256;               // of every byte of the image, as downloaded; empty with snapshot-metadata (not all were)
  unsigned retried_ranges = 0;      // ranges fetched again (exporter restarts, resets)
  std::string transport;            // how the bytes came: "external" (links.external) or "port-forward"
  // How the unchanged bytes were found: "snapshot-metadata" (the CSI
  // driver's changed-block delta since the previous copy's snapshot: only
  // the changed ranges were downloaded), "fingerprint" (every byte
  // downloaded, regions compared with the previous copy's image map) or
  // "full" (no previous copy to build on). Empty in records before it existed.
  std::string change_tracking;
  std::string change_tracking_reason;  // why not snapshot-metadata (empty when it was used)
  uint64_t downloaded_bytes = 0;       // bytes read from the export
  // Only the snapshot's allocated ranges were downloaded (the CSI driver's
  // GetMetadataAllocated; the rest stored as holes), else why every byte
  // (or, with snapshot-metadata, every changed byte) was read.
  bool allocated_only = false;
  std::string allocated_only_reason;
  // Where the copy's time went, in milliseconds (all 0 in records before they
  // existed): plan (the source claim read, changed-block tracking asked),
  // create (the claim from the snapshot, the token Secret and the export),
  // ready (until the export was Ready: the claim provisioned from the
  // snapshot, the exporter started), transfer (the download into the put,
  // the put's index check), cleanup (the temporaries deleted).
  struct Millis {
    int64_t plan = 0, create = 0, ready = 0, transfer = 0, cleanup = 0;
    bool any() const { return plan || create || ready || transfer || cleanup; }
  } millis;
  std::string error;
  bool ok() const { return error.empty() && !repository_snapshot.empty(); }
};

struct VolumeRecord {
  std::string name;            // the volume's name in the VM spec
  std::string pvc;
  std::string storage_class;
  std::string snapshot_class;
  std::string volume_snapshot;
  std::string snapshot_uid;    // metadata.uid of the VolumeSnapshot this run created
  bool deleted = false;        // the snapshot was deleted again (the VM failed)
  std::string content;         // VolumeSnapshotContent
  std::optional<WallTime> cut_at;    // status.creationTime (the content's, with nanoseconds)
  std::optional<WallTime> ready_at;  // when kvbackup saw readyToUse
  std::string restore_size;
  std::string size;            // the claim's requested size
  std::string error;
  std::optional<DataCopyRecord> copy;  // with --copy-data
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
  std::string key() const { return ns + "/" + name; }
};

struct BackupRecord {
  int format_version = 1;
  std::string name;
  std::string uid;      // this run's id: labels its objects (names are reused, uids never)
  std::string kvbackup_version;
  std::string cluster;  // API server URL (credentials removed)
  BackupOptions options;
  WallTime started{};
  std::optional<WallTime> finished;
  BackupPhase phase = BackupPhase::kInProgress;
  std::vector<VmRecord> vms;
  std::vector<std::string> warnings;
  std::string error;  // why the backup as a whole failed, if it did

  boost::json::object to_json() const;
  static Result<BackupRecord> from_json(const boost::json::value& v, const std::string& origin);
};

// Parses a record's text; errors name `origin`.
Result<BackupRecord> parse_backup_record(std::string_view text, const std::string& origin);
// Reads and parses a backup's record; errors name the backup and the location.
Result<BackupRecord> load_backup_record(const location::Location& loc, const std::string& name);

}  // namespace kvb::record
