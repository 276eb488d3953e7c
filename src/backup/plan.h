// The plan of a backup: for every VM in scope, what consistency kvbackup
// promises and why, how it freezes it, and which snapshot class each of its
// volumes gets. Everything that can be found wrong before touching a guest is
// found here (unknown snapshot class, no class for a driver, missing claim).
#pragma once

#include "backup/record.h"
#include "backup/spec.h"
#include "kube/client.h"
#include "kubevirt/inventory.h"
#include "rules/model.h"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::backup {

struct VolumePlan {
  kubevirt::VolumeInfo volume;
  boost::json::object pvc;
  std::string storage_class;
  std::string driver;
  std::string snapshot_class;
  std::string size;
  std::string snapshot_name;
};

struct VmPlan {
  kubevirt::VmInfo vm;
  Consistency promised = Consistency::kNone;
  std::string reason;          // why not FileSystemConsistent, or why skipped/failed
  VmPhase planned = VmPhase::kCompleted;  // Skipped/Failed decided before any action
  bool freeze = false;
  std::string method;          // exec-builtin, exec-custom, subresource, none
  std::vector<rules::RuleItem> pre;   // items run on this VM's launcher pod
  std::vector<rules::RuleItem> post;
  std::vector<VolumePlan> volumes;
  std::vector<std::string> notes;
};

struct Plan {
  std::vector<VmPlan> vms;
  // Custom rule items that match no VM's launcher pod (application pods): run
  // once before the first freeze and once after the last thaw.
  std::vector<rules::Rule> app_pre;
  std::vector<rules::Rule> app_post;
  std::vector<std::string> namespaces;
  std::vector<std::string> warnings;
};

Result<Plan> make_plan(kube::Client& client, const BackupSpec& spec, std::vector<kubevirt::VmInfo> vms,
                       const std::vector<rules::Rule>& pre_rules, const std::vector<rules::Rule>& post_rules);

// "<backup>-<vm>-<volume>", shortened with a hash when longer than a name may be.
std::string snapshot_name(const std::string& backup, const std::string& vm, const std::string& volume);

}  // namespace kvb::backup
