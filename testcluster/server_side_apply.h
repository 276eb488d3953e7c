// Server-side apply and metadata.managedFields for the test cluster's API
// (PATCH with application/apply-patch+yaml; every create, update and patch
// from a client records its manager), after apiserver's
// endpoints/handlers/fieldmanager and sigs.k8s.io/structured-merge-diff.
//
// A field set is a set of paths; a path is a list of FieldsV1 elements
// ("f:spec", "k:{\"name\":\"c\"}" for an item of a list keyed by name,
// "v:\"x\"" for an item of a set list). Lists are keyed by the list-map keys
// k8s.io/api declares (containers, volumes, env by name; ports by
// containerPort+protocol; volumeMounts by mountPath; ownerReferences by uid;
// conditions by type) for built-in kinds, `finalizers` is a set, every other
// list is atomic (custom resources and KubeVirt's kinds: all lists but
// metadata's are atomic).
//
// Invariants: apiVersion, kind and the server-set metadata (name, namespace,
// uid, resourceVersion, generation, creationTimestamp, managedFields) are never
// in a field set, nor `status` of a kind with a status subresource; after each
// write every manager's set only names paths the object has, and managers left
// with nothing are dropped.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "testcluster/store.h"

#include <string>
#include <vector>

namespace kvb::testcluster {

struct ApplyConflict {
  std::string manager;  // printed as upstream's printManager: "\"m\"" or "\"m\" using v1"
  std::string path;     // ".spec.containers[name=\"c\"].image"
};

struct ApplyResult {
  Object object;                        // the merged object with its new managedFields (when conflicts is empty)
  std::vector<ApplyConflict> conflicts;  // not empty: 409, nothing applied
};

// Applies `applied` (the client's configuration) as `manager` to `current`
// (nullptr: the object does not exist and is created from the configuration).
// force takes the conflicting fields from their managers.
ApplyResult server_side_apply(const ResourceInfo& r, const Object* current, const Object& applied,
                              const std::string& manager, bool force, WallTime now);

// "Apply failed with 1 conflict: conflict with \"m\" using v1: .data.k" (apiserver fieldmanager conflict.go).
std::string conflict_message(const std::vector<ApplyConflict>& conflicts);

// An Update operation (create, PUT, non-apply PATCH) by `manager`: `next`
// gets old's managedFields with the fields that changed from old to next
// owned by manager (taken from the others), removed fields owned by nobody.
void record_update(const ResourceInfo& r, const Object* old, Object& next, const std::string& manager, WallTime now);

// The manager of a non-apply write: ?fieldManager=, else the User-Agent up to its first '/'.
std::string default_manager(const std::string& field_manager, const std::string& user_agent);

}  // namespace kvb::testcluster
