#include "backup/plan.h"

#include "kube/object.h"
#include "kubevirt/preconditions.h"
#include "rules/builtin.h"
#include "rules/templates.h"

#include <boost/json.hpp>

#include <map>
#include <set>

namespace kvb::backup {
namespace json = boost::json;

std::string snapshot_name(const std::string& backup, const std::string& vm, const std::string& volume) {
  std::string name = backup + "-" + vm + "-" + volume;
  for (char& c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) c = '-';
  }
  if (name.size() <= 253) return name;
  std::hash<std::string> h;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016zx", h(name));
  return name.substr(0, 236) + "-" + buf;
}

namespace {

struct StorageCatalog {
  std::map<std::string, json::object> pvcs;            // "ns/name"
  std::map<std::string, std::string> provisioner;      // storage class -> driver
  std::map<std::string, std::string> class_driver;     // snapshot class -> driver
  std::map<std::string, std::string> default_class;    // driver -> default snapshot class
  std::map<std::string, std::vector<std::string>> classes_by_driver;
};

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

}  // namespace

Result<Plan> make_plan(kube::Client& client, const BackupSpec& spec, std::vector<kubevirt::VmInfo> vms,
                       const std::vector<rules::Rule>& pre_rules, const std::vector<rules::Rule>& post_rules) {
  Plan plan;
  std::set<std::string> nss;
  for (const auto& v : vms) nss.insert(v.ns);
  plan.namespaces.assign(nss.begin(), nss.end());
  KVB_TRY(auto storage, load_storage(client, plan.namespaces));
  if (!spec.snapshot_class.empty() && !storage.class_driver.count(spec.snapshot_class)) {
    return Error(Errc::kInvalidArgument, "--snapshot-class: VolumeSnapshotClass \"" + spec.snapshot_class + "\" not found");
  }
  for (const auto& [sc, vsc] : spec.snapshot_class_map) {
    if (!storage.class_driver.count(vsc)) {
      return Error(Errc::kInvalidArgument, "--snapshot-class-map " + sc + "=" + vsc + ": VolumeSnapshotClass \"" + vsc + "\" not found");
    }
  }
  std::chrono::seconds unfreeze_timeout =
      std::chrono::duration_cast<std::chrono::seconds>(spec.freeze_deadline) + std::chrono::seconds(60);
  std::set<std::string> vm_pods;
  for (const auto& v : vms) {
    if (v.pod) vm_pods.insert(v.ns + "/" + v.pod_name());
  }
  for (auto& vm : vms) {
    VmPlan p;
    p.vm = std::move(vm);
    const auto& v = p.vm;
    for (const auto& n : v.notes) p.notes.push_back(n);
    // Volumes and their snapshot classes.
    for (const auto& vol : v.claims()) {
      VolumePlan vp;
      vp.volume = vol;
      auto it = storage.pvcs.find(v.ns + "/" + vol.claim);
      if (it == storage.pvcs.end()) {
        p.planned = VmPhase::kFailed;
        p.reason = "volume " + vol.name + ": PersistentVolumeClaim " + v.ns + "/" + vol.claim + " not found";
        break;
      }
      vp.pvc = it->second;
      vp.storage_class = std::string(kube::str_at(vp.pvc, {"spec", "storageClassName"}));
      vp.size = std::string(kube::str_at(vp.pvc, {"spec", "resources", "requests", "storage"}));
      vp.driver = storage.provisioner.count(vp.storage_class) ? storage.provisioner[vp.storage_class] : "";
      if (!spec.snapshot_class.empty()) {
        vp.snapshot_class = spec.snapshot_class;
      } else if (auto m = spec.snapshot_class_map.find(vp.storage_class); m != spec.snapshot_class_map.end()) {
        vp.snapshot_class = m->second;
      } else if (storage.default_class.count(vp.driver)) {
        vp.snapshot_class = storage.default_class[vp.driver];
      } else if (storage.classes_by_driver[vp.driver].size() == 1) {
        vp.snapshot_class = storage.classes_by_driver[vp.driver][0];
      } else {
        p.planned = VmPhase::kFailed;
        p.reason = "volume " + vol.name + " (claim " + vol.claim + ", storage class " +
                   (vp.storage_class.empty() ? std::string("<none>") : vp.storage_class) + ", driver " +
                   (vp.driver.empty() ? std::string("<unknown>") : vp.driver) +
                   "): no VolumeSnapshotClass for this driver; use --snapshot-class or --snapshot-class-map " +
                   (vp.storage_class.empty() ? std::string("SC") : vp.storage_class) + "=CLASS";
        break;
      }
      if (storage.class_driver[vp.snapshot_class] != vp.driver && !vp.driver.empty()) {
        p.planned = VmPhase::kFailed;
        p.reason = "volume " + vol.name + ": snapshot class " + vp.snapshot_class + " is for driver " +
                   storage.class_driver[vp.snapshot_class] + ", but claim " + vol.claim + " uses " + vp.driver;
        break;
      }
      vp.snapshot_name = snapshot_name(spec.name, v.name, vol.name);
      p.volumes.push_back(std::move(vp));
    }
    if (p.planned == VmPhase::kFailed) {
      plan.vms.push_back(std::move(p));
      continue;
    }
    if (p.volumes.empty()) {
      p.planned = VmPhase::kSkipped;
      p.reason = "the VM has no volume backed by a PersistentVolumeClaim or DataVolume";
      plan.vms.push_back(std::move(p));
      continue;
    }
    if (!v.running()) {
      p.promised = Consistency::kOffline;
      p.reason = "the VM is not running (" + (v.printable_status().empty() ? std::string("Stopped") : v.printable_status()) +
                 "): its disks are at rest";
      p.method = "none";
      plan.vms.push_back(std::move(p));
      continue;
    }
    // Running: can it be frozen?
    auto readiness = kubevirt::check_preconditions(v);
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
          p.method = "none";
          break;
      }
      plan.vms.push_back(std::move(p));
      continue;
    }
    if (!blocker.empty()) {
      p.promised = Consistency::kCrashConsistent;
      p.reason = blocker;
      p.method = "none";
      plan.vms.push_back(std::move(p));
      continue;
    }
    // Freezable: how.
    if (spec.rules == RulesMode::kBuiltin && spec.freeze_method == FreezeMethod::kSubresource) {
      p.freeze = true;
      p.method = "subresource";
      p.promised = Consistency::kFileSystemConsistent;
    } else if (spec.rules == RulesMode::kBuiltin) {
      auto builtin = rules::builtin_rules(v, rules::BuiltinOptions{unfreeze_timeout});
      if (!builtin) return builtin.error();
      if (!builtin->pre) {
        p.promised = Consistency::kCrashConsistent;
        p.reason = builtin->skip_reason;
        p.method = "none";
      } else {
        p.freeze = true;
        p.method = "exec-builtin";
        p.promised = Consistency::kFileSystemConsistent;
        p.pre.push_back(*builtin->pre);
        p.post.push_back(*builtin->post);
      }
    } else {
      kube::Labels labels = kube::labels_of(*v.pod);
      for (auto [rules_in, out] : {std::pair{&pre_rules, &p.pre}, std::pair{&post_rules, &p.post}}) {
        rules::Phase phase = rules_in == &pre_rules ? rules::Phase::kPre : rules::Phase::kPost;
        for (const auto& tmpl : *rules_in) {
          if (!tmpl.ns.empty() && tmpl.ns != v.ns) continue;
          KVB_TRY(auto rule, rules::expand_rule(tmpl, rules::TemplateVm{v.name, v.ns}, phase));
          for (auto item : rule.items) {
            if (!item.pod_selector.matches(labels)) continue;
            item.pod_namespace = v.ns;
            item.pod_name = v.pod_name();
            out->push_back(std::move(item));
          }
        }
      }
      if (p.pre.empty()) {
        p.promised = Consistency::kCrashConsistent;
        p.reason = "no pre-exec rule item matches this VM's launcher pod " + v.pod_name();
        p.method = "none";
        p.post.clear();
      } else {
        p.freeze = true;
        p.method = "exec-custom";
        p.promised = Consistency::kFileSystemConsistent;
        if (p.post.empty()) {
          p.notes.push_back("no post-exec rule item matches this VM: the guest would stay frozen; kvbackup thaws it with virt-freezer");
        }
      }
    }
    plan.vms.push_back(std::move(p));
  }
  // Application items: custom rule items matching no VM's launcher pod.
  if (spec.rules == RulesMode::kCustom) {
    for (auto [rules_in, out] : {std::pair{&pre_rules, &plan.app_pre}, std::pair{&post_rules, &plan.app_post}}) {
      rules::Phase phase = rules_in == &pre_rules ? rules::Phase::kPre : rules::Phase::kPost;
      for (const auto& tmpl : *rules_in) {
        // A template's items that name no VM are application items too: expand
        // it for one VM and keep the items that select no launcher pod.
        rules::Rule r = tmpl;
        if (tmpl.is_template) {
          const VmPlan* any = nullptr;
          for (const auto& vp : plan.vms) {
            if (tmpl.ns.empty() || tmpl.ns == vp.vm.ns) any = any ? any : &vp;
          }
          if (!any) continue;
          KVB_TRY(r, rules::expand_rule(tmpl, rules::TemplateVm{any->vm.name, any->vm.ns}, phase));
        }
        rules::Rule app = r;
        app.items.clear();
        for (const auto& item : r.items) {
          bool hits_vm = false;
          for (const auto& vp : plan.vms) {
            if (vp.vm.pod && item.pod_selector.matches(kube::labels_of(*vp.vm.pod))) hits_vm = true;
          }
          if (!hits_vm) app.items.push_back(item);
        }
        if (!app.items.empty()) out->push_back(std::move(app));
      }
    }
  }
  return plan;
}

}  // namespace kvb::backup
