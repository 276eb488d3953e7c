// RestoreRunner: one restore, start to finish (docs/restore.md).
//
//  1. plan (validation; nothing changes on error);
//  2. create missing namespaces (with --create-namespace);
//  3. per VM: Secrets and ConfigMaps (identical ones skipped); for another
//     namespace, a pre-provisioned VolumeSnapshotContent + VolumeSnapshot per
//     volume; one claim per volume from its snapshot; wait until bound; with
//     --existing replace, stop and delete the VM in the way and its claims;
//     create the VM; wait until it runs (when it should);
//  4. the record, rewritten atomically after every VM.
//
// A VM whose restore fails has what was created for it deleted again, and the
// record lists every object created, removed or left.
#pragma once

#include "kube/client.h"
#include "location/location.h"
#include "restore/record.h"
#include "restore/spec.h"

#include <functional>
#include <memory>
#include <stop_token>
#include <vector>

namespace kvb::restore {

struct RestorePlan;

using ProgressFn = std::function<void(const std::string& line)>;

class RestoreRunner {
 public:
  RestoreRunner(std::shared_ptr<kube::Client> client, location::Location& loc, RestoreSpec spec, ProgressFn progress = {});
  // The record, also of a failed restore; an error only when validation
  // failed and nothing was changed.
  Result<RestoreRecord> run(std::stop_token stop = {});
  // Completes an interrupted restore (kvbackup recover): plans its unfinished
  // VMs again, adopting what it made, and runs them; the record is updated.
  Result<RestoreRecord> resume(RestoreRecord record);

 private:
  Result<RestoreRecord> restore_vms(RestoreRecord& rec, const RestorePlan& plan, const std::vector<size_t>& which,
                                    std::stop_token stop, std::function<Status(const RestoreRecord&)> persist = {});
  Status save(const RestoreRecord& rec);
  void say(const std::string& line);
  static void finish(RestoreRecord& rec);

  std::shared_ptr<kube::Client> client_;
  location::Location& loc_;
  RestoreSpec spec_;
  ProgressFn progress_;
};

// The run lock a running restore holds (journal/restore-<name>.lock in the
// location, Location::lock_path), or kConflict while a live process runs it;
// contention is retried for up to `wait`.
Result<std::unique_ptr<location::Lock>> lock_restore(location::Location& loc, const std::string& name,
                                                     std::chrono::milliseconds wait = {});

}  // namespace kvb::restore
