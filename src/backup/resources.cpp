#include "backup/resources.h"

#include "kube/object.h"
#include "kubevirt/resources.h"
#include "record/naming.h"

#include <boost/json.hpp>

#include <set>

namespace kvb::backup {
namespace json = boost::json;

json::object clean_object(json::object obj) {
  obj.erase("status");
  if (auto* m = obj.if_contains("metadata"); m && m->is_object()) {
    auto& meta = m->as_object();
    for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
                          "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      meta.erase(k);
    }
    if (auto* a = meta.if_contains("annotations"); a && a->is_object()) {
      a->as_object().erase("kubectl.kubernetes.io/last-applied-configuration");
    }
  }
  return obj;
}

namespace {

struct Saver {
  kube::Client& client;
  location::Location& loc;
  const std::string& backup;
  record::VmRecord& rec;
  const ObjectLookup& cached;
  std::set<std::string> saved;

  Result<json::object> read(const kube::ResourceRef& ref, const std::string& ns, const std::string& name) {
    if (cached) {
      if (auto o = cached(ref, ns, name)) return std::move(*o);
    }
    return client.get(ref, ns, name);
  }

  Status save(const kube::ResourceRef& ref, const std::string& ns, const json::object& obj, bool secret = false) {
    std::string path = record::resource_path(backup, ref.namespaced ? ns : "", ref.qualified_name(), std::string(kube::name_of(obj)));
    if (saved.count(path)) return ok();
    KVB_CHECK(loc.put_deferred(path, json::serialize(obj), secret));  // made durable before the record
    saved.insert(path);
    rec.resources.push_back(path.substr(record::backup_dir(backup).size() + 1));
    return ok();
  }

  Status fetch_and_save(const kube::ResourceRef& ref, const std::string& ns, const std::string& name, bool secret = false,
                        bool required = true) {
    auto obj = read(ref, ns, name);
    if (!obj) {
      if (obj.error().code == Errc::kNotFound && !required) return ok();
      if (obj.error().code == Errc::kNotFound) {
        rec.problems.push_back(ref.kind + " " + ns + "/" + name + " referenced by the VM does not exist");
        return ok();
      }
      return obj.error().with_context("saving " + ref.kind + " " + ns + "/" + name);
    }
    return save(ref, ns, clean_object(std::move(*obj)), secret);
  }
};

void referenced_secrets_and_configmaps(const json::object& vm, std::set<std::string>& secrets, std::set<std::string>& cms) {
  if (const auto* vols = kube::array_at(vm, {"spec", "template", "spec", "volumes"})) {
    for (const auto& v : *vols) {
      for (const char* src : {"cloudInitNoCloud", "cloudInitConfigDrive"}) {
        for (const char* ref : {"secretRef", "networkDataSecretRef"}) {
          if (auto n = kube::str_at(v, {src, ref, "name"}); !n.empty()) secrets.insert(std::string(n));
        }
      }
      if (auto n = kube::str_at(v, {"secret", "secretName"}); !n.empty()) secrets.insert(std::string(n));
      if (auto n = kube::str_at(v, {"configMap", "name"}); !n.empty()) cms.insert(std::string(n));
    }
  }
  if (const auto* creds = kube::array_at(vm, {"spec", "template", "spec", "accessCredentials"})) {
    for (const auto& c : *creds) {
      if (auto n = kube::str_at(c, {"sshPublicKey", "source", "secret", "secretName"}); !n.empty()) secrets.insert(std::string(n));
      if (auto n = kube::str_at(c, {"userPassword", "source", "secret", "secretName"}); !n.empty()) secrets.insert(std::string(n));
    }
  }
}

}  // namespace

Status collect_resources(kube::Client& client, location::Location& loc, const std::string& backup, const VmPlan& plan,
                         record::VmRecord& rec, const ObjectLookup& cached) {
  Saver s{client, loc, backup, rec, cached, {}};
  const auto& vm = plan.vm;
  KVB_CHECK(s.save(kubevirt::kVirtualMachines, vm.ns, clean_object(vm.vm)));
  for (const auto& vol : plan.volumes) {
    if (vol.volume.source == "dataVolume") {
      KVB_CHECK(s.fetch_and_save(kubevirt::kDataVolumes, vm.ns, vol.volume.claim, false, false));
    }
    KVB_CHECK(s.save(kube::resources::kPersistentVolumeClaims, vm.ns, clean_object(vol.pvc)));
  }
  std::set<std::string> secrets, cms;
  referenced_secrets_and_configmaps(vm.vm, secrets, cms);
  for (const auto& n : secrets) KVB_CHECK(s.fetch_and_save(kube::resources::kSecrets, vm.ns, n, true));
  for (const auto& n : cms) KVB_CHECK(s.fetch_and_save(kube::resources::kConfigMaps, vm.ns, n));
  for (const char* field : {"instancetype", "preference"}) {
    std::string kind(kube::str_at(vm.vm, {"spec", field, "kind"}));
    std::string name(kube::str_at(vm.vm, {"spec", field, "name"}));
    if (name.empty()) continue;
    bool cluster = kind.empty() || kind.rfind("VirtualMachineCluster", 0) == 0;
    const auto& ref = std::string(field) == "instancetype" ? (cluster ? kubevirt::kClusterInstancetypes : kubevirt::kInstancetypes)
                                                           : (cluster ? kubevirt::kClusterPreferences : kubevirt::kPreferences);
    KVB_CHECK(s.fetch_and_save(ref, vm.ns, name, false, false));
  }
  // The snapshots and their contents (what a restore into another namespace re-creates).
  for (auto& vr : rec.volumes) {
    if (vr.volume_snapshot.empty() || vr.deleted) continue;
    auto snap = s.read(kube::resources::kVolumeSnapshots, vm.ns, vr.volume_snapshot);
    if (!snap) {
      rec.problems.push_back("VolumeSnapshot " + vm.ns + "/" + vr.volume_snapshot + " could not be read: " + snap.error().message);
      continue;
    }
    vr.content = std::string(kube::str_at(*snap, {"status", "boundVolumeSnapshotContentName"}));
    vr.restore_size = std::string(kube::str_at(*snap, {"status", "restoreSize"}));
    KVB_CHECK(s.save(kube::resources::kVolumeSnapshots, vm.ns, clean_object(*snap)));
    if (vr.content.empty()) continue;
    auto content = s.read(kube::resources::kVolumeSnapshotContents, "", vr.content);
    if (!content) {
      rec.problems.push_back("VolumeSnapshotContent " + vr.content + " could not be saved: " + content.error().message);
      continue;
    }
    KVB_CHECK(s.save(kube::resources::kVolumeSnapshotContents, "", *content));
  }
  return ok();
}

}  // namespace kvb::backup
