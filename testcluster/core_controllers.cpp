#include "testcluster/core_controllers.h"

#include "common/time.h"
#include "kube/object.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

bool is(const ResourceInfo& r, std::string_view group, std::string_view resource) {
  return r.ref.group == group && r.ref.resource == resource;
}

json::object& obj_at(Object& o, const char* key) {
  auto& v = o[key];
  if (!v.is_object()) v = json::object();
  return v.as_object();
}

// A stable 64-hex-digit digest of a text (FNV-1a, four lanes): image and container IDs.
std::string hex64(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint64_t lane = 0; lane < 4; ++lane) {
    uint64_t h = 1469598103934665603ULL ^ (lane * 0x9e3779b97f4a7c15ULL);
    for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
    for (int i = 15; i >= 0; --i) out += kHex[(h >> (i * 4)) & 0xf];
  }
  return out;
}

// docker.io/library/busybox:1.36 -> docker.io/library/busybox@sha256:<digest>, as containerd reports it.
std::string image_id(const std::string& image) {
  std::string repo = image;
  if (auto at = repo.find('@'); at != std::string::npos) return repo;
  auto slash = repo.rfind('/');
  auto colon = repo.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) repo = repo.substr(0, colon);
  if (repo.find('/') == std::string::npos) repo = "docker.io/library/" + repo;
  else if (repo.substr(0, repo.find('/')).find('.') == std::string::npos) repo = "docker.io/" + repo;
  return repo + "@sha256:" + hex64(image);
}

json::object condition(const char* type, bool status, const std::string& now, const char* reason = nullptr) {
  json::object c{{"type", type}, {"status", status ? "True" : "False"}, {"lastProbeTime", nullptr}, {"lastTransitionTime", now}};
  if (reason) c["reason"] = reason;
  return c;
}

}  // namespace

CoreControllers::CoreControllers(Cluster& c) : c_(c) {}

Status CoreControllers::populate() {
  const ResourceInfo& nodes = c_.resource(res::kNodes);
  int i = 0;
  for (const char* name : {"node01", "node02"}) {
    std::string ip = "192.168.66." + std::to_string(101 + i++);
    Object node{{"metadata", json::object{{"name", name},
                                          {"labels", json::object{{"kubernetes.io/hostname", name},
                                                                  {"kubernetes.io/os", "linux"},
                                                                  {"kubernetes.io/arch", "amd64"},
                                                                  {"kubevirt.io/schedulable", "true"}}}}},
                {"spec", json::object{{"podCIDR", "10.244." + std::to_string(i - 1) + ".0/24"}}},
                {"status", json::object{{"addresses", json::array{json::object{{"type", "InternalIP"}, {"address", ip}},
                                                                  json::object{{"type", "Hostname"}, {"address", name}}}},
                                        {"conditions", json::array{json::object{{"type", "Ready"},
                                                                                {"status", "True"},
                                                                                {"reason", "KubeletReady"},
                                                                                {"message", "kubelet is posting ready status"}}}},
                                        {"nodeInfo", json::object{{"kubeletVersion", "v" + c_.scenario().kubernetes_version},
                                                                  {"containerRuntimeVersion", "containerd://1.7.22"},
                                                                  {"osImage", "Debian GNU/Linux 12 (bookworm)"},
                                                                  {"architecture", "amd64"},
                                                                  {"operatingSystem", "linux"}}}}}};
    auto r = c_.store().create(nodes, "", std::move(node));
    if (!r && r.error().code != Errc::kAlreadyExists) return r.error();
  }
  return ok();
}

void CoreControllers::apply_defaults(const ResourceInfo& r, Object& obj, const Object* old) {
  if (r.ref.group.empty() && (r.ref.resource == "persistentvolumeclaims" || r.ref.resource == "persistentvolumes")) {
    // SetDefaults_PersistentVolumeClaimSpec / SetDefaults_PersistentVolumeSpec (pkg/apis/core/v1/defaults.go).
    auto& spec = obj_at(obj, "spec");
    if (!spec.contains("volumeMode")) spec["volumeMode"] = "Filesystem";
    if (r.ref.resource == "persistentvolumeclaims" && !old) {
      auto& st = obj_at(obj, "status");
      if (!st.contains("phase")) st["phase"] = "Pending";
      protect_claim(obj);
    }
    // The StorageObjectInUseProtection admission plugin protects PersistentVolumes too.
    if (r.ref.resource == "persistentvolumes" && !old) add_finalizer(obj, kPvProtection);
  } else if (is(r, "", "namespaces")) {
    // SetDefaults_Namespace labels every namespace with its name; the strategy
    // adds the kubernetes finalizer and the Active phase on create.
    auto& m = obj_at(obj, "metadata");
    std::string name(kube::str_at(m, {"name"}));
    auto& labels = m["labels"];
    if (!labels.is_object()) labels = json::object();
    labels.as_object()["kubernetes.io/metadata.name"] = name;
    if (!old) {
      auto& spec = obj_at(obj, "spec");
      if (!spec.contains("finalizers")) spec["finalizers"] = json::array{"kubernetes"};
      auto& st = obj_at(obj, "status");
      if (!st.contains("phase")) st["phase"] = "Active";
    }
  } else if (is(r, "", "pods")) {
    default_pod(obj, old);
  }
}

void CoreControllers::default_pod(Object& pod, const Object* old) {
  std::string now = format_rfc3339(WallClock::now());
  auto& spec = obj_at(pod, "spec");
  // API defaults and the scheduler's choice.
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("serviceAccountName")) spec["serviceAccountName"] = "default";
  // A pod a controller left Pending without a node (unbound claims) is not scheduled: no node, no IP.
  const bool unscheduled = !spec.contains("nodeName") && kube::str_at(pod, {"status", "phase"}) == "Pending";
  if (!unscheduled && !spec.contains("nodeName")) spec["nodeName"] = "node01";
  std::string node(kube::str_at(spec, {"nodeName"}));
  json::array containers;
  if (auto* c = spec.if_contains("containers"); c && c->is_array()) containers = c->as_array();

  // What the kubelet reports.
  auto& st = obj_at(pod, "status");
  if (!st.contains("phase")) st["phase"] = "Running";
  std::string phase(kube::str_at(st, {"phase"}));
  bool running = phase == "Running";
  if (!st.contains("hostIP")) {
    std::string host = node == "node02" ? "192.168.66.102" : "192.168.66.101";
    st["hostIP"] = host;
    st["hostIPs"] = json::array{json::object{{"ip", host}}};
  }
  if (!unscheduled && !st.contains("podIP") && phase != "Succeeded" && phase != "Failed") {
    std::string ip;
    if (old) ip = std::string(kube::str_at(*old, {"status", "podIP"}));
    if (ip.empty()) {
      uint32_t n = ++next_ip_;
      ip = "10.244." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 2);
    }
    st["podIP"] = ip;
    st["podIPs"] = json::array{json::object{{"ip", ip}}};
  }
  if (!st.contains("startTime")) st["startTime"] = now;
  if (!st.contains("qosClass")) st["qosClass"] = "BestEffort";
  json::array statuses;
  if (auto* cs = st.if_contains("containerStatuses"); cs && cs->is_array()) statuses = cs->as_array();
  std::string uid(kube::str_at(pod, {"metadata", "uid"}));
  for (const auto& c : containers) {
    std::string name(kube::str_at(c, {"name"}));
    bool have = false;
    for (const auto& s : statuses) have = have || kube::str_at(s, {"name"}) == name;
    if (have) continue;
    json::object state;
    if (running) state["running"] = json::object{{"startedAt", now}};
    else if (phase == "Succeeded") state["terminated"] = json::object{{"exitCode", 0}, {"reason", "Completed"}, {"startedAt", now}, {"finishedAt", now}};
    else if (phase == "Failed") state["terminated"] = json::object{{"exitCode", 1}, {"reason", "Error"}, {"startedAt", now}, {"finishedAt", now}};
    else state["waiting"] = json::object{{"reason", "ContainerCreating"}};
    statuses.push_back(json::object{{"name", name},
                                    {"image", kube::str_at(c, {"image"})},
                                    {"ready", running},
                                    {"started", running},
                                    {"restartCount", 0},
                                    {"state", state}});
  }
  for (auto& s : statuses) {
    auto& so = s.as_object();
    std::string image(kube::str_at(so, {"image"}));
    if (image.empty()) so["image"] = image = "docker.io/library/busybox:latest";
    if (!so.contains("imageID")) so["imageID"] = image_id(image);
    if (!so.contains("containerID")) so["containerID"] = "containerd://" + hex64(uid + "/" + std::string(kube::str_at(so, {"name"})));
    if (!so.contains("restartCount")) so["restartCount"] = 0;
    if (!so.contains("ready")) so["ready"] = running;
  }
  if (!statuses.empty() || st.contains("containerStatuses")) st["containerStatuses"] = statuses;
  // The standard conditions, rewritten when the phase changes.
  std::string old_phase = old ? std::string(kube::str_at(*old, {"status", "phase"})) : "";
  if (!st.contains("conditions") || (old && old_phase != phase)) {
    bool done = phase == "Succeeded" || phase == "Failed";
    const char* why = done ? "PodCompleted" : running ? nullptr : "ContainersNotReady";
    st["conditions"] = json::array{condition("PodReadyToStartContainers", !done, now), condition("Initialized", true, now, done ? "PodCompleted" : nullptr),
                                   condition("Ready", running, now, why), condition("ContainersReady", running, now, why),
                                   condition("PodScheduled", true, now)};
  }
}

void CoreControllers::on_change(const StoreEvent& e) {
  const ResourceInfo& r = *e.resource;
  pvc_protection(e);
  if (is(r, "apiextensions.k8s.io", "customresourcedefinitions")) return crd_changed(e);
  if (e.type == "DELETED" && !custom_.empty()) custom_resource_deleted(r);
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (is(r, "", "namespaces")) {
    if (e.type == "ADDED") {
      // The serviceaccount controller.
      (void)c_.store().create(c_.resource(res::kServiceAccounts), name,
                              Object{{"metadata", json::object{{"name", "default"}, {"namespace", name}}}});
    }
    if (e.type != "DELETED" && kube::value_at(e.object, {"metadata", "deletionTimestamp"})) namespace_terminating(name);
    return;
  }
  if (r.ref.namespaced && e.type == "DELETED") {
    const Object* nso = c_.store().find(c_.resource(kube::resources::kNamespaces), "", ns);
    if (nso && kube::value_at(*nso, {"metadata", "deletionTimestamp"})) namespace_terminating(ns);
  }
  if (is(r, "kubevirt.io", "virtualmachineinstances") || (is(r, "kubevirt.io", "virtualmachines") && e.type != "DELETED")) {
    mirror_vm_status(ns, name);
  } else if (is(r, "", "pods") && e.type != "DELETED" && kube::label_of(obj, "kubevirt.io") == "virt-launcher") {
    vmi_ip_from_pod(e.object);
  }
}

void CoreControllers::namespace_terminating(const std::string& ns) {
  Store& store = c_.store();
  size_t left = 0;
  for (const auto& info : store.registry().all()) {
    if (!info.ref.namespaced) continue;
    std::vector<std::pair<std::string, bool>> names;
    for (const Object* o : store.all(info, ns)) {
      names.emplace_back(std::string(kube::str_at(*o, {"metadata", "name"})),
                         kube::value_at(*o, {"metadata", "deletionTimestamp"}) != nullptr);
    }
    for (const auto& [n, marked] : names) {
      if (!marked) (void)store.remove(info, ns, n);
    }
    left += store.all(info, ns).size();
  }
  if (left > 0) return;
  // Empty: the namespace controller removes the kubernetes finalizer (namespaces/{name}/finalize).
  (void)store.mutate(c_.resource(kube::resources::kNamespaces), "", ns,
                     [](Object& o) { obj_at(o, "spec")["finalizers"] = json::array{}; });
}

void CoreControllers::mirror_vm_status(const std::string& ns, const std::string& name) {
  Store& store = c_.store();
  const ResourceInfo& vms = c_.resource(res::kVirtualMachines);
  const Object* vm = store.find(vms, ns, name);
  if (!vm) return;
  const Object* vmi = store.find(c_.resource(res::kVirtualMachineInstances), ns, name);
  std::string now = format_rfc3339(WallClock::now());
  // volumeSnapshotStatuses (pkg/storage/snapshot: getVolumeSnapshotStatus).
  json::array snap_statuses;
  if (const auto* vols = kube::array_at(*vm, {"spec", "template", "spec", "volumes"})) {
    for (const auto& vol : *vols) {
      std::string vname(kube::str_at(vol, {"name"}));
      std::string claim(kube::str_at(vol, {"persistentVolumeClaim", "claimName"}));
      if (claim.empty()) claim = std::string(kube::str_at(vol, {"dataVolume", "name"}));
      if (claim.empty()) {
        snap_statuses.push_back(json::object{{"name", vname}, {"enabled", false},
                                             {"reason", "Snapshot is not supported for this volumeSource type [" + vname + "]"}});
        continue;
      }
      std::string sc;
      if (const Object* pvc = store.find(c_.resource(kube::resources::kPersistentVolumeClaims), ns, claim)) {
        sc = std::string(kube::str_at(*pvc, {"spec", "storageClassName"}));
      }
      std::string driver;
      for (const Object* s : store.all(c_.resource(kube::resources::kStorageClasses))) {
        if (kube::str_at(*s, {"metadata", "name"}) == sc) driver = std::string(kube::str_at(*s, {"provisioner"}));
      }
      int matching = 0, defaults = 0;
      for (const Object* vsc : store.all(c_.resource(kube::resources::kVolumeSnapshotClasses))) {
        if (driver.empty() || kube::str_at(*vsc, {"driver"}) != driver) continue;
        ++matching;
        if (kube::annotation_of(*vsc, "snapshot.storage.kubernetes.io/is-default-class") == "true") ++defaults;
      }
      json::object s{{"name", vname}, {"enabled", matching == 1 || defaults == 1}};
      if (matching == 0) {
        s["reason"] = "No VolumeSnapshotClass: Volume snapshots are not configured for this StorageClass [" + sc + "] [" + vname + "]";
      } else if (matching > 1 && defaults != 1) {
        s["reason"] = std::to_string(matching) + " matching VolumeSnapshotClasses for " + sc;
      }
      snap_statuses.push_back(s);
    }
  }
  json::array vmi_conds;
  if (vmi) {
    if (const auto* c = kube::array_at(*vmi, {"status", "conditions"})) vmi_conds = *c;
  }
  (void)store.mutate(vms, ns, name, [&](Object& o) {
    auto& st = obj_at(o, "status");
    json::array conds;
    if (auto* c = st.if_contains("conditions"); c && c->is_array()) conds = c->as_array();
    auto set = [&](const json::object& c) {
      for (auto& old : conds) {
        if (kube::str_at(old, {"type"}) != kube::str_at(c, {"type"})) continue;
        json::object next = c;
        // Keep the transition time while the status holds (the condition manager's UpdateCondition).
        if (kube::str_at(old, {"status"}) == kube::str_at(c, {"status"}) && old.as_object().contains("lastTransitionTime")) {
          next["lastTransitionTime"] = old.at("lastTransitionTime");
        }
        old = next;
        return;
      }
      conds.push_back(c);
    };
    // Ready: from the VMI, else VMINotExists / VMIConditionMissing (syncReadyConditionFromVMI).
    const json::value* ready = nullptr;
    for (const auto& c : vmi_conds) {
      if (kube::str_at(c, {"type"}) == "Ready") ready = &c;
    }
    if (!vmi) {
      set(json::object{{"type", "Ready"}, {"status", "False"}, {"reason", "VMINotExists"}, {"message", "VMI does not exist"},
                       {"lastProbeTime", nullptr}, {"lastTransitionTime", now}});
    } else if (!ready) {
      set(json::object{{"type", "Ready"}, {"status", "False"}, {"reason", "VMIConditionMissing"},
                       {"message", "VMI is missing the Ready condition"}, {"lastProbeTime", nullptr}, {"lastTransitionTime", now}});
    } else {
      set(ready->as_object());
    }
    // Every other VMI condition is copied; those the VMI no longer has are removed
    // (except the VM's own: Ready, Failure, RestartRequired and the lifecycle ones).
    std::set<std::string> from_vmi;
    for (const auto& c : vmi_conds) {
      std::string type(kube::str_at(c, {"type"}));
      if (type == "Ready" || type == "Failure" || type == "RestartRequired") continue;
      from_vmi.insert(type);
      set(c.as_object());
    }
    static const std::set<std::string> kVmiTypes{"Paused", "AgentConnected", "LiveMigratable", "StorageLiveMigratable",
                                                 "AgentVersionNotSupported", "UnsupportedGuestAgent", "DataVolumesReady",
                                                 "Synchronized", "ProvisioningCondition", "PodScheduled", "Migrating"};
    json::array kept;
    for (const auto& c : conds) {
      std::string type(kube::str_at(c, {"type"}));
      if (kVmiTypes.count(type) && !from_vmi.count(type)) continue;
      kept.push_back(c);
    }
    st["conditions"] = kept;
    int64_t gen = kube::int_at(o, {"metadata", "generation"}).value_or(1);
    st["desiredGeneration"] = gen;
    st["observedGeneration"] = gen;
    st["volumeSnapshotStatuses"] = snap_statuses;
  });
}

void CoreControllers::vmi_ip_from_pod(const Object& pod) {
  std::string ip(kube::str_at(pod, {"status", "podIP"}));
  std::string vmi_name(kube::annotation_of(pod, "kubevirt.io/domain"));
  if (ip.empty() || vmi_name.empty()) return;
  std::string ns(kube::str_at(pod, {"metadata", "namespace"}));
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi_name);
  if (!vmi || kube::uid_of(*vmi) != kube::label_of(pod, "kubevirt.io/created-by")) return;
  (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, vmi_name, [&](Object& o) {
    auto& st = obj_at(o, "status");
    json::array ifaces;
    if (auto* i = st.if_contains("interfaces"); i && i->is_array()) ifaces = i->as_array();
    if (ifaces.empty()) ifaces.push_back(json::object{{"name", "default"}});
    auto& first = ifaces[0].as_object();
    first["ipAddress"] = ip;
    first["ipAddresses"] = json::array{ip};
    st["interfaces"] = ifaces;
  });
}

}  // namespace kvb::testcluster
