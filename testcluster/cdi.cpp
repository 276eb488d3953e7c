#include "testcluster/cdi.h"

#include "kube/object.h"
#include "testcluster/csi.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPersistentVolumeClaims;

namespace {

constexpr const char* kPopulatedFor = "cdi.kubevirt.io/storage.populatedFor";

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

bool controlled_by(const Object& o, std::string_view uid) {
  if (const auto* refs = kube::array_at(o, {"metadata", "ownerReferences"})) {
    for (const auto& r : *refs) {
      if (kube::str_at(r, {"uid"}) == uid && kube::bool_at(r, {"controller"}).value_or(false)) return true;
    }
  }
  return false;
}

json::object dv_owner_ref(const Object& dv) {
  return json::object{{"apiVersion", "cdi.kubevirt.io/v1beta1"}, {"kind", "DataVolume"}, {"name", kube::name_of(dv)},
                      {"uid", kube::uid_of(dv)}, {"controller", true}, {"blockOwnerDeletion", true}};
}

// CDI's updateCondition: the transition time moves only when the status does.
void put_condition(json::array& conds, const std::string& type, const std::string& status, const std::string& message,
                   const std::string& reason) {
  std::string now = format_rfc3339(WallClock::now());
  for (auto& c : conds) {
    auto& o = c.as_object();
    if (kube::str_at(o, {"type"}) != type) continue;
    if (kube::str_at(o, {"status"}) != status) o["lastTransitionTime"] = now;
    o["status"] = status;
    o["message"] = message;
    o["reason"] = reason;
    o["lastHeartbeatTime"] = now;
    return;
  }
  conds.push_back(json::object{{"type", type}, {"status", status}, {"message", message}, {"reason", reason},
                               {"lastTransitionTime", now}, {"lastHeartbeatTime", now}});
}

}  // namespace

Cdi::Cdi(Cluster& c) : c_(c) {}

void Cdi::on_change(const StoreEvent& e) {
  const auto& ref = e.resource->ref;
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (ref.resource == "datavolumes" && ref.group == "cdi.kubevirt.io") {
    if (e.type == "ADDED") reconcile(ns, name);
    if (e.type == "DELETED") waiting_clones_.erase(key(ns, name));
  } else if (ref.resource == "persistentvolumeclaims" && ref.group.empty()) {
    if (c_.store().find(c_.resource(res::kDataVolumes), ns, name)) reconcile(ns, name);
    std::vector<std::string> waiting;
    for (const auto& k : waiting_clones_) {
      if (k.compare(0, ns.size() + 1, ns + "/") == 0) waiting.push_back(k.substr(ns.size() + 1));
    }
    for (const auto& w : waiting) {
      if (w != name) reconcile(ns, w);
    }
  }
}

void Cdi::create_claim(const Object& dv) {
  json::value v(dv);
  std::string ns(kube::namespace_of(v)), name(kube::name_of(v));
  const json::object* storage = kube::object_at(v, {"spec", "storage"});
  if (!storage) storage = kube::object_at(v, {"spec", "pvc"});
  json::object spec = storage ? *storage : json::object();
  if (!spec.contains("accessModes")) spec["accessModes"] = json::array{"ReadWriteOnce"};
  if (const auto* snap = kube::object_at(v, {"spec", "source", "snapshot"})) {
    spec["dataSource"] = json::object{{"apiGroup", "snapshot.storage.k8s.io"}, {"kind", "VolumeSnapshot"},
                                      {"name", kube::str_at(*snap, {"name"})}};
  }
  // CDI's own annotations on the claim: a clone (source.pvc) and an import
  // (source.http / source.registry) fill it with the right bytes at binding.
  json::object annotations{{"cdi.kubevirt.io/storage.contentType", "kubevirt"}};
  if (const auto* src = kube::object_at(v, {"spec", "source", "pvc"})) {
    std::string src_ns(kube::str_at(*src, {"namespace"}));
    annotations["k8s.io/CloneRequest"] = (src_ns.empty() ? ns : src_ns) + "/" + std::string(kube::str_at(*src, {"name"}));
  }
  for (const char* kind : {"http", "registry", "s3", "gcs"}) {
    std::string url(kube::str_at(v, {"spec", "source", kind, "url"}));
    if (!url.empty()) annotations["cdi.kubevirt.io/storage.import.endpoint"] = url;
  }
  Object pvc{{"apiVersion", "v1"},
             {"kind", "PersistentVolumeClaim"},
             {"metadata", json::object{{"name", name},
                                       {"namespace", ns},
                                       {"annotations", annotations},
                                       {"labels", json::object{{"app", "containerized-data-importer"},
                                                               {"app.kubernetes.io/component", "storage"},
                                                               {"app.kubernetes.io/managed-by", "cdi-controller"}}},
                                       {"ownerReferences", json::array{dv_owner_ref(dv)}}}},
             {"spec", spec}};
  (void)c_.store().create(c_.resource(kPersistentVolumeClaims), ns, pvc);
}

void Cdi::set_status(const std::string& ns, const std::string& name, const std::string& phase, const std::string& progress,
                     const Object* pvc, const std::string& running_reason) {
  std::string claim_phase = pvc ? std::string(kube::str_at(*pvc, {"status", "phase"})) : std::string();
  (void)c_.store().mutate(c_.resource(res::kDataVolumes), ns, name, [&](Object& o) {
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    json::array conds = st.contains("conditions") && st["conditions"].is_array() ? st["conditions"].as_array() : json::array();
    if (!pvc) put_condition(conds, "Bound", "False", "No PVC found", "NotFound");
    else if (claim_phase == "Bound") put_condition(conds, "Bound", "True", "PVC " + name + " Bound", "Bound");
    else put_condition(conds, "Bound", "False", "PVC " + name + " Pending", "Pending");
    if (phase == "Succeeded") put_condition(conds, "Ready", "True", "", "");
    else if (running_reason == "Pod is running") put_condition(conds, "Ready", "False", "", "TransferRunning");
    else put_condition(conds, "Ready", "False", "", "");
    put_condition(conds, "Running", running_reason == "Pod is running" ? "True" : "False", "", running_reason);
    st["phase"] = phase;
    st["progress"] = progress;
    st["claimName"] = name;
    st["conditions"] = conds;
    o["status"] = st;
  });
}

void Cdi::reconcile(const std::string& ns, const std::string& name) {
  const Object* dv = c_.store().find(c_.resource(res::kDataVolumes), ns, name);
  if (!dv || kube::value_at(*dv, {"metadata", "deletionTimestamp"})) return;
  if (kube::value_at(*dv, {"spec", "source", "upload"})) return;  // CDI upload's own (cdi_upload.h)
  std::string phase(kube::str_at(*dv, {"status", "phase"}));
  if (phase == "Succeeded" || phase == "Failed") return;
  std::string uid(kube::uid_of(*dv));
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, name);
  if (!pvc) {
    Object copy = *dv;
    create_claim(copy);
    return;  // the claim's ADDED event brings us back
  }
  if (!controlled_by(*pvc, uid)) {
    // CDI adopts a claim only when it was populated for this DataVolume
    // (controller-base.go pvcRequiresWork / pvcIsPopulatedForDataVolume).
    if (kube::annotation_of(*pvc, kPopulatedFor) != name) {
      if (phase.empty()) {
        Object copy = *dv;
        c_.record_event(copy, "Warning", "ErrResourceExists",
                        "Resource \"" + name + "\" already exists and is not managed by DataVolume");
        set_status(ns, name, "Pending", "N/A", pvc, "");
      }
      return;
    }
    Object dv_copy = *dv;
    (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, name, [&](Object& o) {
      auto& m = o["metadata"].as_object();
      json::array refs = m.contains("ownerReferences") && m["ownerReferences"].is_array() ? m["ownerReferences"].as_array() : json::array();
      refs.push_back(dv_owner_ref(dv_copy));
      m["ownerReferences"] = refs;
    });
    pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, name);
    set_status(ns, name, "Succeeded", "100.0%", pvc, "");
    return;
  }
  Object dv_copy = *dv;
  Object claim = *pvc;
  const json::object* source = kube::object_at(dv_copy, {"spec", "source"});
  bool clone = source && source->contains("pvc");
  bool from_snapshot = source && source->contains("snapshot");
  if (kube::str_at(claim, {"status", "phase"}) != "Bound") {
    bool wffc = kube::annotation_of(claim, "volume.kubernetes.io/selected-node").empty() && c_.csi().waits_for_consumer(claim);
    std::string want = wffc ? "WaitForFirstConsumer" : "Pending";
    if (phase != want) {
      set_status(ns, name, want, "N/A", &claim, "");
      c_.record_event(dv_copy, "Normal", want == "Pending" ? "Pending" : "WaitForFirstConsumer", "PVC " + name + " Pending");
    }
    return;
  }
  if (from_snapshot) {
    set_status(ns, name, "Succeeded", "100.0%", &claim, "");
    c_.record_event(dv_copy, "Normal", "Bound", "PVC " + name + " Bound");
    return;
  }
  if (clone) {
    std::string src_ns(kube::str_at(*source, {"pvc", "namespace"}));
    if (src_ns.empty()) src_ns = ns;
    std::string src(kube::str_at(*source, {"pvc", "name"}));
    const Object* src_pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), src_ns, src);
    if (!src_pvc || kube::str_at(*src_pvc, {"status", "phase"}) != "Bound") {
      waiting_clones_.insert(key(ns, name));
      if (phase != "CloneScheduled") {
        set_status(ns, name, "CloneScheduled", "N/A", &claim, "");
        c_.record_event(dv_copy, "Normal", "CloneScheduled",
                        "Cloning from " + src_ns + "/" + src + " into " + ns + "/" + name + " scheduled");
      }
      return;
    }
    waiting_clones_.erase(key(ns, name));
    std::string what = "Cloning from " + src_ns + "/" + src + " into " + ns + "/" + name;
    if (phase != "CloneScheduled") {
      set_status(ns, name, "CloneScheduled", "N/A", &claim, "");
      c_.record_event(dv_copy, "Normal", "CloneScheduled", what + " scheduled");
    }
    set_status(ns, name, "CloneInProgress", "0.00%", &claim, "Pod is running");
    c_.record_event(dv_copy, "Normal", "CloneInProgress", what + " in progress");
    // The claim's bytes were cloned when it bound (its k8s.io/CloneRequest annotation).
    set_status(ns, name, "Succeeded", "100.0%", &claim, "Completed");
    c_.record_event(dv_copy, "Normal", "CloneSucceeded", "Successfully cloned from " + src_ns + "/" + src + " into " + ns + "/" + name);
    return;
  }
  set_status(ns, name, "ImportScheduled", "N/A", &claim, "");
  c_.record_event(dv_copy, "Normal", "ImportScheduled", "Import into " + name + " scheduled");
  set_status(ns, name, "ImportInProgress", "0.00%", &claim, "Pod is running");
  c_.record_event(dv_copy, "Normal", "ImportInProgress", "Import into " + name + " in progress");
  set_status(ns, name, "Succeeded", "100.0%", &claim, "Completed");
  c_.record_event(dv_copy, "Normal", "ImportSucceeded", "Successfully imported into PVC " + name);
}

}  // namespace kvb::testcluster
