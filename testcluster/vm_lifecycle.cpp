// KubeVirt's virt-controller as the test cluster simulates it: the VM
// controller (DataVolumes from templates, a VMI once they are ready, restarts
// by runStrategy, printableStatus in upstream's order of precedence) and the
// VMI controller (volumes ready -> launcher pod -> scheduled once every claim
// is bound -> Running; a missing claim -> Synchronized=False
// FailedPvcNotFound; a deleted launcher pod -> Failed). Sources:
// kubevirt/kubevirt pkg/virt-controller/watch/vm/vm.go (handleDataVolumes,
// setPrintableStatus), pkg/virt-controller/watch/vmi/{lifecycle,datavolumes}.go,
// pkg/storage/types/{pvc,dv}.go; docs/testcluster.md.
#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPersistentVolumeClaims;
using kube::resources::kPods;

namespace {

constexpr const char* kNode = "node01";
constexpr std::chrono::milliseconds kRestartDelay{500};
constexpr const char* kUnboundMessage =
    "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: "
    "1 Preemption is not helpful for scheduling.";

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

const json::object* find_condition(const Object& o, std::string_view type) {
  if (const auto* conds = kube::array_at(o, {"status", "conditions"})) {
    for (const auto& c : *conds) {
      if (kube::str_at(c, {"type"}) == type && c.is_object()) return &c.as_object();
    }
  }
  return nullptr;
}

bool has_condition(const Object* o, std::string_view type, std::string_view status, std::string_view reason = {}) {
  const json::object* c = o ? find_condition(*o, type) : nullptr;
  return c && kube::str_at(*c, {"status"}) == status && (reason.empty() || kube::str_at(*c, {"reason"}) == reason);
}

// Replaces (or adds) one condition; the transition time moves only when the status does.
void set_condition(json::object& status, const std::string& type, const std::string& value, const std::string& reason,
                   const std::string& message) {
  json::array conds = status.contains("conditions") && status["conditions"].is_array() ? status["conditions"].as_array() : json::array();
  std::string now = format_rfc3339(WallClock::now());
  json::object c{{"type", type}, {"status", value}, {"lastProbeTime", nullptr}, {"lastTransitionTime", now}};
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  json::array out;
  for (auto& old : conds) {
    if (kube::str_at(old, {"type"}) != type) {
      out.push_back(old);
      continue;
    }
    if (kube::str_at(old, {"status"}) == value) c["lastTransitionTime"] = old.at("lastTransitionTime");
  }
  out.push_back(c);
  status["conditions"] = out;
}

void drop_condition(json::object& status, std::string_view type) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  json::array out;
  for (auto& c : status["conditions"].as_array()) {
    if (kube::str_at(c, {"type"}) != type) out.push_back(c);
  }
  status["conditions"] = out;
}

// The claim a VMI volume stands for (non-hotplug PVC and DataVolume volumes).
std::string claim_of(const json::value& vol) {
  std::string claim(kube::str_at(vol, {"dataVolume", "name"}));
  if (claim.empty()) claim = std::string(kube::str_at(vol, {"persistentVolumeClaim", "claimName"}));
  return claim;
}
bool hotplug(const json::value& vol) {
  return kube::bool_at(vol, {"persistentVolumeClaim", "hotpluggable"}).value_or(false) ||
         kube::bool_at(vol, {"dataVolume", "hotpluggable"}).value_or(false);
}

std::string controller_kind(const Object& o, std::string* name = nullptr) {
  if (const auto* refs = kube::array_at(o, {"metadata", "ownerReferences"})) {
    for (const auto& r : *refs) {
      if (!kube::bool_at(r, {"controller"}).value_or(false)) continue;
      if (name) *name = std::string(kube::str_at(r, {"name"}));
      return std::string(kube::str_at(r, {"kind"}));
    }
  }
  return {};
}

}  // namespace

void KubeVirt::on_change(const StoreEvent& e) {
  const auto& ref = e.resource->ref;
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (ref.resource == "virtualmachines" && ref.group == "kubevirt.io") {
    if (e.type == "DELETED") {
      // The VMI goes with the VM only through its ownerReference (garbage
      // collection): --cascade=orphan keeps it running.
      specs_.erase(key(ns, name));
      waiting_vms_.erase(key(ns, name));
    } else {
      reconcile_vm(ns, name);
    }
  } else if (ref.resource == "virtualmachineinstances" && ref.group == "kubevirt.io") {
    if (e.type == "ADDED") {
      pending_vmis_.insert(key(ns, name));
      sync_vmi(ns, name);
    } else if (e.type == "DELETED") {
      pending_vmis_.erase(key(ns, name));
      if (Guest* g = guest(ns, name); g && g->vmi_uid == kube::uid_of(obj)) stop_vmi(ns, name, "VMI deleted");
      std::string owner;
      if (controller_kind(e.object, &owner) == "VirtualMachine") reconcile_vm(ns, owner);
    }
  } else if (ref.resource == "pods" && ref.group.empty() && e.type == "DELETED") {
    std::string vmi_name;
    if (kube::label_of(obj, "kubevirt.io") == "virt-launcher" && controller_kind(e.object, &vmi_name) == "VirtualMachineInstance") {
      launcher_pod_gone(ns, name, vmi_name, std::string(kube::label_of(obj, "kubevirt.io/created-by")));
    }
  } else if ((ref.resource == "persistentvolumeclaims" && ref.group.empty()) ||
             (ref.resource == "datavolumes" && ref.group == "cdi.kubevirt.io" && e.type != "ADDED")) {
    volumes_changed(ns);
  }
}

void KubeVirt::volumes_changed(const std::string& ns) {
  std::string prefix = ns + "/";
  std::vector<std::string> vmis, vms;
  for (const auto& k : pending_vmis_) {
    if (k.compare(0, prefix.size(), prefix) == 0) vmis.push_back(k.substr(prefix.size()));
  }
  for (const auto& k : waiting_vms_) {
    if (k.compare(0, prefix.size(), prefix) == 0) vms.push_back(k.substr(prefix.size()));
  }
  for (const auto& n : vmis) sync_vmi(ns, n);
  for (const auto& n : vms) reconcile_vm(ns, n);
}

// vm.go handleDataVolumes: creates missing DataVolumes; ready when each is
// Succeeded, WaitForFirstConsumer or PendingPopulation.
bool KubeVirt::ensure_datavolumes(const Object& vm) {
  std::string ns(kube::namespace_of(vm));
  bool ready = true;
  const auto* dvts = kube::array_at(vm, {"spec", "dataVolumeTemplates"});
  if (!dvts) return true;
  json::array templates = *dvts;
  Object owner = vm;
  for (const auto& t : templates) {
    std::string dv_name(kube::str_at(t, {"metadata", "name"}));
    const Object* dv = c_.store().find(c_.resource(res::kDataVolumes), ns, dv_name);
    if (!dv) {
      ready = false;
      json::object meta{{"name", dv_name}, {"namespace", ns}, {"ownerReferences", json::array{controller_ref(owner)}}};
      if (const auto* l = kube::object_at(t, {"metadata", "labels"})) meta["labels"] = *l;
      if (const auto* a = kube::object_at(t, {"metadata", "annotations"})) meta["annotations"] = *a;
      Object created{{"apiVersion", "cdi.kubevirt.io/v1beta1"},
                     {"kind", "DataVolume"},
                     {"metadata", meta},
                     {"spec", t.as_object().contains("spec") ? t.at("spec") : json::object()}};
      if (c_.store().create(c_.resource(res::kDataVolumes), ns, created)) {
        c_.record_event(owner, "Normal", "SuccessfulDataVolumeCreate", "Created DataVolume " + dv_name);
      }
      continue;
    }
    std::string phase(kube::str_at(*dv, {"status", "phase"}));
    if (phase != "Succeeded" && phase != "WaitForFirstConsumer" && phase != "PendingPopulation") ready = false;
  }
  return ready;
}

// vm.go syncRunStrategy, with the status.stateChangeRequests that virt-api's
// start/stop/restart write (vm_subresources.cpp): a Stop for the current VMI
// stops it (Always then starts a new one); a leading Start starts one (Manual,
// RerunOnFailure; Halted turns into Always first). A Stop whose VMI is gone and
// a Start whose VMI was created are removed.
void KubeVirt::reconcile_vm(const std::string& ns, const std::string& name) {
  const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);
  if (!vm || kube::value_at(*vm, {"metadata", "deletionTimestamp"})) return;
  std::string strategy = run_strategy(*vm);
  std::string last_strategy(kube::str_at(*vm, {"status", "runStrategy"}));  // what the last sync saw
  bool dvs_ready = ensure_datavolumes(*vm);
  vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);  // creating DataVolumes may move it
  if (!vm) return;
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  std::string vmi_uid = vmi ? std::string(kube::uid_of(*vmi)) : std::string();
  auto changes = state_changes(*vm);
  const size_t had = changes.size();
  while (!changes.empty() && changes.front().action == "Stop" && changes.front().uid != vmi_uid) changes.erase(changes.begin());
  if (changes.size() != had) {
    (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
      set_state_changes(o, changes);
    });
    return;  // the MODIFIED event brings us back
  }
  bool stop_request = !changes.empty() && changes.front().action == "Stop";
  bool start_request = !changes.empty() && changes.front().action == "Start";
  if (vmi) {
    std::string phase(kube::str_at(*vmi, {"status", "phase"}));
    bool failed = phase == "Failed", succeeded = phase == "Succeeded";
    bool stop = strategy == "Halted" || stop_request;
    bool restart = (strategy == "Always" && (failed || succeeded)) || (strategy == "RerunOnFailure" && failed);
    if (strategy == "RerunOnFailure" && succeeded) stop = true;
    // virt-controller notices a final VMI and replaces it a moment later
    // (not within the write that made it fail, so clients can see it Failed).
    if (auto it = restart_at_.find(key(ns, name)); restart && it != restart_at_.end()) {
      if (std::chrono::steady_clock::now() < it->second) restart = false;
      else restart_at_.erase(it);
    }
    if (restart && strategy == "RerunOnFailure") {
      // vm.go: a failed VMI is stopped and a start request queued for the next one.
      changes.insert(changes.begin(), StateChange{"Start", "", false});
      (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
        set_state_changes(o, changes);
      });
    }
    if (stop || restart) {
      // The VMI's DELETED event brings us back to start a new one.
      if (guest(ns, name)) stop_vmi(ns, name, strategy == "Always" || restart ? "VM restarting" : "VM stopped");
      else (void)c_.store().remove(c_.resource(res::kVirtualMachineInstances), ns, name);
    }
  } else if (strategy == "Halted" && start_request) {
    // A paused start of a Halted VM: the controller turns it into Always.
    bool legacy = !kube::value_at(*vm, {"spec", "runStrategy"});
    (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
      auto& spec = o["spec"].as_object();
      if (legacy) spec["running"] = true;
      else spec["runStrategy"] = "Always";
    });
    return;
  } else if (dvs_ready) {
    bool start = strategy == "Always" || strategy == "Once" || (strategy == "Manual" && start_request) ||
                 (strategy == "RerunOnFailure" && (start_request || last_strategy != strategy));
    if (start) {
      if (start_request && changes.front().start_paused) start_paused_.insert(key(ns, name));
      Object copy = *vm;
      auto created = c_.store().create(c_.resource(res::kVirtualMachineInstances), ns, make_vmi(copy, name));
      if (created && start_request) {
        changes.erase(changes.begin());
        (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
          set_state_changes(o, changes);
        });
      }
    }
  }
  // "Waiting on DataVolumes to be ready": back here when they change (the
  // status of a stopped VM follows them too).
  if (dvs_ready) waiting_vms_.erase(key(ns, name));
  else waiting_vms_.insert(key(ns, name));
  update_vm_status(ns, name);
}

// The VMI controller: volumes -> pod -> scheduled -> running; then the
// owning VM's status follows.
void KubeVirt::sync_vmi(const std::string& ns, const std::string& name) {
  sync_vmi_volumes(ns, name);
  std::string owner;
  if (const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
      vmi && controller_kind(*vmi, &owner) == "VirtualMachine") {
    update_vm_status(ns, owner);
  }
}

void KubeVirt::sync_vmi_volumes(const std::string& ns, const std::string& name) {
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (!vmi || kube::value_at(*vmi, {"metadata", "deletionTimestamp"})) return;
  std::string phase(kube::str_at(*vmi, {"status", "phase"}));
  if (phase == "Running" || phase == "Failed" || phase == "Succeeded" || guest(ns, name)) {
    pending_vmis_.erase(key(ns, name));
    return;
  }
  Object v = *vmi;
  std::vector<std::string> claims;
  bool ready = true, wffc = false, unbound = false;
  if (const auto* vols = kube::array_at(v, {"spec", "volumes"})) {
    for (const auto& vol : *vols) {
      std::string claim = claim_of(vol);
      if (claim.empty() || hotplug(vol)) continue;
      const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
      if (!pvc) {
        // datavolumes.go areDataVolumesReady: wait for the claim to appear.
        std::string msg = "PVC " + ns + "/" + claim + " does not exist, waiting for it to appear";
        if (!has_condition(&v, "Synchronized", "False", "FailedPvcNotFound")) {
          c_.record_event(v, "Normal", "FailedPvcNotFound", msg);
        }
        (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
          json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
          st["phase"] = "Pending";
          set_condition(st, "Synchronized", "False", "FailedPvcNotFound", msg);
          set_condition(st, "PodScheduled", "False", "Unschedulable", msg);
          o["status"] = st;
        });
        return;
      }
      claims.push_back(claim);
      if (kube::str_at(*pvc, {"status", "phase"}) != "Bound") unbound = true;
      std::string dv_name;
      if (controller_kind(*pvc, &dv_name) == "DataVolume") {
        const Object* dv = c_.store().find(c_.resource(res::kDataVolumes), ns, dv_name);
        std::string dv_phase = dv ? std::string(kube::str_at(*dv, {"status", "phase"})) : std::string();
        if (dv_phase == "WaitForFirstConsumer") wffc = true;
        else if (dv_phase != "Succeeded" && dv_phase != "PendingPopulation") ready = false;
      }
    }
  }
  if (!ready || wffc) {
    (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
      json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
      st["phase"] = "Pending";
      drop_condition(st, "Synchronized");
      drop_condition(st, "PodScheduled");
      if (wffc) set_condition(st, "Provisioning", "True", "", "");
      o["status"] = st;
    });
    if (ready && wffc) {
      // KubeVirt schedules a temporary pod for WaitForFirstConsumer claims; the
      // scheduler picks a node for them (volume.kubernetes.io/selected-node).
      for (const auto& claim : claims) {
        (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, claim, [](Object& o) {
          auto& m = o["metadata"].as_object();
          if (!m.contains("annotations") || !m["annotations"].is_object()) m["annotations"] = json::object();
          m["annotations"].as_object()["volume.kubernetes.io/selected-node"] = kNode;
        });
      }
    }
    return;
  }
  // The launcher pod: created now, scheduled once every claim is bound.
  std::string pod_name = launcher_pods_[key(ns, name)];
  const Object* pod = pod_name.empty() ? nullptr : c_.store().find(c_.resource(kPods), ns, pod_name);
  if (!pod) {
    Guest tmp;
    tmp.ns = ns;
    tmp.vm = name;
    tmp.vmi_uid = std::string(kube::uid_of(v));
    tmp.pvcs = claims;
    std::string hostname = launcher_hostname(name, std::string(kube::str_at(v, {"spec", "hostname"})));
    Object p = make_pod(v, tmp, hostname);
    p["spec"].as_object().erase("nodeName");
    p["status"] = json::object{{"phase", "Pending"}, {"qosClass", "Burstable"}};
    auto created = c_.store().create(c_.resource(kPods), ns, p);
    if (!created) return;
    pod_name = std::string(kube::name_of(*created));
    launcher_pods_[key(ns, name)] = pod_name;
    c_.record_event(v, "Normal", "SuccessfulCreate", "Created virtual machine pod " + pod_name);
  }
  if (unbound) {
    (void)c_.store().mutate(c_.resource(kPods), ns, pod_name, [&](Object& o) {
      json::object st = o["status"].as_object();
      set_condition(st, "PodScheduled", "False", "Unschedulable", kUnboundMessage);
      o["status"] = st;
    });
    (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
      json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
      st["phase"] = "Scheduling";
      drop_condition(st, "Synchronized");
      drop_condition(st, "Provisioning");
      set_condition(st, "PodScheduled", "False", "Unschedulable", kUnboundMessage);
      o["status"] = st;
    });
    return;
  }
  launch(ns, name, pod_name, claims);
}

void KubeVirt::launch(const std::string& ns, const std::string& name, const std::string& pod_name,
                      const std::vector<std::string>& claims) {
  pending_vmis_.erase(key(ns, name));
  launcher_pods_.erase(key(ns, name));
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (!vmi) return;
  auto g = std::make_unique<Guest>();
  g->ns = ns;
  g->vm = name;
  g->vmi_uid = std::string(kube::uid_of(*vmi));
  g->pod = pod_name;
  if (auto it = specs_.find(key(ns, name)); it != specs_.end()) {
    const VmSpec& s = it->second;
    g->agent = s.agent;
    g->paused = s.paused;
    g->migrating = s.migrating;
    g->freeze_latency = s.freeze_latency;
    g->thaw_latency = s.thaw_latency;
    g->scripts = s.exec;
    g->qemu = s.qemu_guest;
  } else {
    // Not declared by the scenario (a VM made through the API): its guest from the annotations (kubevirt.h).
    g->freeze_latency = std::chrono::milliseconds(20);
    g->thaw_latency = std::chrono::milliseconds(10);
    g->qemu = kube::annotation_of(*vmi, kGuestAnnotation) == "qemu";
    std::string_view agent = kube::annotation_of(*vmi, kAgentAnnotation);
    for (auto m : {AgentMode::kNone, AgentMode::kUnresponsive, AgentMode::kVss10s}) {
      if (!g->qemu && agent == agent_mode_name(m)) g->agent = m;
    }
  }
  if (start_paused_.erase(key(ns, name))) g->paused = true;  // start with {"paused": true} (StartStrategy Paused)
  g->agent_connected = g->agent != AgentMode::kNone && !g->qemu;  // a real agent connects when it answers
  g->pvcs = claims;
  std::string image = "quay.io/kubevirt/virt-launcher:v" + std::to_string(version_.first) + "." + std::to_string(version_.second) + ".0";
  std::string now = format_rfc3339(WallClock::now());
  (void)c_.store().mutate(c_.resource(kPods), ns, pod_name, [&](Object& o) {
    o["spec"].as_object()["nodeName"] = kNode;
    json::array statuses;
    for (const char* c : {"compute", "guest-console-log"}) {
      // imageID and containerID as a kubelet with containerd reports them.
      std::string id = new_uid() + new_uid();
      id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
      statuses.push_back(json::object{{"name", c}, {"ready", true}, {"restartCount", 0}, {"image", image},
                                      {"imageID", "quay.io/kubevirt/virt-launcher@sha256:" + id},
                                      {"containerID", "containerd://" + id},
                                      {"started", true},
                                      {"state", json::object{{"running", json::object{{"startedAt", now}}}}}});
    }
    // podIP: the kubelet's, one per pod (CoreControllers).
    json::object st{{"phase", "Running"}, {"hostIP", "192.168.66.101"}, {"qosClass", "Burstable"},
                    {"startTime", now}, {"containerStatuses", statuses}};
    for (const char* t : {"PodScheduled", "Initialized", "ContainersReady", "Ready"}) set_condition(st, t, "True", "", "");
    o["status"] = st;
  });
  const Object* launched = c_.store().find(c_.resource(kPods), ns, pod_name);
  std::string pod_ip = launched ? std::string(kube::str_at(*launched, {"status", "podIP"})) : std::string();
  (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
    auto& m = o["metadata"].as_object();
    if (!m.contains("labels") || !m["labels"].is_object()) m["labels"] = json::object();
    m["labels"].as_object()["kubevirt.io/nodeName"] = kNode;
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    st["phase"] = "Running";
    st["nodeName"] = kNode;
    st["launcherContainerImageVersion"] = image;
    st["interfaces"] = json::array{json::object{{"name", "default"}, {"ipAddress", pod_ip}}};
    for (const char* t : {"Synchronized", "PodScheduled", "Provisioning"}) drop_condition(st, t);
    o["status"] = st;
  });
  vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  // Hotplugged volumes are attached through a separate pod without hooks.
  if (const auto* vols = vmi ? kube::array_at(*vmi, {"spec", "volumes"}) : nullptr) {
    Object owner = *vmi;
    json::array volumes = *vols;
    for (const auto& vol : volumes) {
      if (!kube::bool_at(vol, {"persistentVolumeClaim", "hotpluggable"}).value_or(false)) continue;
      Object hp{{"metadata", json::object{{"generateName", "hp-volume-"},
                                          {"namespace", ns},
                                          {"labels", json::object{{"kubevirt.io", "hotplug-disk"}}},
                                          {"ownerReferences", json::array{controller_ref(owner)}}}},
                {"spec", json::object{{"containers", json::array{json::object{{"name", "hotplug-disk"}, {"image", image}}}},
                                      {"nodeName", kNode}}},
                {"status", json::object{{"phase", "Running"}}}};
      (void)c_.store().create(c_.resource(kPods), ns, hp);
    }
  }
  Guest& gr = *g;
  guest_by_pod_[key(ns, gr.pod)] = &gr;
  guests_[key(ns, name)] = std::move(g);
  c_.timeline().vm_known(ns, name);
  for (const auto& claim : claims) c_.csi().attach(ns, claim, &gr);
  set_active(gr, !gr.paused);
  if (gr.qemu) boot_qemu(gr);
  update_vmi_conditions(gr);
}

// The launcher pod is gone: the domain with it. The VMI fails; the VM
// controller restarts it for runStrategy Always and RerunOnFailure.
void KubeVirt::launcher_pod_gone(const std::string& ns, const std::string& pod, const std::string& name,
                                 const std::string& vmi_uid) {
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (!vmi || kube::uid_of(*vmi) != vmi_uid) return;  // its VMI is gone already
  if (Guest* g = guest(ns, name); g && g->pod != pod) return;  // not the pod of the running domain
  teardown(ns, name, "launcher pod deleted");
  pending_vmis_.erase(key(ns, name));
  launcher_pods_.erase(key(ns, name));
  (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    st["phase"] = "Failed";
    st.erase("fsFreezeStatus");
    set_condition(st, "Ready", "False", "PodTerminating", "virt-launcher pod is terminating");
    drop_condition(st, "AgentConnected");
    o["status"] = st;
  });
  if (const Object* v = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name)) {
    c_.record_event(*v, "Warning", "Stopped", "The VirtualMachineInstance crashed.");
  }
  std::string owner;
  if (const Object* v = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
      v && controller_kind(*v, &owner) == "VirtualMachine") {
    restart_at_[key(ns, owner)] = std::chrono::steady_clock::now() + kRestartDelay;
    update_vm_status(ns, owner);
    c_.loop().after(kRestartDelay, [this, ns, owner] { reconcile_vm(ns, owner); });
  }
}

// The guest stops: thawed, detached, forgotten. The VMI object is left alone.
void KubeVirt::teardown(const std::string& ns, const std::string& name, const std::string& why) {
  auto it = guests_.find(key(ns, name));
  if (it == guests_.end()) return;
  Guest& g = *it->second;
  if (g.qemu) stop_qemu(g);  // the guest is thawed before QEMU quits
  if (g.frozen) set_frozen(g, false, "Thaw", why);
  set_active(g, false);
  if (g.auto_thaw) g.auto_thaw->cancel();
  if (g.vss_timer) g.vss_timer->cancel();
  for (const auto& claim : g.pvcs) c_.csi().detach(ns, claim);
  if (auto p = guest_by_pod_.find(key(ns, g.pod)); p != guest_by_pod_.end() && p->second == &g) guest_by_pod_.erase(p);
  guests_.erase(it);
}

void KubeVirt::stop_vmi(const std::string& ns, const std::string& name, const std::string& why) {
  Guest* g = guest(ns, name);
  std::string uid = g ? g->vmi_uid : std::string();
  teardown(ns, name, why);
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (vmi && (uid.empty() || kube::uid_of(*vmi) == uid)) {
    (void)c_.store().remove(c_.resource(res::kVirtualMachineInstances), ns, name);
  }
  update_vm_status(ns, name);
}

// vm.go setPrintableStatus, first match wins.
std::string KubeVirt::printable_status(const Object& vm, const Object* vmi) const {
  std::string ns(kube::namespace_of(vm));
  std::string phase = vmi ? std::string(kube::str_at(*vmi, {"status", "phase"})) : std::string();
  bool final = phase == "Failed" || phase == "Succeeded";
  std::string strategy = run_strategy(vm);
  bool set_to_start = strategy == "Always" || strategy == "RerunOnFailure" || strategy == "Once" || (strategy == "Manual" && vmi);
  if (kube::value_at(vm, {"metadata", "deletionTimestamp"})) return "Terminating";
  if (vmi && !final && kube::value_at(*vmi, {"metadata", "deletionTimestamp"})) return "Stopping";
  const Guest* g = nullptr;
  if (vmi) {
    auto it = guests_.find(key(ns, std::string(kube::name_of(*vmi))));
    if (it != guests_.end()) g = it->second.get();
  }
  if (g && g->migrating) return "Migrating";
  if (phase == "Running" && g && g->paused) return "Paused";
  if (phase == "Running") return "Running";
  if (has_condition(vmi, "Synchronized", "False", "FailedPvcNotFound")) return "ErrorPvcNotFound";
  const auto* vols = kube::array_at(vm, {"spec", "template", "spec", "volumes"});
  if (vols) {
    for (const auto& vol : *vols) {
      std::string dv(kube::str_at(vol, {"dataVolume", "name"}));
      const Object* d = dv.empty() ? nullptr : c_.store().find(c_.resource(res::kDataVolumes), ns, dv);
      if (d && kube::str_at(*d, {"status", "phase"}) == "Failed") return "DataVolumeError";
    }
  }
  if (has_condition(vmi, "PodScheduled", "False", "Unschedulable")) return "ErrorUnschedulable";
  if (vols) {
    for (const auto& vol : *vols) {
      std::string dv(kube::str_at(vol, {"dataVolume", "name"}));
      const Object* d = dv.empty() ? nullptr : c_.store().find(c_.resource(res::kDataVolumes), ns, dv);
      if (!d) continue;
      std::string p(kube::str_at(*d, {"status", "phase"}));
      if (p == "Succeeded" || p == "PendingPopulation") continue;
      if (has_condition(d, "Bound", "True") || p != "WaitForFirstConsumer") return "Provisioning";
    }
    if (set_to_start) {
      for (const auto& vol : *vols) {
        std::string claim = claim_of(vol);
        const Object* pvc = claim.empty() ? nullptr : c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
        if (pvc && kube::str_at(*pvc, {"status", "phase"}) != "Bound") return "WaitingForVolumeBinding";
      }
    }
  }
  // Without a VMI, Starting only while a creation is expected (isVMIStartExpected);
  // the simulated controller creates the VMI in the same step, so it is Stopped
  // (a stopped RerunOnFailure VM too).
  if (!vmi) return "Stopped";
  if (phase.empty() || phase == "Pending" || phase == "Scheduling" || phase == "Scheduled") return "Starting";
  if (final) return "Stopped";
  return "Unknown";
}

void KubeVirt::update_vm_status(const std::string& ns, const std::string& name) {
  const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);
  if (!vm) return;
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  std::string owner;
  if (vmi && (controller_kind(*vmi, &owner) != "VirtualMachine" || owner != name)) vmi = nullptr;  // orphaned or foreign
  std::string printable = printable_status(*vm, vmi);
  Guest* g = guest(ns, name);
  bool ready = g && vmi && !g->paused && kube::str_at(*vmi, {"status", "phase"}) == "Running";
  bool created = vmi != nullptr;
  (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
    json::object st;
    if (o.contains("status") && o["status"].is_object()) st = o["status"].as_object();
    st["printableStatus"] = printable;
    st["runStrategy"] = run_strategy(o);
    if (auto* scr = st.if_contains("stateChangeRequests"); scr && scr->is_array() && scr->as_array().empty()) {
      st.erase("stateChangeRequests");
    }
    st["ready"] = ready;
    st["created"] = created;
    o["status"] = st;
  });
  if (g && vmi) update_vmi_conditions(*g);
}

}  // namespace kvb::testcluster
