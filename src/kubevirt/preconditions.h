// Whether a VM can be frozen file-system consistently right now, and if not,
// why: VM running (VMI phase Running, not paused), guest agent connected
// (AgentConnected=True), launcher pod Running with its compute container, not
// migrating, and at least one volume that can be snapshotted (a claim).
#pragma once

#include "kubevirt/inventory.h"

#include <string>
#include <vector>

namespace kvb::kubevirt {

struct Precondition {
  std::string name;  // Running, NotPaused, AgentConnected, LauncherPod, NotMigrating, SnapshotableVolume
  bool met = false;
  std::string reason;  // why not, when unmet
};

struct Readiness {
  std::vector<Precondition> checks;
  bool can_freeze() const;
  // The first unmet precondition, e.g. "guest agent not connected (no AgentConnected condition on VMI prod/db)".
  std::string blocker() const;
  const Precondition* find(std::string_view name) const;
};

Readiness check_preconditions(const VmInfo& vm);

}  // namespace kvb::kubevirt
