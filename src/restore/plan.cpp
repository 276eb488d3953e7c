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

// A live object in the way, unless this very restore made it (then it is its own: adopted).
Result<std::optional<json::object>> in_the_way(PlanSources& src, const kube::ResourceRef& ref, const std::string& ns,
                                               const std::string& name, const std::string& restore) {
  KVB_TRY(auto o, src.live(ref, ns, name));
  if (o && kube::label_of(*o, kRestoreLabel) == restore) return std::optional<json::object>();
  return o;
}

class ClusterSources : public PlanSources {
 public:
  ClusterSources(kube::Client& c, location::Location& l) : client_(c), loc_(l) {}
  Result<record::BackupRecord> backup(const std::string& name) override { return record::load_backup_record(loc_, name); }
  bool restore_exists(const std::string& name) override { return loc_.exists(restore_record_path(name)); }
  Result<json::object> saved(const std::string& backup, const std::string& path) override {
    std::string full = record::backup_dir(backup) + "/" + path;
    if (!loc_.exists(full)) return Error(Errc::kNotFound, "backup " + backup + " has no saved " + path);
    KVB_TRY(auto text, loc_.get(full));
    KVB_TRY(auto v, parse_json(text, loc_.describe() + "/" + full));
    if (!v.is_object()) return Error(Errc::kParse, loc_.describe() + "/" + full + ": not a JSON object");
    return v.as_object();
  }
  Result<std::optional<json::object>> live(const kube::ResourceRef& ref, const std::string& ns, const std::string& name) override {
    auto r = client_.get(ref, ns, name);
    if (r) return std::optional<json::object>(std::move(*r));
    if (r.error().code == Errc::kNotFound) return std::optional<json::object>();
    return r.error();
  }

 private:
  kube::Client& client_;
  location::Location& loc_;
};

// "resources/<ns>/<resource>/<name>.json" of a backup.
std::string saved_path(const std::string& ns, const kube::ResourceRef& ref, const std::string& name) {
  std::string full = record::resource_path("x", ns, ref.qualified_name(), name);
  return full.substr(record::backup_dir("x").size() + 1);
}

std::string mapped(const std::map<std::string, std::string>& m, const std::string& key, const std::string& def) {
  auto it = m.find(key);
  return it == m.end() ? def : it->second;
}

}  // namespace

bool RestorePlan::uses_repository() const {
  for (const auto& vm : vms) {
    for (const auto& v : vm.volumes) {
      if (v.from_repository) return true;
    }
  }
  return false;
}

std::unique_ptr<PlanSources> cluster_sources(kube::Client& client, location::Location& loc) {
  return std::make_unique<ClusterSources>(client, loc);
}

Result<RestorePlan> make_restore_plan(kube::Client& client, location::Location& loc, const RestoreSpec& spec) {
  auto sources = cluster_sources(client, loc);
  return plan_restore(spec, *sources);
}

Result<RestorePlan> plan_restore(const RestoreSpec& spec, PlanSources& src) {
  if (!valid_name(spec.name)) {
    return Error(Errc::kInvalidArgument, "restore name \"" + spec.name +
                                             "\" must be 1-63 lower-case letters, digits and '-', starting and ending alphanumeric");
  }
  if (src.restore_exists(spec.name)) {
    return Error(Errc::kInvalidArgument, "restore \"" + spec.name + "\" already exists in the location");
  }
  if (spec.run_strategy != "keep" && spec.run_strategy != "Halted" && spec.run_strategy != "Always") {
    return Error(Errc::kInvalidArgument, "--run-strategy \"" + spec.run_strategy + "\": expected keep, Halted or Always");
  }
  RestorePlan plan;
  KVB_TRY(plan.backup, src.backup(spec.backup));
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
    if (v.phase != record::VmPhase::kCompleted && v.phase != record::VmPhase::kPartiallyFailed) {  // PartiallyFailed: its snapshots are fine
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
  for (const auto* from : chosen) {
    VmToRestore vm;
    vm.source = *from;
    vm.ns = mapped(spec.namespace_mapping, from->ns, from->ns);
    vm.name = mapped(spec.rename, from->ns + "/" + from->name, mapped(spec.rename, from->name, from->name));
    std::string where = "VM " + from->ns + "/" + from->name + " -> " + vm.ns + "/" + vm.name;
    if (!valid_name(vm.ns) || !valid_name(vm.name)) return Error(Errc::kInvalidArgument, where + ": not a valid name");
    if (!targets.insert(vm.ns + "/" + vm.name).second) return Error(Errc::kInvalidArgument, where + ": restored twice");
    KVB_TRY(vm.saved_vm, src.saved(b.name, saved_path(from->ns, kubevirt::kVirtualMachines, from->name)));
    if (!checked_ns.count(vm.ns)) {
      checked_ns.insert(vm.ns);
      KVB_TRY(auto ns_obj, src.live(res::kNamespaces, "", vm.ns));
      if (!ns_obj) {
        if (!spec.create_namespaces) {
          return Error(Errc::kNotFound, where + ": namespace \"" + vm.ns + "\" does not exist (--create-namespace creates it)");
        }
        missing_ns.insert(vm.ns);
      }
    }
    KVB_TRY(vm.existing, in_the_way(src, kubevirt::kVirtualMachines, vm.ns, vm.name, spec.name));
    if (vm.existing && spec.existing == Existing::kFail) {
      return Error(Errc::kAlreadyExists, where + ": VirtualMachine " + vm.ns + "/" + vm.name +
                                             " exists (--existing replace replaces it once the restored claims are bound)");
    }
    bool same = vm.ns == from->ns && vm.name == from->name;
    bool original_exists = vm.existing.has_value();
    if (!same) {
      KVB_TRY(auto original, src.live(kubevirt::kVirtualMachines, from->ns, from->name));
      original_exists = original.has_value();
    }
    vm.copy = !same && original_exists;
    vm.run_strategy = spec.run_strategy == "keep" ? run_strategy_of(vm.saved_vm) : spec.run_strategy;

    for (const auto& vol : from->volumes) {
      VolumeToRestore v;
      v.source = vol;
      std::string vwhere = where + ", volume " + vol.name;
      if (auto pvc = src.saved(b.name, saved_path(from->ns, res::kPersistentVolumeClaims, vol.pvc))) v.saved_pvc = *pvc;
      v.claim = record::snapshot_name(spec.name, vm.name, vol.name);
      v.storage_class = mapped(spec.storage_class_mapping, vol.storage_class, vol.storage_class);
      if (!v.storage_class.empty()) {
        KVB_TRY(auto sc, src.live(res::kStorageClasses, "", v.storage_class));
        if (!sc) return Error(Errc::kNotFound, vwhere + ": StorageClass \"" + v.storage_class + "\" not found");
        v.wait_for_first_consumer = kube::str_at(*sc, {"volumeBindingMode"}) == "WaitForFirstConsumer";
      }
      // Where the bytes come from: the snapshot when it is there and ready (unless told otherwise), else the repository copy.
      const bool have_copy = vol.copy && vol.copy->ok();
      std::optional<Error> no_snapshot;
      std::optional<json::object> snap;
      if (spec.data_source != DataSource::kRepository) {
        if (vol.volume_snapshot.empty() || vol.deleted) {
          no_snapshot = Error(Errc::kInvalidArgument, vwhere + ": the backup has no snapshot of it");
        } else {
          KVB_TRY(snap, src.live(res::kVolumeSnapshots, from->ns, vol.volume_snapshot));
          if (!snap) {
            no_snapshot = Error(Errc::kNotFound, vwhere + ": VolumeSnapshot " + from->ns + "/" + vol.volume_snapshot + " of backup " +
                                                     b.name + " no longer exists");
          } else if (!kube::bool_at(*snap, {"status", "readyToUse"}).value_or(false)) {
            no_snapshot = Error(Errc::kInvalidArgument, vwhere + ": VolumeSnapshot " + from->ns + "/" + vol.volume_snapshot +
                                                            " is not readyToUse");
          }
        }
      }
      if (spec.data_source == DataSource::kRepository || (spec.data_source == DataSource::kAuto && no_snapshot && have_copy)) {
        if (!have_copy) {
          std::string why = !vol.copy ? "the backup was made without --copy-data"
                                      : "its copy failed: " + (vol.copy->error.empty() ? std::string("no repository snapshot") : vol.copy->error);
          return Error(Errc::kInvalidArgument, vwhere + ": --data-source repository, but backup " + b.name +
                                                   " has no copy of this volume in the repository (" + why + ")");
        }
        v.from_repository = true;
        v.copy = *vol.copy;
        std::string recorded = vol.size.empty() ? vol.restore_size : vol.size;
        v.size = larger_quantity(recorded, std::to_string(vol.copy->bytes));
        if (v.size.empty()) return Error(Errc::kInvalidArgument, vwhere + ": the backup records no size for it");
        KVB_TRY(auto dv_taken, in_the_way(src, kubevirt::kDataVolumes, vm.ns, v.claim, spec.name));
        if (dv_taken) return Error(Errc::kAlreadyExists, vwhere + ": DataVolume " + vm.ns + "/" + v.claim + " exists");
        KVB_TRY(auto taken, in_the_way(src, res::kPersistentVolumeClaims, vm.ns, v.claim, spec.name));
        if (taken) return Error(Errc::kAlreadyExists, vwhere + ": PersistentVolumeClaim " + vm.ns + "/" + v.claim + " exists");
        vm.volumes.push_back(std::move(v));
        continue;
      }
      if (no_snapshot) {
        Error e = *no_snapshot;
        if (spec.data_source == DataSource::kAuto && !have_copy && vol.copy) e.message += " (and its repository copy failed)";
        return e;
      }
      std::string restore_size(kube::str_at(*snap, {"status", "restoreSize"}));
      v.size = larger_quantity(vol.size.empty() ? vol.restore_size : vol.size, restore_size.empty() ? vol.restore_size : restore_size);
      if (v.size.empty()) return Error(Errc::kInvalidArgument, vwhere + ": the backup records no size for it");
      if (vm.ns == from->ns) {
        v.snapshot = vol.volume_snapshot;
      } else {
        std::string content_name(kube::str_at(*snap, {"status", "boundVolumeSnapshotContentName"}));
        std::optional<json::object> content;
        if (!content_name.empty()) {
          KVB_TRY(content, src.live(res::kVolumeSnapshotContents, "", content_name));
        }
        if (!content || kube::str_at(*content, {"status", "snapshotHandle"}).empty()) {
          return Error(Errc::kNotFound, vwhere + ": the VolumeSnapshotContent of " + from->ns + "/" + vol.volume_snapshot +
                                            " has no snapshotHandle; it cannot be brought into namespace " + vm.ns);
        }
        v.import = true;
        v.handle = std::string(kube::str_at(*content, {"status", "snapshotHandle"}));
        v.driver = std::string(kube::str_at(*content, {"spec", "driver"}));
        v.snapshot = record::snapshot_name(spec.name, vm.name, vol.name);
        v.content = record::snapshot_name(spec.name, vm.ns + "-" + vm.name, vol.name);
        KVB_TRY(auto taken, in_the_way(src, res::kVolumeSnapshots, vm.ns, v.snapshot, spec.name));
        if (taken) return Error(Errc::kAlreadyExists, vwhere + ": VolumeSnapshot " + vm.ns + "/" + v.snapshot + " exists");
      }
      KVB_TRY(auto claim_taken, in_the_way(src, res::kPersistentVolumeClaims, vm.ns, v.claim, spec.name));
      if (claim_taken) return Error(Errc::kAlreadyExists, vwhere + ": PersistentVolumeClaim " + vm.ns + "/" + v.claim + " exists");
      vm.volumes.push_back(std::move(v));
    }
    // Secrets and ConfigMaps the VM references.
    for (const auto& file : from->resources) {
      const kube::ResourceRef* ref = nullptr;
      if (file.find("/" + res::kSecrets.qualified_name() + "/") != std::string::npos) ref = &res::kSecrets;
      if (file.find("/" + res::kConfigMaps.qualified_name() + "/") != std::string::npos) ref = &res::kConfigMaps;
      if (!ref) continue;
      KVB_TRY(auto saved, src.saved(b.name, file));
      ConfigToRestore c;
      c.resource = ref;
      c.object = restored_config(saved, vm.ns);
      std::string name(kube::name_of(c.object));
      KVB_TRY(auto existing, in_the_way(src, *ref, vm.ns, name, spec.name));
      if (existing) {
        c.exists_identical = same_config(*existing, c.object);
        c.exists_different = !c.exists_identical;
        if (c.exists_different && spec.existing == Existing::kFail) {
          return Error(Errc::kAlreadyExists, where + ": " + ref->resource + " " + vm.ns + "/" + name +
                                                 " exists with other content (--existing replace replaces it)");
        }
      }
      vm.configs.push_back(std::move(c));
    }
    plan.vms.push_back(std::move(vm));
  }
  plan.create_namespaces.assign(missing_ns.begin(), missing_ns.end());
  return plan;
}

}  // namespace kvb::restore
