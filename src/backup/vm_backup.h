// One VM's backup, start to finish (docs/backup.md, "The sequence"):
//
//   take the VM's freeze lease -> wait at the freeze gate (backup/freeze_gate.h)
//   -> freeze -> create one VolumeSnapshot per volume -> wait until every one
//   is cut -> check the guest is still frozen -> thaw (confirmed) -> give the
//   lease back -> judge -> outside the freeze window: wait for readyToUse,
//   save the VM's resources.
//
// run() is that sequence for a VM on its own; a consistency group
// (backup/group_backup.h) calls the same steps for many VMs in lock step.
// The thaw runs on every path once the freeze started; the verdict is
// backup/verdict.h's, never decided here. A VM whose snapshots failed has the
// ones it created deleted again.
//
// Threads: one VmBackup is driven by one thread at a time.
#pragma once

#include "backup/context.h"
#include "backup/freezer.h"
#include "backup/plan.h"
#include "backup/snapshots.h"
#include "backup/verdict.h"
#include "record/backup_record.h"

#include <optional>
#include <stop_token>
#include <vector>

namespace kvb::backup {

class VmBackup {
 public:
  VmBackup(BackupContext& ctx, const VmPlan& plan);

  // The whole life of one VM in a per-VM backup.
  record::VmRecord run(std::stop_token stop);

  // The steps, for the consistency group.
  bool ready_to_start(std::stop_token stop);  // false: planned Skipped/Failed, or stopped (recorded)
  bool take_lease(std::stop_token stop);
  bool freeze(std::stop_token stop);           // false: not frozen (the thaw and the record are done)
  Status create_snapshots();
  Status wait_cut(MonoClock::time_point deadline, std::stop_token stop);
  void check_held();
  void thaw();
  // Judges against `cuts` (the whole group's, or this VM's own when empty).
  void judge(const Status& cut, const std::vector<CutSeen>& group_cuts = {});
  void finish(std::stop_token stop);  // readyToUse and resources, for a VM judged Completed
  std::vector<CutSeen> cuts();
  const FreezeOutcome& freeze_outcome() const { return freeze_; }
  record::VmRecord& record() { return rec_; }

 private:
  record::VmRecord snapshot_unfrozen(std::stop_token stop, const std::string& reason);
  void note_cuts();
  void delete_snapshots();
  void fail(const std::string& reason);
  std::vector<std::string> snapshot_names() const;

  BackupContext& ctx_;
  const VmPlan& plan_;
  record::VmRecord rec_;
  FreezeOutcome freeze_;
  std::optional<HeldLease> lease_;
  std::optional<HoldCheck> held_;
  std::optional<ThawOutcome> thaw_;
  std::vector<std::string> created_uids_;  // per volume, "" until created
};

}  // namespace kvb::backup
