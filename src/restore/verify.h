// Boot verification (docs/restore.md "Verification"): a restored VM, or a VM
// of a backup, proven to boot by booting a copy of it in an isolated
// namespace until its guest agent connects (the VMI's AgentConnected
// condition), then deleting the copy.
//
//   restore create --verify: per restored VM, CDI clone DataVolumes of its
//     restored claims and a copy of the VM in a namespace of its own;
//   backup verify: per VM, a restore of the backup into a namespace of its
//     own (a RestoreRunner with spec.isolate), booted, then deleted with its
//     restore record: nothing is kept.
//
// Invariants:
// - Everything a verification creates lives in one namespace of its own,
//   "kvb-verify-<hex>", labelled kvbackup.io/verify=<id>, except the
//   cluster-scoped pre-provisioned VolumeSnapshotContents of a backup
//   verify's restore (Retain: deleting them never touches the backup's
//   storage snapshots), which it lists; cleanup deletes them and the
//   namespace (and so everything in it) and waits until the namespace is gone.
// - The namespace (and the restore, for backup verify) is named in a journal
//   entry, verify/<id>.json in the location, before anything is created, and
//   the entry is removed only once cleanup is complete; a run lock
//   (journal/verify-<id>.lock) is held meanwhile. A killed kvbackup leaves
//   nothing `kvbackup recover` (recover_verifications) does not remove, and
//   recover leaves a live verification alone.
// - The copy runs with run strategy Always, no network interfaces (none, no
//   networks, autoattachPodInterface false), no MAC addresses and no firmware
//   UUID: it cannot clash with the original on the network.
// - Cleanup runs on every path, a stop request (Ctrl-C) included; the stop
//   token ends the waits, never the cleanup.
#pragma once

#include "common/error.h"
#include "kube/client.h"
#include "location/location.h"
#include "restore/record.h"
#include "restore/spec.h"

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::repo {
class Repository;
}

namespace kvb::restore {

inline constexpr const char* kVerifyLabel = "kvbackup.io/verify";

struct VerifyOptions {
  std::chrono::milliseconds agent_timeout{300'000};   // from the copy's creation to AgentConnected
  std::chrono::milliseconds clone_timeout{1'800'000}; // restore --verify: the clones Succeeded
  std::chrono::milliseconds cleanup_timeout{300'000}; // the namespace gone
};

using VerifyProgress = std::function<void(const std::string& line)>;

// restore create --verify: every Completed VM of the record verified, the
// result in rec.vms[i].verification (Failed VMs are not verified).
void verify_restored_vms(std::shared_ptr<kube::Client> client, location::Location& loc, RestoreRecord& rec,
                         const VerifyOptions& opts, std::stop_token stop, VerifyProgress progress = {});

// backup verify: the VMs of `base` (its backup, vms, data source, upload and
// storage-class options) restored one at a time into a namespace of their own,
// booted, deleted. `open_repository` as for RestoreRunner (may be empty).
using RepositoryOpenerFn = std::function<Result<std::shared_ptr<repo::Repository>>()>;
Result<std::vector<VerificationRecord>> verify_backup(std::shared_ptr<kube::Client> client, location::Location& loc,
                                                      const RestoreSpec& base, const VerifyOptions& opts,
                                                      RepositoryOpenerFn open_repository, std::stop_token stop,
                                                      VerifyProgress progress = {});

struct VerifyRecovery {
  int cleaned = 0;  // interrupted verifications whose objects were removed
  std::vector<std::string> lines, problems;
};
// kvbackup recover: every verify/<id>.json whose run is not live: its
// namespace, listed cluster-scoped objects and restore record removed, then
// the entry.
VerifyRecovery recover_verifications(std::shared_ptr<kube::Client> client, location::Location& loc);

}  // namespace kvb::restore
