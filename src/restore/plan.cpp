#include "restore/plan.h"

#include "record/naming.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "restore/transform.h"

#include <boost/json.hpp>

#include <regex>
#include <set>

namespace kvb::restore {
namespace json = boost::json;
namespace res = kube::resources;

namespace {

bool valid_name(const std::string& n) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return n.size() <= 63 && std::regex_match(n, re);
}

Result<json::object> saved_object(location::Location& loc, const std::string& backup, const std::string& ns,
                                  const kube::ResourceRef& ref, const std::string& name) {
  std::string path = record::resource_path(backup, ns, ref.qualified_name(), name);
  if (!loc.exists(path)) return Error(Errc::kNotFound, "backup " + backup + " has no saved " + ref.qualified_name() + " " + name);
  KVB_TRY(auto text, loc.get(path));
  KVB_TRY(auto v, parse_json(text, loc.describe() + "/" + path));
  if (!v.is_object()) return Error(Errc::kParse, loc.describe() + "/" + path + ": not a JSON object");
  return v.as_object();
}

std::optional<json::object> live(kube::Client& client, const kube::ResourceRef& ref, const std::string& ns,
                                 const std::string& name, Status& err) {
  auto r = client.get(ref, ns, name);
  if (r) return *r;
  if (r.error().code != Errc::kNotFound) err = r.error();
  return std::nullopt;
}

std::string mapped(const std::map<std::string, std::string>& m, const std::string& key, const std::string& def) {
  auto it = m.find(key);
  return it == m.end() ? def : it->second;
}

}  // namespace

Result<RestorePlan> make_restore_plan(kube::Client& client, location::Location& loc, const RestoreSpec& spec) {
  if (!valid_name(spec.name)) {
    return Error(Errc::kInvalidArgument, "restore name \"" + spec.name +
                                             "\" must be 1-63 lower-case letters, digits and '-', starting and ending alphanumeric");
  }
  if (loc.exists(restore_record_path(spec.name))) {
    return Error(Errc::kInvalidArgument, "restore \"" + spec.name + "\" already exists in " + loc.describe());
  }
  if (spec.run_strategy != "keep" && spec.run_strategy != "Halted" && spec.run_strategy != "Always") {
    return Error(Errc::kInvalidArgument, "--run-strategy \"" + spec.run_strategy + "\": expected keep, Halted or Always");
  }
  RestorePlan plan;
  KVB_TRY(plan.backup, record::load_backup_record(loc, spec.backup));
  const auto& b = plan.backup;
  if (b.phase != record::BackupPhase::kCompleted && b.phase != record::BackupPhase::kPartiallyFailed) {
    return Error(Errc::kInvalidArgument, "backup \"" + b.name + "\" is " + std::string(to_string(b.phase)) +
                                             (b.error.empty() ? "" : " (" + b.error + ")") + ": it has nothing to restore");
  }
  // Which VMs.
  std::vector<const record::VmRecord*> chosen;
  const std::set<std::string> filter(spec.vms.begin(), spec.vms.end());
  std::set<std::string> unmatched = filter;
  for (const auto& v : b.vms) {
    bool named = filter.count(v.name) || filter.count(v.ns + "/" + v.name);
    if (!filter.empty() && !named) continue;
    unmatched.erase(v.name);
    unmatched.erase(v.ns + "/" + v.name);
    if (v.phase != record::VmPhase::kCompleted) {
      if (named) {
        return Error(Errc::kInvalidArgument, "VM " + v.ns + "/" + v.name + " is " + std::string(to_string(v.phase)) +
                                                 " in backup " + b.name + ": not restorable (" + v.reason + ")");
      }
      plan.notes.push_back(v.ns + "/" + v.name + " left out: " + std::string(to_string(v.phase)) + " in the backup");
      continue;
    }
    chosen.push_back(&v);
  }
  if (!unmatched.empty()) return Error(Errc::kNotFound, "backup \"" + b.name + "\" has no VM \"" + *unmatched.begin() + "\"");
  if (chosen.empty()) return Error(Errc::kInvalidArgument, "backup \"" + b.name + "\" has no restorable VM in scope");

  std::set<std::string> targets, missing_ns, checked_ns;
  for (const auto* src : chosen) {
    VmToRestore vm;
    vm.source = *src;
    vm.ns = mapped(spec.namespace_mapping, src->ns, src->ns);
    vm.name = mapped(spec.rename, src->ns + "/" + src->name, mapped(spec.rename, src->name, src->name));
    std::string where = "VM " + src->ns + "/" + src->name + " -> " + vm.ns + "/" + vm.name;
    if (!valid_name(vm.ns) || !valid_name(vm.name)) return Error(Errc::kInvalidArgument, where + ": not a valid name");
    if (!targets.insert(vm.ns + "/" + vm.name).second) return Error(Errc::kInvalidArgument, where + ": restored twice");
    KVB_TRY(vm.saved_vm, saved_object(loc, b.name, src->ns, kubevirt::kVirtualMachines, src->name));
    Status err = ok();
    if (!checked_ns.count(vm.ns)) {
      checked_ns.insert(vm.ns);
      if (!live(client, res::kNamespaces, "", vm.ns, err)) {
        KVB_CHECK(err);
        if (!spec.create_namespaces) {
          return Error(Errc::kNotFound, where + ": namespace \"" + vm.ns + "\" does not exist (--create-namespace creates it)");
        }
        missing_ns.insert(vm.ns);
      }
    }
    vm.existing = live(client, kubevirt::kVirtualMachines, vm.ns, vm.name, err);
    KVB_CHECK(err);
    if (vm.existing && spec.existing == Existing::kFail) {
      return Error(Errc::kAlreadyExists, where + ": VirtualMachine " + vm.ns + "/" + vm.name +
                                             " exists (--existing replace replaces it once the restored claims are bound)");
    }
    bool same = vm.ns == src->ns && vm.name == src->name;
    bool original_exists = same ? vm.existing.has_value()
                                : live(client, kubevirt::kVirtualMachines, src->ns, src->name, err).has_value();
    KVB_CHECK(err);
    vm.copy = !same && original_exists;
    vm.run_strategy = spec.run_strategy == "keep" ? run_strategy_of(vm.saved_vm) : spec.run_strategy;

    for (const auto& vol : src->volumes) {
      VolumeToRestore v;
      v.source = vol;
      std::string vwhere = where + ", volume " + vol.name;
      if (auto pvc = saved_object(loc, b.name, src->ns, res::kPersistentVolumeClaims, vol.pvc)) v.saved_pvc = *pvc;
      v.claim = record::snapshot_name(spec.name, vm.name, vol.name);
      v.storage_class = mapped(spec.storage_class_mapping, vol.storage_class, vol.storage_class);
      if (!v.storage_class.empty()) {
        auto sc = live(client, res::kStorageClasses, "", v.storage_class, err);
        KVB_CHECK(err);
        if (!sc) return Error(Errc::kNotFound, vwhere + ": StorageClass \"" + v.storage_class + "\" not found");
        v.wait_for_first_consumer = kube::str_at(*sc, {"volumeBindingMode"}) == "WaitForFirstConsumer";
      }
      if (vol.volume_snapshot.empty() || vol.deleted) {
        return Error(Errc::kInvalidArgument, vwhere + ": the backup has no snapshot of it");
      }
      auto snap = live(client, res::kVolumeSnapshots, src->ns, vol.volume_snapshot, err);
      KVB_CHECK(err);
      if (!snap) {
        return Error(Errc::kNotFound, vwhere + ": VolumeSnapshot " + src->ns + "/" + vol.volume_snapshot + " of backup " + b.name +
                                          " no longer exists");
      }
      if (!kube::bool_at(*snap, {"status", "readyToUse"}).value_or(false)) {
        return Error(Errc::kInvalidArgument, vwhere + ": VolumeSnapshot " + src->ns + "/" + vol.volume_snapshot + " is not readyToUse");
      }
      std::string restore_size(kube::str_at(*snap, {"status", "restoreSize"}));
      v.size = larger_quantity(vol.size.empty() ? vol.restore_size : vol.size, restore_size.empty() ? vol.restore_size : restore_size);
      if (v.size.empty()) return Error(Errc::kInvalidArgument, vwhere + ": the backup records no size for it");
      if (vm.ns == src->ns) {
        v.snapshot = vol.volume_snapshot;
      } else {
        std::string content_name(kube::str_at(*snap, {"status", "boundVolumeSnapshotContentName"}));
        auto content = content_name.empty() ? std::nullopt : live(client, res::kVolumeSnapshotContents, "", content_name, err);
        KVB_CHECK(err);
        if (!content || kube::str_at(*content, {"status", "snapshotHandle"}).empty()) {
          return Error(Errc::kNotFound, vwhere + ": the VolumeSnapshotContent of " + src->ns + "/" + vol.volume_snapshot +
                                            " has no snapshotHandle; it cannot be brought into namespace " + vm.ns);
        }
        v.import = true;
        v.handle = std::string(kube::str_at(*content, {"status", "snapshotHandle"}));
        v.driver = std::string(kube::str_at(*content, {"spec", "driver"}));
        v.snapshot = record::snapshot_name(spec.name, vm.name, vol.name);
        v.content = record::snapshot_name(spec.name, vm.ns + "-" + vm.name, vol.name);
        if (live(client, res::kVolumeSnapshots, vm.ns, v.snapshot, err)) {
          return Error(Errc::kAlreadyExists, vwhere + ": VolumeSnapshot " + vm.ns + "/" + v.snapshot + " exists");
        }
        KVB_CHECK(err);
      }
      if (live(client, res::kPersistentVolumeClaims, vm.ns, v.claim, err)) {
        return Error(Errc::kAlreadyExists, vwhere + ": PersistentVolumeClaim " + vm.ns + "/" + v.claim + " exists");
      }
      KVB_CHECK(err);
      vm.volumes.push_back(std::move(v));
    }
    // Secrets and ConfigMaps the VM references.
    for (const auto& file : src->resources) {
      const kube::ResourceRef* ref = nullptr;
      if (file.find("/" + res::kSecrets.qualified_name() + "/") != std::string::npos) ref = &res::kSecrets;
      if (file.find("/" + res::kConfigMaps.qualified_name() + "/") != std::string::npos) ref = &res::kConfigMaps;
      if (!ref) continue;
      KVB_TRY(auto text, loc.get("backups/" + b.name + "/" + file));
      KVB_TRY(auto saved, parse_json(text, "backup " + b.name + ": " + file));
      if (!saved.is_object()) return Error(Errc::kParse, "backup " + b.name + ": " + file + " is not a JSON object");
      ConfigToRestore c;
      c.resource = ref;
      c.object = restored_config(saved.as_object(), vm.ns);
      std::string name(kube::name_of(c.object));
      if (auto existing = live(client, *ref, vm.ns, name, err)) {
        c.exists_identical = same_config(*existing, c.object);
        c.exists_different = !c.exists_identical;
        if (c.exists_different && spec.existing == Existing::kFail) {
          return Error(Errc::kAlreadyExists, where + ": " + ref->resource + " " + vm.ns + "/" + name +
                                                 " exists with other content (--existing replace replaces it)");
        }
      }
      KVB_CHECK(err);
      vm.configs.push_back(std::move(c));
    }
    plan.vms.push_back(std::move(vm));
  }
  plan.create_namespaces.assign(missing_ns.begin(), missing_ns.end());
  return plan;
}

}  // namespace kvb::restore
