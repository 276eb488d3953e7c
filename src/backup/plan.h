// The plan of a backup: for every VM in scope, what consistency kvbackup
// promises and why, how it freezes it, and which snapshot class each of its
// volumes gets. Everything that can be found wrong before touching a guest is
// found here (unknown snapshot class, no class for a driver, missing claim).
//
// One I/O step (load_storage) reads what the decisions need; the decisions
// themselves are pure functions of the spec, the inventory, the rules and the
// storage catalog (tests/backup/plan_test.cpp).
#pragma once

#include "backup/spec.h"
#include "kube/client.h"
#include "kubevirt/inventory.h"
#include "record/backup_record.h"
#include "rules/model.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvb::backup {

using record::Consistency;
using record::FreezeKind;
using record::VmPhase;

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
  FreezeKind freeze = FreezeKind::kNone;
  std::optional<std::chrono::seconds> auto_thaw;  // the guest's auto-thaw timer, when kvbackup knows it
  std::vector<rules::RuleItem> pre;   // items run on this VM's launcher pod
  std::vector<rules::RuleItem> post;
  std::vector<VolumePlan> volumes;
  std::vector<std::string> notes;

  bool freezes() const { return freeze != FreezeKind::kNone; }
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

// What the plan needs to know of the cluster's storage.
struct StorageCatalog {
  std::map<std::string, boost::json::object> pvcs;  // "ns/name"
  std::map<std::string, std::string> provisioner;    // storage class -> driver
  std::map<std::string, std::string> class_driver;   // snapshot class -> driver
  std::map<std::string, std::string> default_class;  // driver -> default snapshot class
  std::map<std::string, std::vector<std::string>> classes_by_driver;
};

// The one I/O step: claims of the namespaces, storage classes, snapshot classes.
Result<StorageCatalog> load_storage(kube::Client& client, const std::vector<std::string>& namespaces);

Result<Plan> make_plan(const BackupSpec& spec, std::vector<kubevirt::VmInfo> vms, const std::vector<rules::Rule>& pre_rules,
                       const std::vector<rules::Rule>& post_rules, const StorageCatalog& storage);

// The volumes of one VM with their snapshot classes; an error names the volume and what is missing.
Result<std::vector<VolumePlan>> plan_volumes(const BackupSpec& spec, const kubevirt::VmInfo& vm, const StorageCatalog& storage);

}  // namespace kvb::backup
