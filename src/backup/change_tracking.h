// ChangeTracking: how a volume's copy finds what it need not download
// (docs/backup.md, "Changed-block tracking").
//
// When the series' previous repository snapshot came from a VolumeSnapshot
// that still exists (its tags name the VolumeSnapshot and its CSI handle),
// the volume is a Block volume (a Filesystem claim's disk.img does not sit at
// the offsets a block delta names), and the snapshots' CSI driver has a
// SnapshotMetadataService (cbt.storage.k8s.io/v1beta1, named after the
// driver), kvbackup asks it for GetMetadataDelta(previous handle, new
// snapshot) with a ServiceAccount token for the service's audience
// (TokenRequest), and the copy downloads only the changed map regions
// (repo::KnownChanges). Anything missing or failing falls back: to the
// fingerprint map when the series has a previous snapshot with a map, else
// to a full copy, and the reason is kept for the record.
//
// A copy that cannot use a delta (the first copy of a volume, or any of the
// reasons above after the service was found) still asks the service for
// GetMetadataAllocated(new snapshot) when the volume is Block: only the
// allocated ranges are downloaded and the rest is stored as holes
// (repo::AllocatedRanges), the way KEP-3314 means full backups to skip
// unallocated blocks. The driver is trusted to report every block that does
// not read as zeros, as it is trusted for a delta.
//
// The ServiceAccount whose token is requested: $KVBACKUP_SERVICE_ACCOUNT
// ("namespace/name"), else kvbackup/kvbackup (deploy/rbac.yaml). Its token
// is never logged or recorded.
//
// Invariants: `known` and `allocated` are never both set; a plan with `known`
// set names a parent whose size equals the delta's capacity and changed
// ranges that are whole map regions; `allocated` ranges are sorted, disjoint
// and inside the capacity the service reported (cbt::Ranges' invariant).
#pragma once

#include "kube/client.h"
#include "record/backup_record.h"
#include "repo/repository.h"

#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::backup {

inline constexpr const char* kSnapshotTag = "snapshot=";
inline constexpr const char* kSnapshotHandleTag = "snapshot-handle=";

struct ChangePlan {
  std::string method = "full";  // snapshot-metadata | fingerprint | full
  std::string reason;           // why not snapshot-metadata
  std::string target_handle;    // the new snapshot's CSI handle (tagged on the new repository snapshot); "" if unknown
  std::optional<repo::KnownChanges> known;  // snapshot-metadata: what changed since the parent
  uint64_t delta_bytes = 0;     // bytes the delta named (before rounding to regions)
  // Without `known`: the snapshot's allocated ranges (adjacent blocks merged),
  // or why every byte must be read (allocated_reason).
  std::optional<repo::AllocatedRanges> allocated;
  std::string allocated_reason;

  // What the copy downloads: the changed regions or the allocated ranges
  // (nullptr: every byte), of an image of size() bytes.
  const std::vector<repo::ByteRange>* reading() const {
    return known ? &known->changed : allocated ? &allocated->data : nullptr;
  }
  uint64_t size() const { return known ? known->size : allocated ? allocated->size : 0; }
};

// A stop request cancels the service call in flight (the plan then falls back).
ChangePlan plan_changes(kube::Client& client, repo::Repository& repo, const std::string& series, const record::VmRecord& vm,
                        const record::VolumeRecord& vol, const std::string& volume_mode, std::stop_token stop = {});

}  // namespace kvb::backup
