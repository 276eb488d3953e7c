// Freezing and thawing one VM, and proving the freeze.
//
// Methods: exec (built-in or custom rule items run on the VM's launcher pod)
// and subresource (KubeVirt's freeze/unfreeze API, which needs no pods/exec
// permission). A freeze counts as frozen only with evidence: virt-freezer's
// "Operation completed successfully" after a freeze, KubeVirt's freeze API
// answering 200, or, for custom commands, the guest agent reporting frozen file
// systems through the guestosinfo subresource. Thaws are critical calls (no
// client rate limiting) and are retried within a budget; a thaw always runs
// for a VM whose pre rule started, whatever happened in between.
#pragma once

#include "backup/plan.h"
#include "backup/record.h"
#include "backup/spec.h"
#include "kube/client.h"
#include "rules/executor.h"
#include "rules/freeze_check.h"

#include <memory>
#include <optional>
#include <stop_token>

namespace kvb::backup {

struct FreezeOutcome {
  bool attempted = false;  // the pre rule started: the post rule must run
  rules::FreezeEvidence evidence = rules::FreezeEvidence::kUnknown;
  std::string reason;
  std::optional<WallTime> requested_at;
  std::optional<WallTime> frozen_at;
  std::vector<ExecutionRecord> executions;
  std::shared_ptr<rules::BackgroundActions> background;
  bool frozen() const { return evidence == rules::FreezeEvidence::kFrozen; }
};

struct ThawOutcome {
  bool ok = false;
  bool guest_thawed_itself = false;  // e.g. Windows VSS released the freeze after 10 s
  std::string reason;
  std::optional<WallTime> requested_at;
  std::optional<WallTime> thawed_at;
  std::vector<ExecutionRecord> executions;
};

class Freezer {
 public:
  Freezer(std::shared_ptr<kube::Client> client, const BackupSpec& spec);
  FreezeOutcome freeze(const VmPlan& vm, std::stop_token stop);
  ThawOutcome thaw(const VmPlan& vm, FreezeOutcome& freeze);

 private:
  FreezeOutcome freeze_exec(const VmPlan& vm, std::stop_token stop);
  FreezeOutcome freeze_subresource(const VmPlan& vm);
  ThawOutcome thaw_exec(const VmPlan& vm);
  ThawOutcome thaw_subresource(const VmPlan& vm);
  rules::FreezeEvidence ask_guest_agent(const VmPlan& vm, std::string& reason);

  std::shared_ptr<kube::Client> client_;
  BackupSpec spec_;
};

std::vector<ExecutionRecord> execution_records(const std::string& phase, const std::vector<rules::ActionRun>& runs);

}  // namespace kvb::backup
