// DataCopy: a VM's snapshot data copied off the cluster into the repository
// at the backup location (`backup create --copy-data`), after the VM was
// thawed, never inside a freeze window (docs/backup.md "Copying the data").
//
// Per volume, with only what a real cluster offers:
//   1. a claim made from the VolumeSnapshot (dataSource; storage class, size,
//      volume mode and access modes of the source claim; CDI's kubevirt
//      content type, since a VM's disk is disk.img on a file-system claim);
//   2. a VirtualMachineExport of that claim with a token Secret kvbackup makes;
//   3. the raw link (links.external) downloaded as parallel Range requests
//      (net/ranged_download.h) through a socket straight into the repository's
//      put: no temporary file of the image anywhere;
//   4. the export, its Secret and the claim deleted, whatever happened.
// The temporary objects carry the backup's labels and kvbackup.io/role=
// data-copy, so that `kvbackup recover` removes what a killed run left.
//
// Truth: the volume's DataCopyRecord names the repository snapshot, its size,
// the bytes stored new and the SHA-256 of the image as downloaded; a failed
// copy has an error naming the VM and volume and no snapshot.
//
// Threads: copy_volume may run for different volumes on many threads at once
// (the client and the repository are thread-safe).
#pragma once

#include "kube/client.h"
#include "record/backup_record.h"
#include "repo/repository.h"

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

namespace kvb::backup {

// What a copy tells the one who watches (a progress board on a terminal):
// how many volumes the backup will copy, then per volume its bytes so far and
// its end. `item` names the volume for a person: "<ns>/<vm> <volume>".
struct TransferEvent {
  enum class Kind { kPlanned, kProgress, kDone, kFailed };
  Kind kind = Kind::kProgress;
  std::string item;
  uint64_t done = 0, total = 0;  // bytes (kProgress, kDone); total 0 until the size is known
  size_t count = 0;              // volumes to copy (kPlanned)
};
using TransferFn = std::function<void(const TransferEvent&)>;

struct DataCopyContext {
  std::shared_ptr<kube::Client> client;
  repo::Repository& repo;
  std::string cluster_id;  // names the series: <cluster_id>/<namespace>/<vm>/<volume>
  std::string backup;
  std::string run_uid;
  std::chrono::milliseconds export_timeout{600'000};  // until the export is Ready
  unsigned connections = 4;                          // Range requests in flight per volume
  std::chrono::milliseconds retry_budget{60'000};    // a failing range (or HEAD) is retried this long
  std::function<void(const std::string&)> say;
  TransferFn transfer;  // may be empty; called from the copying threads
};

// The repository snapshot name of a volume: the same volume over time forms
// one series (parent for dedup, unit of `repo forget` retention).
std::string data_series(const std::string& cluster_id, const std::string& ns, const std::string& vm, const std::string& volume);

// A stable name for the cluster: the uid of its kube-system namespace (what
// Velero and Kasten use), else (no kube-system) the API server's host. Any
// other error (Forbidden: the copy-data role's namespaces rule is missing) is
// an error: a silent fallback would start a new series and lose the dedup.
Result<std::string> cluster_id(kube::Client& client);

// Copies one volume's snapshot into the repository and fills vol.copy.
void copy_volume(const DataCopyContext& ctx, const record::VmRecord& vm, record::VolumeRecord& vol, std::stop_token stop);

// Copies every volume of the VMs whose snapshots are ready (up to
// `concurrency` volumes at once); a VM with a failed copy becomes
// PartiallyFailed with the reason.
void copy_backup_data(const DataCopyContext& ctx, std::vector<record::VmRecord>& vms, int concurrency, std::stop_token stop);

// Deletes what copies of this run (run_uid) left in `ns`: exports, their
// token Secrets and claims labelled kvbackup.io/role=data-copy. Returns what it removed.
Result<std::vector<std::string>> remove_copy_leftovers(kube::Client& client, const std::string& ns, const std::string& run_uid);

}  // namespace kvb::backup
