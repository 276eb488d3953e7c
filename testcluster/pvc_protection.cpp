// The StorageObjectInUseProtection admission plugin and the pvc-protection
// controller (kubernetes plugin/pkg/admission/storage/storageobjectinuseprotection,
// pkg/controller/volume/pvcprotection/pvc_protection_controller.go): every new
// claim gets the kubernetes.io/pvc-protection finalizer; a claim being deleted
// keeps it (Terminating, deletionTimestamp set) while a pod that is not shut
// down (phase neither Succeeded nor Failed) names it in a persistentVolumeClaim
// volume, and loses it, so goes, once no such pod is left.
// pv-protection (pkg/controller/volume/pvprotection/pv_protection_controller.go):
// every new PersistentVolume gets the kubernetes.io/pv-protection finalizer; a
// volume being deleted keeps it while its status.phase is Bound (isBeingUsed),
// and loses it once the volume is Released (its claim gone) or was never bound.
#include "kube/object.h"
#include "testcluster/core_controllers.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

bool pod_uses_claim(const Object& pod, std::string_view claim) {
  auto phase = kube::str_at(pod, {"status", "phase"});
  if (phase == "Succeeded" || phase == "Failed") return false;
  if (const auto* vols = kube::array_at(pod, {"spec", "volumes"})) {
    for (const auto& v : *vols) {
      if (kube::str_at(v, {"persistentVolumeClaim", "claimName"}) == claim) return true;
    }
  }
  return false;
}

}  // namespace

void CoreControllers::protect_claim(Object& pvc) { add_finalizer(pvc, kPvcProtection); }

void CoreControllers::add_finalizer(Object& o, const char* finalizer) {
  auto& m = o["metadata"].as_object();
  json::array fins;
  if (auto* f = m.if_contains("finalizers"); f && f->is_array()) fins = f->as_array();
  for (const auto& f : fins) {
    if (f.is_string() && f.as_string() == finalizer) return;
  }
  fins.push_back(json::string(finalizer));
  m["finalizers"] = std::move(fins);
}

namespace {
void drop_finalizer(Object& o, const char* finalizer) {
  json::array kept;
  if (const auto* f = kube::array_at(o, {"metadata", "finalizers"})) {
    for (const auto& v : *f) {
      if (!(v.is_string() && v.as_string() == finalizer)) kept.push_back(v);
    }
  }
  auto& m = o["metadata"].as_object();
  if (kept.empty()) m.erase("finalizers");
  else m["finalizers"] = std::move(kept);
}
}  // namespace

void CoreControllers::pvc_protection(const StoreEvent& e) {
  const auto& ref = e.resource->ref;
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (ref.group.empty() && ref.resource == "persistentvolumeclaims") {
    if (e.type != "DELETED" && kube::value_at(e.object, {"metadata", "deletionTimestamp"})) release_claim_if_unused(ns, name);
    return;
  }
  if (ref.group.empty() && ref.resource == "persistentvolumes") {
    // pv-protection: a volume being deleted goes once it is no longer Bound.
    if (e.type != "DELETED" && kube::value_at(e.object, {"metadata", "deletionTimestamp"}) &&
        kube::str_at(e.object, {"status", "phase"}) != "Bound") {
      (void)c_.store().mutate(*e.resource, "", name, [](Object& o) { drop_finalizer(o, kPvProtection); });
    }
    return;
  }
  if (!ref.group.empty() || ref.resource != "pods") return;
  // A pod that goes or shuts down may free the claims it used.
  auto phase = kube::str_at(e.object, {"status", "phase"});
  if (e.type != "DELETED" && phase != "Succeeded" && phase != "Failed") return;
  std::vector<std::string> claims;
  if (const auto* vols = kube::array_at(e.object, {"spec", "volumes"})) {
    for (const auto& v : *vols) {
      auto claim = kube::str_at(v, {"persistentVolumeClaim", "claimName"});
      if (!claim.empty()) claims.emplace_back(claim);
    }
  }
  for (const auto& claim : claims) release_claim_if_unused(ns, claim);
}

void CoreControllers::release_claim_if_unused(const std::string& ns, const std::string& claim) {
  Store& store = c_.store();
  const ResourceInfo& pvcs = c_.resource(kube::resources::kPersistentVolumeClaims);
  const Object* pvc = store.find(pvcs, ns, claim);
  if (!pvc || !kube::value_at(*pvc, {"metadata", "deletionTimestamp"})) return;
  for (const Object* pod : store.all(c_.resource(kube::resources::kPods), ns)) {
    if (pod_uses_claim(*pod, claim)) return;
  }
  (void)store.mutate(pvcs, ns, claim, [](Object& o) { drop_finalizer(o, kPvcProtection); });
}

}  // namespace kvb::testcluster
