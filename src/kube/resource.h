// ResourceRef: which Kubernetes resource a request is about, and the REST
// paths for it.
//
// The API serves core resources under /api/v1 and grouped ones under
// /apis/{group}/{version}; namespaced ones add /namespaces/{ns}. Names are
// path segments and are percent-encoded here, so callers pass raw names.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::kube {

struct ResourceRef {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "pods", "virtualmachineinstances"
  std::string kind;      // "Pod"
  bool namespaced = true;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1" or "/apis/{group}/{version}"
  std::string group_version_path() const;
  // Collection path; ns empty for cluster-scoped resources or an all-namespaces list.
  std::string collection_path(std::string_view ns) const;
  std::string object_path(std::string_view ns, std::string_view name) const;
  // e.g. subresource "status", "exec", "freeze".
  std::string subresource_path(std::string_view ns, std::string_view name,
                               std::string_view subresource) const;
  // "pods", "volumesnapshots.snapshot.storage.k8s.io" — what kubectl and RBAC call it.
  std::string qualified_name() const;
};

// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
std::string escape_path_segment(std::string_view s);

// "?k1=v1&k2=v2" with keys and values percent-encoded; "" for no parameters.
std::string query_string(const std::vector<std::pair<std::string, std::string>>& params);

namespace resources {
extern const ResourceRef kNamespaces;
extern const ResourceRef kPods;
extern const ResourceRef kPersistentVolumeClaims;
extern const ResourceRef kPersistentVolumes;
extern const ResourceRef kSecrets;
extern const ResourceRef kConfigMaps;
extern const ResourceRef kEvents;
extern const ResourceRef kStorageClasses;
extern const ResourceRef kVolumeSnapshots;
extern const ResourceRef kVolumeSnapshotContents;
extern const ResourceRef kVolumeSnapshotClasses;
extern const ResourceRef kLeases;  // coordination.k8s.io/v1
}  // namespace resources

}  // namespace kvb::kube
