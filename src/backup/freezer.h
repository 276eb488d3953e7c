// Freezing and thawing one VM, proving the freeze, and never leaving it frozen.
//
// Methods: exec (the VM's built-in or custom rule items run on its launcher
// pod) and subresource (KubeVirt's freeze API, no pods/exec permission). A
// freeze counts only with evidence: virt-freezer's "Operation completed
// successfully" after a freeze of THIS VM and no unfreeze of it later in the
// pre rule, KubeVirt's freeze API answering 200, or, for custom commands that
// are not virt-freezer, the guest agent reporting frozen file systems.
//
// check_held() asks the guest agent, after the last cut and before the thaw,
// whether the guest is still frozen (backup/verdict.h counts on it).
//
// thaw() runs whenever the freeze was attempted (the post rule runs), and
// returns ok only when the thaw was confirmed — or when nothing was frozen
// (virt-freezer said so: no agent, domain not running): by virt-freezer "Operation completed successfully" after
// an unfreeze of this VM, KubeVirt's unfreeze API answering 200, or the VMI
// being gone. A post rule whose thaw is not confirmed (a custom command, a
// failure) is followed by kvbackup's own verified thaw, retried in rounds
// (virt-freezer, then the API) until thaw_retry_budget. A freeze command that
// was abandoned unfinished (--freeze-deadline, a lost stream, a stop request)
// may still land later: thaw() then waits for it to end — watching its exec
// when it has one, polling the agent otherwise — up to late_freeze_bound from
// its start, thawing again whenever it finds the guest frozen.
//
// Threads: freeze/check_held/thaw may be called for different VMs from many
// threads at once (they share the PodExec and FreezeApi, which are thread-safe).
#pragma once

#include "backup/plan.h"
#include "backup/spec.h"
#include "kubevirt/freeze_api.h"
#include "record/backup_record.h"
#include "rules/executor.h"
#include "rules/freeze_check.h"

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>

namespace kvb::backup {

using MonoClock = std::chrono::steady_clock;

struct FreezeOutcome {
  bool attempted = false;  // the pre rule started: the thaw must run
  rules::FreezeEvidence evidence = rules::FreezeEvidence::kUnknown;
  std::string reason;
  std::optional<WallTime> requested_at;
  std::optional<WallTime> frozen_at;      // when the freeze was confirmed
  MonoClock::time_point started{};        // for deadlines (never the wall clock)
  MonoClock::time_point confirmed{};
  std::vector<record::ExecutionRecord> executions;
  std::vector<std::shared_ptr<rules::BackgroundActions>> background;  // every ${WAIT_CMD} hold, released after the thaw
  // Freezes that may still land after the thaw: execs abandoned while running,
  // and whether one ended without telling how (stream lost, API timeout).
  std::vector<std::shared_ptr<kube::ExecSession>> still_running;
  bool end_unknown = false;
  bool frozen() const { return evidence == rules::FreezeEvidence::kFrozen; }
  bool may_land_late() const { return end_unknown || !still_running.empty(); }
};

struct HoldCheck {
  kubevirt::FreezeState state = kubevirt::FreezeState::kError;
  WallTime at{};
  std::string detail;
};

struct ThawOutcome {
  bool ok = false;                   // confirmed: the guest is not frozen
  bool guest_thawed_itself = false;  // e.g. Windows VSS released the freeze after 10 s
  std::string reason;
  std::vector<std::string> problems;  // what went wrong on the way (a post rule that did not thaw, ...)
  std::optional<WallTime> requested_at;
  std::optional<WallTime> thawed_at;  // set only when ok
  std::vector<record::ExecutionRecord> executions;
};

class Freezer {
 public:
  Freezer(std::shared_ptr<rules::PodExec> exec, std::shared_ptr<kubevirt::FreezeApi> api, const BackupSpec& spec);
  FreezeOutcome freeze(const VmPlan& vm, std::stop_token stop);
  HoldCheck check_held(const VmPlan& vm);
  ThawOutcome thaw(const VmPlan& vm, FreezeOutcome& freeze);
  // kvbackup's own verified thaw of one VM (recover uses it too). Without an
  // agent nothing can be thawed: unless the guest is known to have been
  // frozen (`frozen_for_certain`), "no guest agent" ends it as nothing to do.
  ThawOutcome thaw_verified(const std::string& ns, const std::string& vm, const std::string& pod, record::FreezeKind kind,
                            bool frozen_for_certain);

 private:
  FreezeOutcome freeze_exec(const VmPlan& vm, std::stop_token stop);
  FreezeOutcome freeze_subresource(const VmPlan& vm);
  ThawOutcome run_post_items(const VmPlan& vm);
  void guard_late_freeze(const VmPlan& vm, FreezeOutcome& f, ThawOutcome& out);
  void own_thaw_round(const std::string& ns, const std::string& vm, const std::string& pod, record::FreezeKind kind,
                      bool first, bool frozen_for_certain, ThawOutcome& out);

  std::shared_ptr<rules::PodExec> exec_;
  std::shared_ptr<kubevirt::FreezeApi> api_;
  BackupSpec spec_;
};

std::vector<record::ExecutionRecord> execution_records(const std::string& phase, const std::vector<rules::ActionRun>& runs);

}  // namespace kvb::backup
