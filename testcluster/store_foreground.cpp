// Foreground cascading deletion, as the API server's registry and the garbage
// collector do it (apiserver registry/generic/registry/store.go
// updateForGracefulDeletionAndFinalizers; pkg/controller/garbagecollector
// processDeletingDependentsItem): DELETE with propagationPolicy=Foreground on
// an object that has dependents sets its deletionTimestamp and the
// foregroundDeletion finalizer, deletes the dependents (in the foreground too),
// and removes the finalizer once no dependent with blockOwnerDeletion is left;
// the object goes then, unless other finalizers keep it.
#include "common/time.h"
#include "kube/object.h"
#include "testcluster/store.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

constexpr const char* kForegroundDeletion = "foregroundDeletion";

json::object& metadata(Object& o) {
  auto& m = o["metadata"];
  if (!m.is_object()) m = json::object();
  return m.as_object();
}

}  // namespace

bool Store::has_dependents(const std::string& owner_uid, bool blocking_only) const {
  for (const auto& [k, bucket] : objects_) {
    for (const auto& [key, o] : bucket) {
      const auto* owners = kube::array_at(o, {"metadata", "ownerReferences"});
      if (!owners) continue;
      for (const auto& ref : *owners) {
        if (kube::str_at(ref, {"uid"}) != owner_uid) continue;
        if (!blocking_only || kube::bool_at(ref, {"blockOwnerDeletion"}).value_or(false)) return true;
      }
    }
  }
  return false;
}

std::optional<Result<Object>> Store::delete_foreground(const ResourceInfo& r, Bucket::iterator it) {
  Object& cur = it->second;
  if (kube::value_at(cur, {"metadata", "deletionTimestamp"})) return std::nullopt;  // already going
  std::string uid(kube::str_at(cur, {"metadata", "uid"}));
  if (!has_dependents(uid, false)) return std::nullopt;  // nothing to wait for: deleted at once
  std::string ns(kube::str_at(cur, {"metadata", "namespace"})), name(kube::str_at(cur, {"metadata", "name"}));
  Object old = cur;
  auto& m = metadata(cur);
  json::array fins;
  if (auto* f = m.if_contains("finalizers"); f && f->is_array()) fins = f->as_array();
  fins.push_back(json::string(kForegroundDeletion));
  m["finalizers"] = std::move(fins);
  m["deletionTimestamp"] = format_rfc3339(WallClock::now());
  m["deletionGracePeriodSeconds"] = 0;
  m["resourceVersion"] = std::to_string(++rv_);
  Object marked = cur;
  foreground_[uid] = OwnerKey{&r, r.ref.namespaced ? ns : std::string(), name};
  emit(r, "MODIFIED", marked, old);
  collect_garbage(uid, "Foreground");
  finish_foreground(uid);
  if (const Object* now = find(r, ns, name)) return Result<Object>(*now);
  return Result<Object>(marked);
}

void Store::finish_foreground(const std::string& owner_uid) {
  auto it = foreground_.find(owner_uid);
  if (it == foreground_.end() || has_dependents(owner_uid, true)) return;
  OwnerKey owner = it->second;
  foreground_.erase(it);
  (void)mutate(*owner.resource, owner.ns, owner.name, [](Object& o) {
    json::array kept;
    if (const auto* f = kube::array_at(o, {"metadata", "finalizers"})) {
      for (const auto& v : *f) {
        if (!(v.is_string() && v.as_string() == kForegroundDeletion)) kept.push_back(v);
      }
    }
    if (kept.empty()) metadata(o).erase("finalizers");
    else metadata(o)["finalizers"] = std::move(kept);
  });
}

}  // namespace kvb::testcluster
