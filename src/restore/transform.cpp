#include "restore/transform.h"

#include "kube/object.h"

#include <boost/json.hpp>

#include <cmath>

namespace kvb::restore {
namespace json = boost::json;

std::optional<int64_t> quantity_bytes(const std::string& q) {
  size_t i = 0;
  while (i < q.size() && (std::isdigit(static_cast<unsigned char>(q[i])) || q[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double n = std::strtod(q.substr(0, i).c_str(), nullptr);
  static const std::map<std::string, double> suffixes = {
      {"", 1},      {"k", 1e3},          {"M", 1e6},          {"G", 1e9},          {"T", 1e12},          {"P", 1e15},
      {"Ki", 1024}, {"Mi", 1024.0 * 1024}, {"Gi", std::pow(1024.0, 3)}, {"Ti", std::pow(1024.0, 4)}, {"Pi", std::pow(1024.0, 5)}};
  auto it = suffixes.find(q.substr(i));
  if (it == suffixes.end()) return std::nullopt;
  return static_cast<int64_t>(std::ceil(n * it->second));
}

std::string larger_quantity(const std::string& a, const std::string& b) {
  auto qa = quantity_bytes(a), qb = quantity_bytes(b);
  if (!qa) return b;
  if (!qb) return a;
  return *qb > *qa ? b : a;
}

json::object restored_claim(const json::object& saved_pvc, const ClaimSpec& c) {
  json::array modes{"ReadWriteOnce"};
  if (const auto* m = kube::array_at(saved_pvc, {"spec", "accessModes"}); m && !m->empty()) modes = *m;
  json::object spec{{"accessModes", modes},
                    {"resources", json::object{{"requests", json::object{{"storage", c.size}}}}},
                    {"dataSource", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                {"kind", "VolumeSnapshot"},
                                                {"name", c.snapshot}}}};
  if (!c.storage_class.empty()) spec["storageClassName"] = c.storage_class;
  if (auto vm = kube::str_at(saved_pvc, {"spec", "volumeMode"}); !vm.empty()) spec["volumeMode"] = vm;
  json::object labels;
  if (const auto* l = kube::object_at(saved_pvc, {"metadata", "labels"})) labels = *l;
  labels[kRestoreLabel] = c.restore;
  return json::object{{"apiVersion", "v1"},
                      {"kind", "PersistentVolumeClaim"},
                      {"metadata", json::object{{"name", c.name}, {"namespace", c.ns}, {"labels", labels}}},
                      {"spec", spec}};
}

std::string run_strategy_of(const json::object& vm) {
  if (auto rs = kube::str_at(vm, {"spec", "runStrategy"}); !rs.empty()) return std::string(rs);
  auto running = kube::bool_at(vm, {"spec", "running"});
  return running.value_or(false) ? "Always" : "Halted";
}

json::object restored_vm(const json::object& saved_vm, const VmRewrite& w) {
  json::object vm = saved_vm;
  json::object& meta = vm["metadata"].is_object() ? vm["metadata"].as_object() : vm["metadata"].emplace_object();
  for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
                        "ownerReferences", "finalizers", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
    meta.erase(k);
  }
  meta["name"] = w.name;
  meta["namespace"] = w.ns;
  json::object& labels = meta["labels"].is_object() ? meta["labels"].as_object() : meta["labels"].emplace_object();
  labels[kRestoreLabel] = w.restore;
  json::object& ann = meta["annotations"].is_object() ? meta["annotations"].as_object() : meta["annotations"].emplace_object();
  ann.erase("kubectl.kubernetes.io/last-applied-configuration");
  ann[kRestoredFromAnnotation] = w.restored_from;
  vm.erase("status");

  json::object& spec = vm["spec"].is_object() ? vm["spec"].as_object() : vm["spec"].emplace_object();
  spec.erase("dataVolumeTemplates");  // the claims exist already, restored from snapshots
  if (w.run_strategy != "keep") {
    spec.erase("running");
    spec["runStrategy"] = w.run_strategy;
  }
  auto* tspec = spec.if_contains("template") && spec["template"].is_object()
                    ? spec["template"].as_object().if_contains("spec")
                    : nullptr;
  if (!tspec || !tspec->is_object()) return vm;
  json::object& ts = tspec->as_object();
  if (auto* vols = ts.if_contains("volumes"); vols && vols->is_array()) {
    for (auto& v : vols->as_array()) {
      if (!v.is_object()) continue;
      auto& vo = v.as_object();
      auto it = w.claim_for_volume.find(std::string(kube::str_at(vo, {"name"})));
      if (it == w.claim_for_volume.end()) continue;
      json::object pvc{{"claimName", it->second}};
      for (const char* src : {"persistentVolumeClaim", "dataVolume"}) {
        if (const auto* old = vo.if_contains(src); old && old->is_object()) {
          if (const auto* h = old->as_object().if_contains("hotpluggable")) pvc["hotpluggable"] = *h;
          if (const auto* ro = old->as_object().if_contains("readOnly")) pvc["readOnly"] = *ro;
        }
        vo.erase(src);
      }
      vo["persistentVolumeClaim"] = pvc;
    }
  }
  if (w.isolate) {
    ts.erase("networks");
    if (auto* domain = ts.if_contains("domain"); domain && domain->is_object()) {
      if (auto* dev = domain->as_object().if_contains("devices"); dev && dev->is_object()) {
        dev->as_object().erase("interfaces");
        dev->as_object()["autoattachPodInterface"] = false;
      }
    }
  }
  if (w.strip_identity) {
    if (auto* domain = ts.if_contains("domain"); domain && domain->is_object()) {
      auto& d = domain->as_object();
      if (auto* fw = d.if_contains("firmware"); fw && fw->is_object()) fw->as_object().erase("uuid");
      if (auto* dev = d.if_contains("devices"); dev && dev->is_object()) {
        if (auto* ifs = dev->as_object().if_contains("interfaces"); ifs && ifs->is_array()) {
          for (auto& i : ifs->as_array()) {
            if (i.is_object()) i.as_object().erase("macAddress");
          }
        }
      }
    }
  }
  return vm;
}

json::object restored_config(const json::object& saved, const std::string& ns) {
  json::object o = saved;
  if (auto* m = o.if_contains("metadata"); m && m->is_object()) {
    auto& meta = m->as_object();
    for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "managedFields", "ownerReferences", "finalizers"}) {
      meta.erase(k);
    }
    meta["namespace"] = ns;
  }
  return o;
}

bool same_config(const json::object& a, const json::object& b) {
  for (const char* k : {"type", "data", "stringData", "binaryData"}) {
    const json::value* x = a.if_contains(k);
    const json::value* y = b.if_contains(k);
    if ((x == nullptr) != (y == nullptr)) return false;
    if (x && *x != *y) return false;
  }
  return true;
}

json::object imported_content(const std::string& name, const std::string& driver, const std::string& snapshot_class,
                              const std::string& handle, const std::string& ns, const std::string& snapshot,
                              const std::string& restore) {
  json::object spec{{"deletionPolicy", "Retain"},  // the backup's own snapshot still owns the storage
                    {"driver", driver},
                    {"source", json::object{{"snapshotHandle", handle}}},
                    {"volumeSnapshotRef", json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                                                       {"kind", "VolumeSnapshot"},
                                                       {"namespace", ns},
                                                       {"name", snapshot}}}};
  if (!snapshot_class.empty()) spec["volumeSnapshotClassName"] = snapshot_class;
  return json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                      {"kind", "VolumeSnapshotContent"},
                      {"metadata", json::object{{"name", name}, {"labels", json::object{{kRestoreLabel, restore}}}}},
                      {"spec", spec}};
}

json::object imported_snapshot(const std::string& ns, const std::string& name, const std::string& content,
                               const std::string& snapshot_class, const std::string& restore) {
  json::object spec{{"source", json::object{{"volumeSnapshotContentName", content}}}};
  if (!snapshot_class.empty()) spec["volumeSnapshotClassName"] = snapshot_class;
  return json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                      {"kind", "VolumeSnapshot"},
                      {"metadata", json::object{{"name", name}, {"namespace", ns}, {"labels", json::object{{kRestoreLabel, restore}}}}},
                      {"spec", spec}};
}

}  // namespace kvb::restore
