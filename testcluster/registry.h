// The resources the test cluster serves: group, version, plural, kind, scope,
// short names and verbs, exactly what discovery (/api, /apis) reports and what
// kubectl needs to resolve "kubectl get vm".
#pragma once

#include "kube/resource.h"

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

  std::string key() const { return ref.group + "/" + ref.resource; }
};

class Registry {
 public:
  Registry();
  const std::vector<ResourceInfo>& all() const { return resources_; }
  const ResourceInfo* find(std::string_view group, std::string_view version, std::string_view resource) const;
  const ResourceInfo* find_kind(std::string_view api_version, std::string_view kind) const;
  // group -> versions, in discovery order ("" is the core group).
  std::vector<std::pair<std::string, std::string>> group_versions() const;

 private:
  std::vector<ResourceInfo> resources_;
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
}  // namespace res

}  // namespace kvb::testcluster
