// The verdict on one VM: what the record may say of it, decided from what was
// observed, by a pure function (tests/backup/verdict_test.cpp).
//
// FileSystemConsistent needs every one of these, else the VM is
// CrashConsistent (or Failed) with the reason:
//  - the freeze was proven (virt-freezer confirmed it, the freeze API answered
//    200, or the guest agent reported frozen file systems);
//  - every snapshot is the object this run created (its uid), was seen cut
//    (status.creationTime) before the check below, and its cut time lies inside
//    the freeze: after it was confirmed and before the check, within the
//    allowed clock skew;
//  - the guest was checked still frozen after the last cut, before the thaw
//    (an auto-thaw, Windows VSS, another backup's thaw or an agent restart
//    would show here), and did not say at the thaw that it had thawed itself;
//  - the guest's auto-thaw timer, when known, cannot have fired before the last cut;
//  - the thaw was confirmed (else the VM is Failed: the guest may be frozen).
// In a consistency group every VM is judged against the cuts of the whole group.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "kubevirt/freeze_api.h"
#include "record/backup_record.h"
#include "rules/freeze_check.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kvb::backup {

struct CutSeen {
  std::string snapshot;             // namespace/name
  std::string created_uid;          // the uid this run's create returned ("": not created by this run)
  std::string seen_uid;             // the uid of the object whose cut was seen
  std::optional<WallTime> cut_at;   // its status.creationTime
};

struct VerdictInput {
  record::Consistency promised = record::Consistency::kNone;
  std::string promise_reason;
  // The freeze: only when froze, the rest counts.
  bool froze = false;
  std::string freeze_reason;
  std::optional<WallTime> freeze_requested_at, frozen_at;
  std::optional<std::chrono::seconds> auto_thaw;
  // The cut: ok when every snapshot was seen cut in time; else why not.
  Status cut;
  std::vector<CutSeen> cuts;
  // The check before the thaw.
  kubevirt::FreezeState held = kubevirt::FreezeState::kError;
  std::optional<WallTime> held_at;
  std::string held_detail;
  // The thaw.
  bool thaw_ok = true;
  bool guest_thawed_itself = false;
  std::string thaw_reason;
  std::chrono::milliseconds clock_skew{2'000};
  bool group = false;
};

struct Verdict {
  record::VmPhase phase = record::VmPhase::kFailed;
  record::Consistency consistency = record::Consistency::kNone;
  std::string reason;
};

Verdict judge(const VerdictInput& in);

}  // namespace kvb::backup
