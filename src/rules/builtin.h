// kvbackup's built-in freeze/thaw rules: one pre and one post rule item per VM
// that can be frozen, the way Portworx Backup creates them, but exact.
//
// The item targets the VM's own launcher pod (found by kubevirt.io/created-by),
// shown as the Stork selector {vm.kubevirt.io/name: <hostname>,
// kubevirt.io/created-by: <VMI uid>}. Container, command and timeout come from
// the pod's Velero hook annotations; without them kvbackup falls back to
// `/usr/bin/virt-freezer --freeze|--unfreeze --name <vmi> --namespace <ns>` in
// `compute`. Built-in freezes add --unfreezeTimeoutSeconds so that a guest
// thaws by itself if kvbackup dies mid-backup. A VM with
// kubevirt.io/skip-backup-hooks gets no built-in rules.
#pragma once

#include "common/error.h"
#include "kubevirt/inventory.h"
#include "rules/model.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kvb::rules {

struct BuiltinOptions {
  std::chrono::seconds unfreeze_timeout{120};
};

struct BuiltinRules {
  std::optional<RuleItem> pre;
  std::optional<RuleItem> post;
  std::string source;       // "velero-annotations" or "virt-freezer-fallback"
  std::string skip_reason;  // why there are none (skip-backup-hooks, no launcher pod)
};

Result<BuiltinRules> builtin_rules(const kubevirt::VmInfo& vm, const BuiltinOptions& o);

// The built-in rules of many VMs as two Stork Rule documents (pre, post),
// the way a user would write them by hand.
std::string builtin_rules_yaml(const std::vector<kubevirt::VmInfo>& vms, const BuiltinOptions& o);

// A Stork Rule document (JSON) for items, for `rules show-builtin` and `rules generate`.
boost::json::object stork_rule_document(const std::string& name, const std::string& ns, const std::vector<RuleItem>& items);

}  // namespace kvb::rules
