#include "testcluster/registry.h"

namespace kvb::testcluster {

namespace res {
const kube::ResourceRef kVirtualMachines{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
const kube::ResourceRef kVirtualMachineInstances{"kubevirt.io", "v1", "virtualmachineinstances",
                                                 "VirtualMachineInstance", true};
const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
const kube::ResourceRef kStorkRules{"stork.libopenstorage.org", "v1alpha1", "rules", "Rule", true};
// Declared in cdi_upload.h (its only users besides this registry).
extern const kube::ResourceRef kCdiConfigs{"cdi.kubevirt.io", "v1beta1", "cdiconfigs", "CDIConfig", false};
extern const kube::ResourceRef kUploadTokenRequests{"upload.cdi.kubevirt.io", "v1beta1", "uploadtokenrequests", "UploadTokenRequest", true};
const kube::ResourceRef kServiceAccounts{"", "v1", "serviceaccounts", "ServiceAccount", true};
const kube::ResourceRef kSnapshotMetadataServices{"cbt.storage.k8s.io", "v1beta1", "snapshotmetadataservices", "SnapshotMetadataService", false};
const kube::ResourceRef kNodes{"", "v1", "nodes", "Node", false};
const kube::ResourceRef kSelfSubjectAccessReviews{"authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                                                  "SelfSubjectAccessReview", false};
const kube::ResourceRef kVirtualMachineExports{"export.kubevirt.io", "v1beta1", "virtualmachineexports",
                                               "VirtualMachineExport", true};
const kube::ResourceRef kCustomResourceDefinitions{"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                                   "CustomResourceDefinition", false};
}  // namespace res

Registry::Registry() {
  using kube::resources::kConfigMaps;
  auto add = [&](kube::ResourceRef ref, std::string singular, std::vector<std::string> shorts,
                 std::vector<std::string> subs, bool status, std::vector<std::string> cats = {}) {
    ResourceInfo info;
    info.ref = std::move(ref);
    info.singular = std::move(singular);
    info.short_names = std::move(shorts);
    info.categories = std::move(cats);
    info.subresources = std::move(subs);
    info.has_status = status;
    resources_.push_back(std::move(info));
    return &resources_.back();
  };
  add(kube::resources::kNamespaces, "namespace", {"ns"}, {"status"}, true);
  add(kube::resources::kPods, "pod", {"po"}, {"status", "exec", "log", "portforward"}, true, {"all"});
  add(kube::resources::kPersistentVolumeClaims, "persistentvolumeclaim", {"pvc"}, {"status"}, true);
  add(kube::resources::kPersistentVolumes, "persistentvolume", {"pv"}, {"status"}, true);
  add(kube::resources::kSecrets, "secret", {}, {}, false);
  add(kConfigMaps, "configmap", {"cm"}, {}, false);
  add(kube::resources::kEvents, "event", {"ev"}, {}, false);
  add(kube::resources::kStorageClasses, "storageclass", {"sc"}, {}, false);
  add(res::kVirtualMachines, "virtualmachine", {"vm", "vms"}, {"status"}, true, {"all"});
  add(res::kVirtualMachineInstances, "virtualmachineinstance", {"vmi", "vmis"}, {"status"}, true, {"all"});
  add(res::kDataVolumes, "datavolume", {"dv", "dvs"}, {"status"}, true, {"all"});
  add(kube::resources::kVolumeSnapshots, "volumesnapshot", {"vs"}, {"status"}, true);
  add(kube::resources::kVolumeSnapshotContents, "volumesnapshotcontent", {"vsc", "vscs"}, {"status"}, true);
  add(kube::resources::kVolumeSnapshotClasses, "volumesnapshotclass", {"vsclass", "vsclasses"}, {}, false);
  add(res::kStorkRules, "rule", {}, {}, false);
  add(res::kCdiConfigs, "cdiconfig", {}, {"status"}, true);
  add(res::kUploadTokenRequests, "uploadtokenrequest", {"utr"}, {}, false);
  add(res::kVirtualMachineExports, "virtualmachineexport", {"vmexport", "vmexports"}, {"status"}, true);
  add(kube::resources::kLeases, "lease", {}, {}, false);
  add(res::kServiceAccounts, "serviceaccount", {"sa"}, {"token"}, false);
  add(res::kSnapshotMetadataServices, "snapshotmetadataservice", {"sms"}, {}, false);
  add(res::kNodes, "node", {"no"}, {"status"}, true);
  add(res::kSelfSubjectAccessReviews, "selfsubjectaccessreview", {}, {}, false)->verbs = {"create"};
  add(res::kCustomResourceDefinitions, "customresourcedefinition", {"crd", "crds"}, {"status"}, true, {"api-extensions"});
}

const ResourceInfo* Registry::serve_custom(ResourceInfo info) {
  for (auto& r : resources_) {
    if (r.ref.group == info.ref.group && r.ref.version == info.ref.version && r.ref.resource == info.ref.resource) {
      if (!r.custom) return &r;
      r = std::move(info);
      r.custom = r.served = true;
      return &r;
    }
  }
  info.custom = info.served = true;
  resources_.push_back(std::move(info));
  return &resources_.back();
}

void Registry::unserve_custom(std::string_view group, std::string_view version, std::string_view resource) {
  for (auto& r : resources_) {
    if (r.custom && r.ref.group == group && r.ref.version == version && r.ref.resource == resource) r.served = false;
  }
}

const ResourceInfo* Registry::find(std::string_view group, std::string_view version, std::string_view resource) const {
  for (const auto& r : resources_) {
    if (r.served && r.ref.group == group && r.ref.version == version && r.ref.resource == resource) return &r;
  }
  return nullptr;
}

const ResourceInfo* Registry::find_kind(std::string_view api_version, std::string_view kind) const {
  for (const auto& r : resources_) {
    if (r.served && r.ref.api_version() == api_version && r.ref.kind == kind) return &r;
  }
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> Registry::group_versions() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : resources_) {
    if (!r.served) continue;
    std::pair<std::string, std::string> gv{r.ref.group, r.ref.version};
    bool seen = false;
    for (const auto& o : out) seen = seen || o == gv;
    if (!seen) out.push_back(gv);
  }
  return out;
}

}  // namespace kvb::testcluster
