#include "kube/resource.h"

namespace kvb::kube {

std::string escape_path_segment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    out += out.empty() ? '?' : '&';
    out += escape_path_segment(k);
    out += '=';
    out += escape_path_segment(v);
  }
  return out;
}

std::string ResourceRef::group_version_path() const {
  return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
}

std::string ResourceRef::collection_path(std::string_view ns) const {
  std::string p = group_version_path();
  if (namespaced && !ns.empty()) p += "/namespaces/" + escape_path_segment(ns);
  return p + "/" + resource;
}

std::string ResourceRef::object_path(std::string_view ns, std::string_view name) const {
  return collection_path(ns) + "/" + escape_path_segment(name);
}

std::string ResourceRef::subresource_path(std::string_view ns, std::string_view name,
                                          std::string_view subresource) const {
  return object_path(ns, name) + "/" + std::string(subresource);
}

std::string ResourceRef::qualified_name() const {
  return group.empty() ? resource : resource + "." + group;
}

namespace resources {
const ResourceRef kNamespaces{"", "v1", "namespaces", "Namespace", false};
const ResourceRef kPods{"", "v1", "pods", "Pod", true};
const ResourceRef kPersistentVolumeClaims{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
const ResourceRef kPersistentVolumes{"", "v1", "persistentvolumes", "PersistentVolume", false};
const ResourceRef kSecrets{"", "v1", "secrets", "Secret", true};
const ResourceRef kConfigMaps{"", "v1", "configmaps", "ConfigMap", true};
const ResourceRef kEvents{"", "v1", "events", "Event", true};
const ResourceRef kStorageClasses{"storage.k8s.io", "v1", "storageclasses", "StorageClass", false};
const ResourceRef kVolumeSnapshots{"snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", true};
const ResourceRef kVolumeSnapshotContents{"snapshot.storage.k8s.io", "v1", "volumesnapshotcontents",
                                          "VolumeSnapshotContent", false};
const ResourceRef kVolumeSnapshotClasses{"snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
                                         "VolumeSnapshotClass", false};
const ResourceRef kLeases{"coordination.k8s.io", "v1", "leases", "Lease", true};
}  // namespace resources

}  // namespace kvb::kube
