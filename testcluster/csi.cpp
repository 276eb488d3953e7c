#include "testcluster/csi.h"

#include "kube/object.h"
#include "testcluster/kubevirt.h"
#include "testcluster/qemu_vms.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::testcluster {
namespace json = boost::json;
namespace fs = std::filesystem;
using kube::resources::kPersistentVolumeClaims;
using kube::resources::kPersistentVolumes;
using kube::resources::kStorageClasses;
using kube::resources::kVolumeSnapshotClasses;
using kube::resources::kVolumeSnapshotContents;
using kube::resources::kVolumeSnapshots;

namespace {
std::string vkey(const std::string& ns, const std::string& name) { return ns + "/" + name; }
constexpr const char* kGenerationAnnotation = "testcluster.kvbackup.io/generation";

json::object& ensure_object(json::value& v) {
  if (!v.is_object()) v.emplace_object();
  return v.as_object();
}
}  // namespace

int64_t parse_quantity(const std::string& q) {
  size_t i = 0;
  while (i < q.size() && (std::isdigit(static_cast<unsigned char>(q[i])) || q[i] == '.')) ++i;
  double n = std::atof(q.substr(0, i).c_str());
  std::string unit = q.substr(i);
  static const std::pair<const char*, double> kUnits[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12}, {"", 1.0}};
  for (const auto& [u, m] : kUnits) {
    if (unit == u) return static_cast<int64_t>(n * m);
  }
  return static_cast<int64_t>(n);
}

Csi::Csi(Cluster& c) : c_(c), bytes_(std::make_unique<VolumeStore>(c.options().state_dir)) {}

Csi::~Csi() { bytes_->clear(); }

Status Csi::create_claim(const std::string& ns, const std::string& name, const std::string& size,
                         const std::string& storage_class) {
  json::object spec{{"accessModes", json::array{"ReadWriteOnce"}},
                    {"volumeMode", "Block"},
                    {"resources", json::object{{"requests", json::object{{"storage", size}}}}}};
  if (!storage_class.empty()) spec["storageClassName"] = storage_class;
  Object pvc{{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"},
             {"metadata", json::object{{"name", name}, {"namespace", ns}}}, {"spec", spec}};
  auto r = c_.store().create(c_.resource(kPersistentVolumeClaims), ns, pvc);
  if (!r && r.error().code != Errc::kAlreadyExists) return r.error();
  return ok();
}

void Csi::attach(const std::string& ns, const std::string& claim, const Guest* g) {
  VolumeData& v = volumes_[vkey(ns, claim)];
  v.vm = g->vm;
  v.writer = g->vm;
  if (g->qemu && !g->pvcs.empty() && g->pvcs.front() == claim) v.real_guest = true;  // for good: ext4 lives there now
  v.attach_ms = g->active_ms();
}

void Csi::detach(const std::string& ns, const std::string& claim) {
  auto it = volumes_.find(vkey(ns, claim));
  if (it == volumes_.end()) return;
  it->second.base = generation(ns, claim);
  it->second.vm.clear();
  (void)sync_bytes(ns, claim);
}

int64_t Csi::generation(const std::string& ns, const std::string& claim) const {
  auto it = volumes_.find(vkey(ns, claim));
  if (it == volumes_.end()) return 0;
  const VolumeData& v = it->second;
  if (v.vm.empty()) return v.base;
  const Guest* g = c_.kubevirt().guest(ns, v.vm);
  return g ? v.base + (g->active_ms() - v.attach_ms) : v.base;
}

Status Csi::sync_bytes(const std::string& ns, const std::string& claim) {
  auto it = volumes_.find(vkey(ns, claim));
  if (it == volumes_.end() || !bytes_->has_claim(ns, claim)) return ok();
  if (it->second.real_guest) {
    bytes_->claim_written(ns, claim);  // a real guest writes it: no model bytes, no cached hash
    return ok();
  }
  std::string writer = it->second.vm.empty() ? it->second.writer : it->second.vm;
  return bytes_->write_generation(ns, claim, writer, generation(ns, claim));
}

Status Csi::create_bytes(const std::string& ns, const std::string& name, const json::value& pvc, int64_t size,
                         VolumeData& data) {
  if (!data.restored_snapshot.empty()) {
    const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, data.restored_snapshot);
    std::string content = snap ? std::string(kube::str_at(*snap, {"status", "boundVolumeSnapshotContentName"})) : "";
    const Object* vsc = content.empty() ? nullptr : c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
    std::string handle = vsc ? std::string(kube::str_at(*vsc, {"status", "snapshotHandle"})) : "";
    if (vsc && handle.empty()) handle = std::string(kube::str_at(*vsc, {"spec", "source", "snapshotHandle"}));
    return bytes_->restore_claim(ns, name, handle, size, data.base);
  }
  std::string clone(kube::annotation_of(pvc, "k8s.io/CloneRequest"));
  if (auto slash = clone.find('/'); slash != std::string::npos) {
    std::string src_ns = clone.substr(0, slash), src = clone.substr(slash + 1);
    KVB_CHECK(sync_bytes(src_ns, src));
    data.base = generation(src_ns, src);
    return bytes_->clone_claim(ns, name, src_ns, src, size, data.base);
  }
  KVB_CHECK(bytes_->create_claim(ns, name, size, 0));
  std::string import(kube::annotation_of(pvc, "cdi.kubevirt.io/storage.import.endpoint"));
  if (!import.empty()) return bytes_->write_import(ns, name, import);
  return ok();
}

void Csi::on_change(const StoreEvent& e) {
  const auto& ref = e.resource->ref;
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (ref.resource == "persistentvolumeclaims") {
    if (e.type == "DELETED" || kube::str_at(obj, {"status", "phase"}) == "Bound") unbound_.erase(vkey(ns, name));
    else unbound_.insert(vkey(ns, name));
    if (e.type == "ADDED") bind_claim(ns, name);
    // A consumer was chosen for a claim of a WaitForFirstConsumer class.
    if (e.type == "MODIFIED" && kube::str_at(obj, {"status", "phase"}) != "Bound" &&
        !kube::annotation_of(obj, "volume.kubernetes.io/selected-node").empty() &&
        kube::annotation_of(e.old, "volume.kubernetes.io/selected-node").empty()) {
      bind_claim(ns, name);
    }
    if (e.type == "DELETED") {
      volumes_.erase(vkey(ns, name));
      bytes_->remove_claim(ns, name);
      std::string pv(kube::str_at(obj, {"spec", "volumeName"}));
      if (!pv.empty()) {  // the PV controller: Released, then deleted (policy Delete); pv-protection lets it go
        (void)c_.store().mutate(c_.resource(kPersistentVolumes), "", pv, [](Object& o) { o["status"] = json::object{{"phase", "Released"}}; });
        (void)c_.store().remove(c_.resource(kPersistentVolumes), "", pv);
      }
    }
    if (e.type != "ADDED") recheck_deleting_snapshots(ns);
  } else if (ref.resource == "volumesnapshotcontents" && e.type == "MODIFIED" &&
             kube::value_at(obj, {"metadata", "deletionTimestamp"})) {
    content_deleting(name);
  } else if (ref.resource == "volumesnapshotcontents" && e.type == "DELETED") {
    if (kube::str_at(obj, {"spec", "deletionPolicy"}) == "Delete") {
      handles_.erase(std::string(kube::str_at(obj, {"status", "snapshotHandle"})));  // the storage deletes its snapshot
    }
    content_gone(e.object);
  } else if (ref.resource == "volumesnapshotcontents" && e.type == "ADDED" &&
             !kube::str_at(obj, {"spec", "source", "snapshotHandle"}).empty()) {
    provision_static_content(name);
  } else if (ref.resource == "volumesnapshots") {
    if (e.type == "ADDED") start_snapshot(ns, name);
    if (e.type == "MODIFIED" && kube::bool_at(obj, {"status", "readyToUse"}).value_or(false) &&
        !kube::bool_at(e.old, {"status", "readyToUse"}).value_or(false)) {
      retry_pending_claims(ns);
    }
    if (e.type == "MODIFIED" && kube::value_at(obj, {"metadata", "deletionTimestamp"})) snapshot_deleting(ns, name);
    if (e.type == "DELETED") {
      for (auto& t : timers_[vkey(ns, name)]) t->cancel();
      timers_.erase(vkey(ns, name));
      if (auto gc = guest_cuts_.find(vkey(ns, name)); gc != guest_cuts_.end()) {
        // A copy not yet handed to the store goes with the snapshot (a job still
        // writing it keeps its open file); a checked one is the store's now.
        std::error_code ec;
        if (gc->second.state != "Checked") std::filesystem::remove(gc->second.file, ec);
        guest_cuts_.erase(gc);
      }
      backoff_.erase(vkey(ns, name));
      deleting_.erase(vkey(ns, name));
      std::string content(kube::str_at(obj, {"status", "boundVolumeSnapshotContentName"}));
      const Object* vsc = content.empty() ? nullptr : c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
      if (vsc && kube::str_at(*vsc, {"spec", "deletionPolicy"}) == "Delete") {
        (void)c_.store().remove(c_.resource(kVolumeSnapshotContents), "", content);
      }
    }
  } else if (ref.resource == "storageclasses" && e.type == "ADDED") {
    for (const auto& nsinfo : c_.store().all(c_.resource(kube::resources::kNamespaces))) {
      retry_pending_claims(std::string(kube::name_of(*nsinfo)));
    }
  }
}

std::string Csi::driver_of_claim(const Object& pvc) const {
  std::string sc(kube::str_at(pvc, {"spec", "storageClassName"}));
  const Object* cls = sc.empty() ? nullptr : c_.store().find(c_.resource(kStorageClasses), "", sc);
  return cls ? std::string(kube::str_at(*cls, {"provisioner"})) : std::string();
}

void Csi::retry_pending_claims(const std::string& ns) {
  // unbound_ holds every claim not Bound whose event was seen; one whose
  // ADDED event is still queued is bound when that event is handled.
  std::vector<std::string> pending;
  std::string prefix = vkey(ns, "");
  for (auto it = unbound_.lower_bound(prefix); it != unbound_.end() && it->compare(0, prefix.size(), prefix) == 0; ++it) {
    pending.emplace_back(it->substr(prefix.size()));
  }
  for (const auto& p : pending) bind_claim(ns, p);
}

void Csi::bind_claim(const std::string& ns, const std::string& name) {
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, name);
  if (!pvc) return;
  json::value v(*pvc);
  if (kube::str_at(v, {"status", "phase"}) == "Bound") return;
  std::string sc(kube::str_at(v, {"spec", "storageClassName"}));
  if (sc.empty()) {
    // The default storage class, as the admission plugin would set it.
    for (const Object* cls : c_.store().all(c_.resource(kStorageClasses))) {
      if (kube::annotation_of(*cls, "storageclass.kubernetes.io/is-default-class") == "true") {
        sc = std::string(kube::name_of(*cls));
      }
    }
  }
  const Object* cls = sc.empty() ? nullptr : c_.store().find(c_.resource(kStorageClasses), "", sc);
  auto pending = [&](const std::string& reason, const std::string& msg) {
    (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, name, [&](Object& o) {
      o["status"] = json::object{{"phase", "Pending"}};
    });
    c_.record_event(*pvc, "Warning", reason, msg);
  };
  if (!cls) return pending("ProvisioningFailed", "storageclass.storage.k8s.io \"" + sc + "\" not found");
  if (kube::str_at(*cls, {"volumeBindingMode"}) == "WaitForFirstConsumer" &&
      kube::annotation_of(v, "volume.kubernetes.io/selected-node").empty()) {
    // kube-controller-manager's PV controller leaves such claims to the scheduler.
    (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, name, [&](Object& o) {
      o["status"] = json::object{{"phase", "Pending"}};
    });
    c_.record_event(*pvc, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding");
    return;
  }
  std::string size(kube::str_at(v, {"spec", "resources", "requests", "storage"}));
  VolumeData data;
  // dataSourceRef alone (the API server mirrors it into dataSource when it can) restores alike.
  const char* source_field = kube::object_at(v, {"spec", "dataSource"}) ? "dataSource" : "dataSourceRef";
  if (kube::str_at(v, {"spec", source_field, "kind"}) == "VolumeSnapshot" &&
      kube::str_at(v, {"spec", source_field, "apiGroup"}) == "snapshot.storage.k8s.io") {
    std::string snap_name(kube::str_at(v, {"spec", source_field, "name"}));
    const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, snap_name);
    if (!snap) return pending("ProvisioningFailed", "volumesnapshot \"" + snap_name + "\" not found");
    if (const Fault* f = c_.faults().restore_pending(ns, name)) {
      return pending("ProvisioningFailed", f->message.empty() ? "the CSI driver failed to restore volumesnapshot \"" + snap_name + "\"" : f->message);
    }
    json::value sv(*snap);
    if (!kube::bool_at(sv, {"status", "readyToUse"}).value_or(false)) {
      return pending("Provisioning", "waiting for volumesnapshot \"" + snap_name + "\" to be ready to use");
    }
    std::string restore_size(kube::str_at(sv, {"status", "restoreSize"}));
    if (parse_quantity(size) < parse_quantity(restore_size)) {
      return pending("ProvisioningFailed", "requested PVC size " + size + " is smaller than the snapshot's restoreSize " + restore_size);
    }
    // external-provisioner: a restore may not change the volume mode unless the
    // content carries snapshot.storage.kubernetes.io/allow-volume-mode-change=true.
    std::string content_name(kube::str_at(sv, {"status", "boundVolumeSnapshotContentName"}));
    if (const Object* vsc = content_name.empty() ? nullptr : c_.store().find(c_.resource(kVolumeSnapshotContents), "", content_name)) {
      std::string source_mode(kube::str_at(*vsc, {"spec", "sourceVolumeMode"}));
      std::string mode(kube::str_at(v, {"spec", "volumeMode"}));
      if (mode.empty()) mode = "Filesystem";
      if (!source_mode.empty() && source_mode != mode &&
          kube::annotation_of(*vsc, "snapshot.storage.kubernetes.io/allow-volume-mode-change") != "true") {
        return pending("ProvisioningFailed",
                       "failed to provision volume with StorageClass \"" + sc + "\": error getting handle for DataSource Type "
                       "VolumeSnapshot by Name " + snap_name + ": requested volume " + ns + "/" + name +
                       " modifies the mode of the source volume but does not have permission to do so. "
                       "snapshot.storage.kubernetes.io/allow-volume-mode-change annotation is not present on snapshotcontent " +
                       content_name);
      }
    }
    data.base = std::atoll(std::string(kube::annotation_of(sv, kGenerationAnnotation)).c_str());
    data.restored_from = data.base;
    data.restored_snapshot = snap_name;
  }
  if (Status b = create_bytes(ns, name, v, parse_quantity(size), data); !b) {
    return pending("ProvisioningFailed", "cannot provision the volume's bytes: " + b.error().message);
  }
  std::string pv_name = "pvc-" + std::string(kube::uid_of(v));
  Object pv{{"apiVersion", "v1"},
            {"kind", "PersistentVolume"},
            {"metadata", json::object{{"name", pv_name}}},
            {"spec", json::object{{"capacity", json::object{{"storage", size}}},
                                  {"accessModes", json::array{"ReadWriteOnce"}},
                                  {"persistentVolumeReclaimPolicy", "Delete"},
                                  {"storageClassName", sc},
                                  {"csi", json::object{{"driver", kube::str_at(*cls, {"provisioner"})},
                                                       {"volumeHandle", pv_name}}},
                                  {"claimRef", json::object{{"namespace", ns}, {"name", name}, {"uid", kube::uid_of(v)}}}}},
            {"status", json::object{{"phase", "Bound"}}}};
  (void)c_.store().create(c_.resource(kPersistentVolumes), "", pv);
  // A guest may have attached before the claim was bound (a DataVolume's claim
  // is created after the VM started): keep the attachment.
  VolumeData& slot = volumes_[vkey(ns, name)];
  data.vm = slot.vm;
  data.attach_ms = slot.attach_ms;
  data.writer = slot.writer;
  data.real_guest = slot.real_guest;
  slot = data;
  (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, name, [&](Object& o) {
    o["spec"].as_object()["volumeName"] = pv_name;
    o["spec"].as_object()["storageClassName"] = sc;
    if (data.restored_from >= 0) {
      ensure_object(o["metadata"].as_object()["annotations"])[kGenerationAnnotation] = std::to_string(data.base);
    }
    o["status"] = json::object{{"phase", "Bound"},
                               {"accessModes", json::array{"ReadWriteOnce"}},
                               {"capacity", json::object{{"storage", size}}}};
  });
}

const Object* Csi::find_snapshot_class(const std::string& explicit_name, const std::string& driver) const {
  if (!explicit_name.empty()) return c_.store().find(c_.resource(kVolumeSnapshotClasses), "", explicit_name);
  for (const Object* o : c_.store().all(c_.resource(kVolumeSnapshotClasses))) {
    json::value v(*o);
    if (kube::str_at(v, {"driver"}) == driver &&
        kube::annotation_of(v, "snapshot.storage.kubernetes.io/is-default-class") == "true") {
      return o;
    }
  }
  return nullptr;
}

std::string Csi::vm_using_claim(const std::string& ns, const std::string& claim) const {
  auto it = volumes_.find(vkey(ns, claim));
  if (it != volumes_.end() && !it->second.vm.empty()) return it->second.vm;
  for (const Object* vm : c_.store().all(c_.resource(res::kVirtualMachines), ns)) {
    json::value v(*vm);
    if (const auto* vols = kube::array_at(v, {"spec", "template", "spec", "volumes"})) {
      for (const auto& vol : *vols) {
        if (kube::str_at(vol, {"dataVolume", "name"}) == claim || kube::str_at(vol, {"persistentVolumeClaim", "claimName"}) == claim) {
          return std::string(kube::name_of(v));
        }
      }
    }
  }
  return {};
}

void Csi::snapshot_error(const std::string& ns, const std::string& name, const std::string& message) {
  (void)c_.store().mutate(c_.resource(kVolumeSnapshots), ns, name, [&](Object& o) {
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    st["readyToUse"] = false;
    st["error"] = json::object{{"message", message}, {"time", format_rfc3339(WallClock::now())}};
    o["status"] = st;
  });
}

void Csi::start_snapshot(const std::string& ns, const std::string& name) {
  const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, name);
  if (!snap) return;
  json::value sv(*snap);
  if (kube::value_at(sv, {"metadata", "deletionTimestamp"})) return;
  if (auto content = kube::str_at(sv, {"spec", "source", "volumeSnapshotContentName"}); !content.empty()) {
    return bind_static_snapshot(ns, name, std::string(content));
  }
  // The snapshot controller retries a snapshot it cannot start yet (claim
  // missing or not bound, no class), with the sidecar's backoff.
  auto snapshot_error = [this, ns, name](const std::string& ns_, const std::string& name_, const std::string& message) {
    Csi::snapshot_error(ns_, name_, message);
    Duration& next = backoff_[vkey(ns, name)];
    if (next == Duration(0)) next = std::chrono::seconds(1);
    Duration delay = next;
    next = std::min<Duration>(next * 2, std::chrono::minutes(5));
    timers_[vkey(ns, name)].push_back(c_.loop().after(delay, [this, ns, name] {
      const Object* s = c_.store().find(c_.resource(kVolumeSnapshots), ns, name);
      if (s && kube::str_at(*s, {"status", "boundVolumeSnapshotContentName"}).empty()) start_snapshot(ns, name);
    }));
  };
  std::string claim(kube::str_at(sv, {"spec", "source", "persistentVolumeClaimName"}));
  if (claim.empty()) return snapshot_error(ns, name, "spec.source.persistentVolumeClaimName is required");
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
  if (!pvc) {
    return snapshot_error(ns, name, "failed to get input parameters to create snapshot " + name +
                                        ": \"persistentvolumeclaims \\\"" + claim + "\\\" not found\"");
  }
  if (kube::str_at(*pvc, {"status", "phase"}) != "Bound") {
    return snapshot_error(ns, name, "the source PVC " + claim + " is not Bound");
  }
  std::string driver = driver_of_claim(*pvc);
  std::string class_name(kube::str_at(sv, {"spec", "volumeSnapshotClassName"}));
  const Object* cls = find_snapshot_class(class_name, driver);
  if (!cls) {
    return snapshot_error(ns, name, class_name.empty() ? "cannot find default snapshot class for driver " + driver
                                                       : "volumesnapshotclass \"" + class_name + "\" not found");
  }
  json::value cv(*cls);
  if (kube::str_at(cv, {"driver"}) != driver) {
    return snapshot_error(ns, name, "snapshot class " + std::string(kube::name_of(cv)) + " is for driver " +
                                        std::string(kube::str_at(cv, {"driver"})) + ", the claim's driver is " + driver);
  }
  std::string content = "snapcontent-" + std::string(kube::uid_of(sv));
  Object vsc{{"apiVersion", "snapshot.storage.k8s.io/v1"},
             {"kind", "VolumeSnapshotContent"},
             {"metadata", json::object{{"name", content}}},
             {"spec", json::object{{"deletionPolicy", kube::str_at(cv, {"deletionPolicy"})},
                                   {"driver", driver},
                                   {"volumeSnapshotClassName", kube::name_of(cv)},
                                   {"source", json::object{{"volumeHandle", kube::str_at(*pvc, {"spec", "volumeName"})}}},
                                   {"sourceVolumeMode", kube::str_at(*pvc, {"spec", "volumeMode"}).empty()
                                                            ? std::string("Filesystem")
                                                            : std::string(kube::str_at(*pvc, {"spec", "volumeMode"}))},
                                   {"volumeSnapshotRef", json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                                                                      {"kind", "VolumeSnapshot"},
                                                                      {"name", name},
                                                                      {"namespace", ns},
                                                                      {"uid", kube::uid_of(sv)}}}}}};
  vsc["metadata"].as_object()["finalizers"] = json::array{kContentFinalizer};
  (void)c_.store().create(c_.resource(kVolumeSnapshotContents), "", vsc);
  std::string resolved_class(kube::name_of(cv));
  bool delete_policy = kube::str_at(cv, {"deletionPolicy"}) == "Delete";
  (void)c_.store().mutate(c_.resource(kVolumeSnapshots), ns, name, [&](Object& o) {
    o["spec"].as_object()["volumeSnapshotClassName"] = resolved_class;
    o["status"] = json::object{{"boundVolumeSnapshotContentName", content}, {"readyToUse", false}};
  });
  backoff_.erase(vkey(ns, name));
  std::vector<std::string> finalizers{kSnapshotAsSourceFinalizer};
  if (delete_policy) finalizers.emplace_back(kSnapshotBoundFinalizer);
  add_finalizers(c_.resource(kVolumeSnapshots), ns, name, finalizers);
  cutting_.insert(content);
  // Class latencies are in the scenario; classes created through the API get defaults.
  Duration cut_latency = std::chrono::milliseconds(200), ready_latency = std::chrono::seconds(1);
  for (const auto& sc : c_.scenario().snapshot_classes) {
    if (sc.name == resolved_class) {
      cut_latency = sc.cut_latency;
      ready_latency = sc.ready_latency;
    }
  }
  std::string vm = vm_using_claim(ns, claim);
  if (const Guest* g = vm.empty() ? nullptr : c_.kubevirt().guest(ns, vm); g && g->frozen) {
    const auto& events = c_.timeline().events();  // the guest's last freeze: its latest frozen event
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->frozen && it->volume_snapshot.empty() && it->vm == vm && it->ns == ns) {
        cut_stats_.frozen_to_create.record(WallClock::now() - it->time);
        break;
      }
    }
  }
  if (auto extra = c_.faults().snapshot_cut_delay(ns, vm, claim)) cut_latency += *extra;
  auto due = std::chrono::steady_clock::now() + cut_latency;
  timers_[vkey(ns, name)].push_back(c_.loop().after(cut_latency, [this, ns, name, content, claim, vm, ready_latency, due] {
    auto fired = std::chrono::steady_clock::now();
    cut_stats_.lateness.record(fired - due);
    cut(ns, name, content, claim, vm, ready_latency);
    cut_stats_.total.record(std::chrono::steady_clock::now() - fired);
  }));
}

void Csi::cut(const std::string& ns, const std::string& name, const std::string& content, const std::string& claim,
              const std::string& vm, Duration ready_latency) {
  auto now = WallClock::now();
  if (const Fault* f = c_.faults().snapshot_failure(ns, vm, claim)) {
    std::string msg = f->message.empty() ? "Failed to create snapshot: rpc error: code = Internal desc = simulated CSI failure"
                                         : f->message;
    const Object* snap = c_.store().find(c_.resource(kVolumeSnapshots), ns, name);
    bool first = !snap || !kube::value_at(*snap, {"status", "error"});
    (void)c_.store().mutate(c_.resource(kVolumeSnapshotContents), "", content, [&](Object& o) {
      json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
      st["readyToUse"] = false;
      st["error"] = json::object{{"message", msg}, {"time", format_rfc3339(now)}};
      o["status"] = st;
    });
    snapshot_error(ns, name, msg);
    if (first) c_.timeline().record(TimelineEvent{now, "SnapshotFailed", ns, vm, name, claim, false, msg});
    cutting_.erase(content);  // CreateSnapshot returned: no longer being created
    if (const Object* vsc = c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
        vsc && kube::value_at(*vsc, {"metadata", "deletionTimestamp"})) {
      return content_deleting(content);
    }
    return retry_cut(ns, name, content, claim, vm, ready_latency);
  }
  backoff_.erase(vkey(ns, name));
  const Guest* g = vm.empty() ? nullptr : c_.kubevirt().guest(ns, vm);
  bool frozen = g && g->frozen;
  int64_t gen = generation(ns, claim);
  int64_t cut_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  // A running real guest's disk is copied by QEMU (cut_guest_disk), not here.
  const bool real = g && g->qemu && !g->pvcs.empty() && g->pvcs.front() == claim;
  if (!real) {
    auto t0 = std::chrono::steady_clock::now();
    Status copied = sync_bytes(ns, claim);
    if (copied) copied = bytes_->cut(ns, claim, "snap-" + content);
    cut_stats_.file_work.record(std::chrono::steady_clock::now() - t0);
    if (!copied) {
      snapshot_error(ns, name, "Failed to create snapshot: rpc error: code = Internal desc = " + copied.error().message);
      cutting_.erase(content);
      return retry_cut(ns, name, content, claim, vm, ready_latency);
    }
  }
  (void)c_.store().mutate(c_.resource(kVolumeSnapshotContents), "", content, [&](Object& o) {
    o["status"] = json::object{{"creationTime", cut_ns}, {"readyToUse", false}, {"snapshotHandle", "snap-" + content}};
  });
  (void)c_.store().mutate(c_.resource(kVolumeSnapshots), ns, name, [&](Object& o) {
    ensure_object(o["metadata"].as_object()["annotations"])[kGenerationAnnotation] = std::to_string(gen);
    ensure_object(o["status"]).erase("error");  // a retry that worked clears the error
    o["status"].as_object()["creationTime"] = format_rfc3339(now);
  });
  c_.timeline().record(TimelineEvent{now, "SnapshotCut", ns, vm, name, claim, frozen, "generation=" + std::to_string(gen)});
  // A content deleted while its snapshot was being created goes once the cut is done.
  cutting_.erase(content);
  if (const Object* vsc = c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
      vsc && kube::value_at(*vsc, {"metadata", "deletionTimestamp"})) {
    handles_["snap-" + content] = StorageSnapshot{gen, "0", cut_ns};
    return content_deleting(content);
  }
  auto ready = [this, ns, name, content, claim, vm, gen, cut_ns] {
    if (!c_.store().find(c_.resource(kVolumeSnapshotContents), "", content)) return;  // deleted meanwhile
    const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
    std::string size = pvc ? std::string(kube::str_at(*pvc, {"spec", "resources", "requests", "storage"})) : "0";
    handles_["snap-" + content] = StorageSnapshot{gen, size, cut_ns};
    (void)c_.store().mutate(c_.resource(kVolumeSnapshotContents), "", content, [&](Object& o) {
      o["status"].as_object()["readyToUse"] = true;
      o["status"].as_object()["restoreSize"] = parse_quantity(size);
    });
    (void)c_.store().mutate(c_.resource(kVolumeSnapshots), ns, name, [&](Object& o) {
      o["status"].as_object()["readyToUse"] = true;
      o["status"].as_object()["restoreSize"] = size;
    });
    c_.timeline().record(TimelineEvent{WallClock::now(), "SnapshotReady", ns, vm, name, claim, false, ""});
  };
  auto ready_later = [this, ns, name, ready_latency, ready] {
    timers_[vkey(ns, name)].push_back(c_.loop().after(ready_latency, ready));
  };
  if (real) return cut_guest_disk(ns, name, content, claim, vm, frozen, ready_later);
  ready_later();
}

void Csi::provision_static_content(const std::string& name) {
  const Object* vsc = c_.store().find(c_.resource(kVolumeSnapshotContents), "", name);
  if (!vsc) return;
  std::string handle(kube::str_at(*vsc, {"spec", "source", "snapshotHandle"}));
  auto it = handles_.find(handle);
  (void)c_.store().mutate(c_.resource(kVolumeSnapshotContents), "", name, [&](Object& o) {
    if (it == handles_.end()) {
      o["status"] = json::object{{"readyToUse", false},
                                 {"error", json::object{{"message", "rpc error: code = NotFound desc = snapshot " + handle +
                                                                        " not found"}}}};
      return;
    }
    o["status"] = json::object{{"creationTime", it->second.cut_ns},
                               {"readyToUse", true},
                               {"snapshotHandle", handle},
                               {"restoreSize", parse_quantity(it->second.size)}};
  });
}

void Csi::bind_static_snapshot(const std::string& ns, const std::string& name, const std::string& content) {
  const Object* vsc = c_.store().find(c_.resource(kVolumeSnapshotContents), "", content);
  if (!vsc) return snapshot_error(ns, name, "volumesnapshotcontent \"" + content + "\" not found");
  json::value cv(*vsc);
  if (kube::str_at(cv, {"spec", "volumeSnapshotRef", "name"}) != name ||
      kube::str_at(cv, {"spec", "volumeSnapshotRef", "namespace"}) != ns) {
    return snapshot_error(ns, name, "VolumeSnapshotContent " + content + " is bound to another VolumeSnapshot");
  }
  auto it = handles_.find(std::string(kube::str_at(cv, {"spec", "source", "snapshotHandle"})));
  if (it == handles_.end()) return snapshot_error(ns, name, "the storage snapshot of " + content + " does not exist");
  StorageSnapshot s = it->second;
  std::vector<std::string> finalizers{kSnapshotAsSourceFinalizer};
  if (kube::str_at(cv, {"spec", "deletionPolicy"}) == "Delete") finalizers.emplace_back(kSnapshotBoundFinalizer);
  add_finalizers(c_.resource(kVolumeSnapshots), ns, name, finalizers);
  (void)c_.store().mutate(c_.resource(kVolumeSnapshots), ns, name, [&](Object& o) {
    ensure_object(o["metadata"].as_object()["annotations"])[kGenerationAnnotation] = std::to_string(s.generation);
    auto cut = WallTime(std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(s.cut_ns)));
    o["status"] = json::object{{"boundVolumeSnapshotContentName", content},
                               {"creationTime", format_rfc3339(cut)},
                               {"readyToUse", true},
                               {"restoreSize", s.size}};
  });
}

}  // namespace kvb::testcluster
