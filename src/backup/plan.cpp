#include "backup/plan.h"

#include "kube/object.h"
#include "kubevirt/preconditions.h"
#include "record/naming.h"
#include "rules/builtin.h"
#include "rules/coverage.h"
#include "rules/freeze_check.h"
#include "rules/templates.h"

#include <boost/json.hpp>

#include <set>

namespace kvb::backup {
namespace json = boost::json;

Result<StorageCatalog> load_storage(kube::Client& client, const std::vector<std::string>& namespaces) {
  StorageCatalog c;
  for (const auto& ns : namespaces) {
    KVB_TRY(auto pvcs, client.list(kube::resources::kPersistentVolumeClaims, ns));
    for (auto& p : pvcs.items) c.pvcs[kube::key_of(p.as_object())] = std::move(p.as_object());
  }
  KVB_TRY(auto scs, client.list(kube::resources::kStorageClasses, ""));
  for (const auto& s : scs.items) c.provisioner[std::string(kube::name_of(s))] = std::string(kube::str_at(s, {"provisioner"}));
  KVB_TRY(auto vscs, client.list(kube::resources::kVolumeSnapshotClasses, ""));
  for (const auto& v : vscs.items) {
    std::string name(kube::name_of(v)), driver(kube::str_at(v, {"driver"}));
    c.class_driver[name] = driver;
    c.classes_by_driver[driver].push_back(name);
    if (kube::annotation_of(v, "snapshot.storage.kubernetes.io/is-default-class") == "true") c.default_class[driver] = name;
  }
  return c;
}

Result<std::vector<VolumePlan>> plan_volumes(const BackupSpec& spec, const kubevirt::VmInfo& v, const StorageCatalog& storage) {
  std::vector<VolumePlan> out;
  auto lookup = [](const auto& map, const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? std::string() : it->second;
  };
  for (const auto& vol : v.claims()) {
    VolumePlan vp;
    vp.volume = vol;
    auto it = storage.pvcs.find(v.ns + "/" + vol.claim);
    if (it == storage.pvcs.end()) {
      return Error(Errc::kNotFound, "volume " + vol.name + ": PersistentVolumeClaim " + v.ns + "/" + vol.claim + " not found");
    }
    vp.pvc = it->second;
    vp.storage_class = std::string(kube::str_at(vp.pvc, {"spec", "storageClassName"}));
    vp.size = std::string(kube::str_at(vp.pvc, {"spec", "resources", "requests", "storage"}));
    vp.driver = lookup(storage.provisioner, vp.storage_class);
    auto by_driver = storage.classes_by_driver.find(vp.driver);
    if (!spec.snapshot_class.empty()) {
      vp.snapshot_class = spec.snapshot_class;
    } else if (auto m = spec.snapshot_class_map.find(vp.storage_class); m != spec.snapshot_class_map.end()) {
      vp.snapshot_class = m->second;
    } else if (auto d = lookup(storage.default_class, vp.driver); !d.empty()) {
      vp.snapshot_class = d;
    } else if (by_driver != storage.classes_by_driver.end() && by_driver->second.size() == 1) {
      vp.snapshot_class = by_driver->second[0];
    } else {
      std::string sc = vp.storage_class.empty() ? std::string("<none>") : vp.storage_class;
      return Error(Errc::kInvalidArgument,
                   "volume " + vol.name + " (claim " + vol.claim + ", storage class " + sc + ", driver " +
                       (vp.driver.empty() ? std::string("<unknown>") : vp.driver) +
                       "): no VolumeSnapshotClass for this driver; use --snapshot-class or --snapshot-class-map " +
                       (vp.storage_class.empty() ? std::string("SC") : vp.storage_class) + "=CLASS");
    }
    std::string class_driver = lookup(storage.class_driver, vp.snapshot_class);
    if (class_driver != vp.driver && !vp.driver.empty()) {
      return Error(Errc::kInvalidArgument, "volume " + vol.name + ": snapshot class " + vp.snapshot_class + " is for driver " +
                                               class_driver + ", but claim " + vol.claim + " uses " + vp.driver);
    }
    vp.snapshot_name = record::snapshot_name(spec.name, v.name, vol.name);
    out.push_back(std::move(vp));
  }
  return out;
}

namespace {

// Gives every virt-freezer freeze of this VM among `items` kvbackup's auto-thaw
// timer; returns the shortest effective timer (nullopt when no item is one).
std::optional<std::chrono::seconds> own_auto_thaw(std::vector<rules::RuleItem>& items, const kubevirt::VmInfo& vm,
                                                  std::chrono::seconds required, std::vector<std::string>& notes) {
  std::optional<std::chrono::seconds> shortest;
  std::string vmi = vm.vmi ? std::string(kube::name_of(*vm.vmi)) : vm.name;
  for (auto& item : items) {
    for (auto& a : item.actions) {
      std::string note;
      auto t = rules::own_unfreeze_timeout(a, vmi, vm.ns, required, note);
      if (!note.empty()) notes.push_back(item.origin + ": " + note);
      if (t && t->count() > 0 && (!shortest || *t < *shortest)) shortest = t;
    }
  }
  return shortest;
}

// The items of `rules_in` that run on this VM's launcher pod, expanded for it.
Result<std::vector<rules::RuleItem>> items_for(const std::vector<rules::Rule>& rules_in, const kubevirt::VmInfo& v,
                                               rules::Phase phase) {
  std::vector<rules::RuleItem> out;
  kube::Labels labels = kube::labels_of(*v.pod);
  for (const auto& tmpl : rules_in) {
    if (!tmpl.ns.empty() && tmpl.ns != v.ns) continue;
    KVB_TRY(auto rule, rules::expand_rule(tmpl, rules::TemplateVm{v.name, v.ns}, phase));
    for (auto item : rule.items) {
      if (!item.pod_selector.matches(labels)) continue;
      item.pod_namespace = v.ns;
      item.pod_name = v.pod_name();
      out.push_back(std::move(item));
    }
  }
  return out;
}

// How a running, freezable VM is frozen, and what that lets kvbackup promise.
Status plan_freeze(const BackupSpec& spec, VmPlan& p, const std::vector<rules::Rule>& pre_rules,
                   const std::vector<rules::Rule>& post_rules, const std::vector<rules::PodInfo>& launcher_pods) {
  const auto& v = p.vm;
  if (spec.rules == RulesMode::kBuiltin && spec.freeze_method == FreezeMethod::kSubresource) {
    p.freeze = FreezeKind::kSubresource;
    p.promised = Consistency::kFileSystemConsistent;
    p.auto_thaw = spec.unfreeze_timeout();
    return ok();
  }
  if (spec.rules == RulesMode::kBuiltin) {
    KVB_TRY(auto builtin, rules::builtin_rules(v, rules::BuiltinOptions{spec.unfreeze_timeout()}));
    if (!builtin.pre) {
      p.promised = Consistency::kCrashConsistent;
      p.reason = builtin.skip_reason;
      return ok();
    }
    p.freeze = FreezeKind::kBuiltinRules;
    p.promised = Consistency::kFileSystemConsistent;
    p.pre.push_back(*builtin.pre);
    p.post.push_back(*builtin.post);
    p.auto_thaw = own_auto_thaw(p.pre, v, spec.unfreeze_timeout(), p.notes);
    return ok();
  }
  KVB_TRY(p.pre, items_for(pre_rules, v, rules::Phase::kPre));
  KVB_TRY(p.post, items_for(post_rules, v, rules::Phase::kPost));
  if (p.pre.empty()) {
    p.promised = Consistency::kCrashConsistent;
    p.reason = "no pre-exec rule item matches this VM's launcher pod " + v.pod_name();
    p.post.clear();
    return ok();
  }
  p.freeze = FreezeKind::kCustomRules;
  p.auto_thaw = own_auto_thaw(p.pre, v, spec.unfreeze_timeout(), p.notes);
  // What `rules check` would say: only rules that certainly freeze this VM earn the promise.
  std::vector<std::string> problems;
  auto pre = rules::check_vm_phase(v, pre_rules, rules::Phase::kPre, launcher_pods, problems);
  if (pre.covered && problems.empty()) {
    p.promised = Consistency::kFileSystemConsistent;
  } else {
    p.promised = Consistency::kCrashConsistent;
    p.reason = "the pre-exec rules do not certainly freeze this VM (" +
               (problems.empty() ? std::string("no virt-freezer --freeze of it") : problems[0]) +
               "); the freeze is judged by what the guest agent reports";
  }
  if (p.post.empty()) {
    p.notes.push_back("no post-exec rule item matches this VM: the guest would stay frozen; kvbackup thaws it with virt-freezer");
  }
  return ok();
}

// Application items: custom rule items matching no VM's launcher pod.
Status plan_app_rules(const std::vector<rules::Rule>& rules_in, rules::Phase phase, const std::vector<VmPlan>& vms,
                      std::vector<rules::Rule>& out) {
  for (const auto& tmpl : rules_in) {
    // A template's items that name no VM are application items too: expand
    // it for one VM and keep the items that select no launcher pod.
    rules::Rule r = tmpl;
    if (tmpl.is_template) {
      const VmPlan* any = nullptr;
      for (const auto& vp : vms) {
        if (!any && (tmpl.ns.empty() || tmpl.ns == vp.vm.ns)) any = &vp;
      }
      if (!any) continue;
      KVB_TRY(r, rules::expand_rule(tmpl, rules::TemplateVm{any->vm.name, any->vm.ns}, phase));
    }
    rules::Rule app = r;
    app.items.clear();
    for (const auto& item : r.items) {
      bool hits_vm = false;
      for (const auto& vp : vms) hits_vm = hits_vm || (vp.vm.pod && item.pod_selector.matches(kube::labels_of(*vp.vm.pod)));
      if (!hits_vm) app.items.push_back(item);
    }
    if (!app.items.empty()) out.push_back(std::move(app));
  }
  return ok();
}

// Running: can it be frozen? Empty when it can; else what the promise becomes.
bool plan_unfreezable(const BackupSpec& spec, VmPlan& p) {
  auto readiness = kubevirt::check_preconditions(p.vm);
  const auto* agent = readiness.find("AgentConnected");
  std::string blocker;
  for (const char* name : {"NotPaused", "LauncherPod", "NotMigrating"}) {
    const auto* pc = readiness.find(name);
    if (pc && !pc->met && blocker.empty()) blocker = pc->reason;
  }
  if (blocker.empty() && agent && !agent->met) {
    switch (spec.on_no_agent) {
      case OnNoAgent::kSkip:
        p.planned = VmPhase::kSkipped;
        p.reason = agent->reason + " (--on-no-agent skip)";
        break;
      case OnNoAgent::kFail:
        p.planned = VmPhase::kFailed;
        p.reason = agent->reason + " (--on-no-agent fail)";
        break;
      case OnNoAgent::kCrashConsistent:
        p.promised = Consistency::kCrashConsistent;
        p.reason = agent->reason;
        break;
    }
    return true;
  }
  if (!blocker.empty()) {
    p.promised = Consistency::kCrashConsistent;
    p.reason = blocker;
    return true;
  }
  return false;
}

}  // namespace

Result<Plan> make_plan(const BackupSpec& spec, std::vector<kubevirt::VmInfo> vms, const std::vector<rules::Rule>& pre_rules,
                       const std::vector<rules::Rule>& post_rules, const StorageCatalog& storage) {
  Plan plan;
  std::set<std::string> nss;
  std::vector<rules::PodInfo> launcher_pods;
  for (const auto& v : vms) {
    nss.insert(v.ns);
    if (v.pod) launcher_pods.push_back(rules::pod_info(*v.pod));
  }
  plan.namespaces.assign(nss.begin(), nss.end());
  if (!spec.snapshot_class.empty() && !storage.class_driver.count(spec.snapshot_class)) {
    return Error(Errc::kInvalidArgument, "--snapshot-class: VolumeSnapshotClass \"" + spec.snapshot_class + "\" not found");
  }
  for (const auto& [sc, vsc] : spec.snapshot_class_map) {
    if (!storage.class_driver.count(vsc)) {
      return Error(Errc::kInvalidArgument, "--snapshot-class-map " + sc + "=" + vsc + ": VolumeSnapshotClass \"" + vsc + "\" not found");
    }
  }
  for (auto& vm : vms) {
    VmPlan p;
    p.vm = std::move(vm);
    p.notes = p.vm.notes;
    auto volumes = plan_volumes(spec, p.vm, storage);
    if (!volumes) {
      p.planned = VmPhase::kFailed;
      p.reason = volumes.error().message;
    } else if (volumes->empty()) {
      p.planned = VmPhase::kSkipped;
      p.reason = "the VM has no volume backed by a PersistentVolumeClaim or DataVolume";
    } else if (p.volumes = std::move(*volumes); !p.vm.running()) {
      p.promised = Consistency::kOffline;
      p.reason = "the VM is not running (" +
                 (p.vm.printable_status().empty() ? std::string("Stopped") : p.vm.printable_status()) + "): its disks are at rest";
    } else if (!plan_unfreezable(spec, p)) {
      KVB_CHECK(plan_freeze(spec, p, pre_rules, post_rules, launcher_pods));
    }
    plan.vms.push_back(std::move(p));
  }
  if (spec.rules == RulesMode::kCustom) {
    KVB_CHECK(plan_app_rules(pre_rules, rules::Phase::kPre, plan.vms, plan.app_pre));
    KVB_CHECK(plan_app_rules(post_rules, rules::Phase::kPost, plan.vms, plan.app_post));
  }
  return plan;
}

}  // namespace kvb::backup
