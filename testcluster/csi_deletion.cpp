// The CSI simulator's external-snapshotter behaviour beyond the happy path:
// finalizers and deletion, retries of failed cuts, and the small storage
// helpers CDI uses (clone, WaitForFirstConsumer). See csi.h.
#include "kube/object.h"
#include "testcluster/csi.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPersistentVolumeClaims;
using kube::resources::kStorageClasses;
using kube::resources::kVolumeSnapshotContents;
using kube::resources::kVolumeSnapshots;

namespace {
std::string vkey(const std::string& ns, const std::string& name) { return ns + "/" + name; }
bool being_deleted(const Object* o) { return o && kube::value_at(*o, {"metadata", "deletionTimestamp"}); }
}  // namespace

bool Csi::waits_for_consumer(const Object& pvc) const {
  std::string sc(kube::str_at(pvc, {"spec", "storageClassName"}));
  if (sc.empty()) {
    for (const Object* cls : c_.store().all(c_.resource(kStorageClasses))) {
      if (kube::annotation_of(*cls, "storageclass.kubernetes.io/is-default-class") == "true") sc = std::string(kube::name_of(*cls));
    }
  }
  const Object* cls = sc.empty() ? nullptr : c_.store().find(c_.resource(kStorageClasses), "", sc);
  return cls && kube::str_at(*cls, {"volumeBindingMode"}) == "WaitForFirstConsumer";
}

void Csi::add_finalizers(const ResourceInfo& r, const std::string& ns, const std::string& name, const std::vector<std::string>& fs) {
  (void)c_.store().mutate(r, ns, name, [&](Object& o) {
    auto& m = o["metadata"].as_object();
    json::array cur = m.contains("finalizers") && m["finalizers"].is_array() ? m["finalizers"].as_array() : json::array();
    for (const auto& f : fs) {
      if (std::find(cur.begin(), cur.end(), json::value(f)) == cur.end()) cur.push_back(json::value(f));
    }
    m["finalizers"] = cur;
  });
}

void Csi::remove_finalizer(const ResourceInfo& r, const std::string& ns, const std::string& name, const std::string& finalizer) {
  const Object* o = c_.store().find(r, ns, name);
  const auto* fs = o ? kube::array_at(*o, {"metadata", "finalizers"}) : nullptr;
  if (!fs || std::find(fs->begin(), fs->end(), json::value(finalizer)) == fs->end()) return;
  (void)c_.store().mutate(r, ns, name, [&](Object& obj) {
    json::array kept;
    for (const auto& f : obj["metadata"].as_object()["finalizers"].as_array()) {
      if (f != json::value(finalizer)) kept.push_back(f);
    }
    obj["metadata"].as_object()["finalizers"] = kept;
  });
}

// external-snapshotter isVolumeBeingCreatedFromSnapshot: a Pending claim in the
// namespace whose data source is this snapshot.
bool Csi::restoring_from(const std::string& ns, const std::string& snapshot) const {
  for (const Object* pvc : c_.store().all(c_.resource(kPersistentVolumeClaims), ns)) {
    if (kube::str_at(*pvc, {"status", "phase"}) == "Bound") continue;
    for (const char* f : {"dataSource", "dataSourceRef"}) {
      if (kube::str_at(*pvc, {"spec", f, "kind"}) == "VolumeSnapshot" && kube::str_at(*pvc, {"spec", f, "name"}) == snapshot &&
          kube::str_at(*pvc, {"spec", f, "apiGroup"}) == "snapshot.storage.k8s.io") {
        return true;
      }
    }
  }
  return false;
}

// external-snapshotter checkandRemoveSnapshotFinalizersAndCheckandDeleteContent.
void Csi::snapshot_deleting(const std::string& ns, const std::string& name) {
  const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, name);
  if (!being_deleted(snap)) return;
  bool first = deleting_.insert(vkey(ns, name)).second;
  std::string content(kube::str_at(*snap, {"status", "boundVolumeSnapshotContentName"}));
  const Object* vsc = content.empty() ? nullptr : c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
  if (vsc && restoring_from(ns, name)) {
    if (first) {
      Object copy = *snap;
      c_.record_event(copy, "Warning", "SnapshotDeletePending", "Snapshot is being used to restore a PVC");
    }
    return;
  }
  bool delete_content = vsc && kube::str_at(*vsc, {"spec", "deletionPolicy"}) == "Delete";
  if (delete_content && !being_deleted(vsc)) {
    (void)c_.store().mutate(c_.resource(kVolumeSnapshotContents), "", content, [](Object& o) {
      auto& m = o["metadata"].as_object();
      if (!m.contains("annotations") || !m["annotations"].is_object()) m["annotations"] = json::object();
      m["annotations"].as_object()["snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"] = "yes";
    });
    (void)c_.store().remove(c_.resource(kVolumeSnapshotContents), "", content);
  }
  remove_finalizer(c_.resource(kVolumeSnapshots), ns, name, kSnapshotAsSourceFinalizer);
  // The bound finalizer stays until the content is gone (content_gone).
  if (!delete_content || !c_.store().find(c_.resource(kVolumeSnapshotContents), "", content)) {
    remove_finalizer(c_.resource(kVolumeSnapshots), ns, name, kSnapshotBoundFinalizer);
  }
}

void Csi::recheck_deleting_snapshots(const std::string& ns) {
  std::vector<std::string> names;
  std::string prefix = ns + "/";
  for (const auto& k : deleting_) {
    if (k.compare(0, prefix.size(), prefix) == 0) names.push_back(k.substr(prefix.size()));
  }
  for (const auto& n : names) snapshot_deleting(ns, n);
}

// The sidecar deletes the storage snapshot, then drops the content's
// finalizer; not while the snapshot is still being created.
void Csi::content_deleting(const std::string& name) {
  const Object* vsc = c_.store().find(c_.resource(kVolumeSnapshotContents), "", name);
  if (!being_deleted(vsc) || cutting_.count(name)) return;
  if (kube::str_at(*vsc, {"spec", "deletionPolicy"}) == "Delete") {
    std::string handle(kube::str_at(*vsc, {"status", "snapshotHandle"}));
    handles_.erase(handle);
    handles_.erase("snap-" + name);
    bytes_->remove_snapshot(handle);  // the storage deletes its snapshot
    bytes_->remove_snapshot("snap-" + name);
  }
  remove_finalizer(c_.resource(kVolumeSnapshotContents), "", name, kContentFinalizer);
}

void Csi::content_gone(const Object& content) {
  std::string ns(kube::str_at(content, {"spec", "volumeSnapshotRef", "namespace"}));
  std::string snap(kube::str_at(content, {"spec", "volumeSnapshotRef", "name"}));
  const Object* s = snap.empty() ? nullptr : c_.store().find(c_.resource(kVolumeSnapshots), ns, snap);
  if (being_deleted(s) && kube::str_at(*s, {"status", "boundVolumeSnapshotContentName"}) == kube::name_of(content)) {
    remove_finalizer(c_.resource(kVolumeSnapshots), ns, snap, kSnapshotBoundFinalizer);
  }
}

// The snapshotter retries a failed CreateSnapshot with exponential backoff
// (--retry-interval-start 1s, --retry-interval-max 5m).
void Csi::retry_cut(const std::string& ns, const std::string& name, const std::string& content, const std::string& claim,
                    const std::string& vm, Duration ready_latency) {
  Duration& next = backoff_[vkey(ns, name)];
  if (next == Duration(0)) next = std::chrono::seconds(1);
  Duration delay = next;
  next = std::min<Duration>(next * 2, std::chrono::minutes(5));
  timers_[vkey(ns, name)].push_back(c_.loop().after(delay, [this, ns, name, content, claim, vm, ready_latency] {
    const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, name);
    if (!snap || being_deleted(snap)) return;
    cutting_.insert(content);
    cut(ns, name, content, claim, vm, ready_latency);
  }));
}

}  // namespace kvb::testcluster
