// The resources the test cluster serves: group, version, plural, kind, scope,
// short names and verbs, exactly what discovery (/api, /apis) reports and what
// kubectl needs to resolve "kubectl get vm".
#pragma once

#include "kube/resource.h"

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::testcluster {

struct ResourceInfo {
  kube::ResourceRef ref;
  std::string singular;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<std::string> subresources;  // "status", "exec", ...
  bool has_status = false;                // a status subresource: PUT/PATCH of the main resource ignores status
  std::vector<std::string> verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
  bool custom = false;  // served from a CustomResourceDefinition
  bool served = true;  // false: a CustomResourceDefinition's resource after the CRD went (kept: pointers stay valid)

  std::string key() const { return ref.group + "/" + ref.resource; }
};

// Invariant: entries are never removed (a deque: pointers to them stay valid
// while CRDs come and go); find(), find_kind() and group_versions() see only
// served ones, and callers of all() skip the unserved.
class Registry {
 public:
  Registry();
  const std::deque<ResourceInfo>& all() const { return resources_; }
  // A CustomResourceDefinition's version: added, or the existing custom entry
  // of the same group/version/plural updated and served again. A built-in
  // resource of that name stays as it is (a CRD for KubeVirt's own kinds
  // changes nothing: the simulator serves them).
  const ResourceInfo* serve_custom(ResourceInfo info);
  // Stops serving a custom group/version/plural (its CRD went).
  void unserve_custom(std::string_view group, std::string_view version, std::string_view resource);
  const ResourceInfo* find(std::string_view group, std::string_view version, std::string_view resource) const;
  const ResourceInfo* find_kind(std::string_view api_version, std::string_view kind) const;
  // group -> versions, in discovery order ("" is the core group).
  std::vector<std::pair<std::string, std::string>> group_versions() const;

 private:
  std::deque<ResourceInfo> resources_;
};

// Well-known resources of the simulated cluster.
namespace res {
extern const kube::ResourceRef kVirtualMachines;
extern const kube::ResourceRef kVirtualMachineInstances;
extern const kube::ResourceRef kDataVolumes;
extern const kube::ResourceRef kStorkRules;
extern const kube::ResourceRef kServiceAccounts;
extern const kube::ResourceRef kSnapshotMetadataServices;
extern const kube::ResourceRef kNodes;
extern const kube::ResourceRef kSelfSubjectAccessReviews;
extern const kube::ResourceRef kVirtualMachineExports;
extern const kube::ResourceRef kCustomResourceDefinitions;
}  // namespace res

}  // namespace kvb::testcluster
