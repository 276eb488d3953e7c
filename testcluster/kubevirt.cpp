#include "testcluster/kubevirt.h"

#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/qemu_vms.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kNode = "node01";

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

std::string quoted_argv(const std::vector<std::string>& argv) {
  std::string s = "[";
  for (size_t i = 0; i < argv.size(); ++i) s += (i ? ", " : "") + json::serialize(json::string(argv[i]));
  return s + "]";
}

bool truthy(std::string_view v) { return v == "true" || v == "True" || v == "1"; }

}  // namespace

json::object controller_ref(const Object& owner) {
  json::value v(owner);
  return json::object{{"apiVersion", kube::str_at(v, {"apiVersion"})},
                      {"kind", kube::str_at(v, {"kind"})},
                      {"name", kube::name_of(v)},
                      {"uid", kube::uid_of(v)},
                      {"controller", true},
                      {"blockOwnerDeletion", true}};
}

std::string launcher_hostname(const std::string& vmi_name, const std::string& spec_hostname) {
  std::string h = spec_hostname.empty() ? vmi_name : spec_hostname;
  if (spec_hostname.empty()) h = h.substr(0, h.find('.'));
  if (h.size() > 63) h = h.substr(0, 63);
  return h;
}

int64_t Guest::active_ms() const {
  int64_t ns = active_ns;
  if (active) ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - active_since).count();
  return ns / 1'000'000;
}

KubeVirt::KubeVirt(Cluster& c) : c_(c), version_(parse_version(c.scenario().kubevirt_version)) {
  // virt-handler polls the guest agent and refreshes status.fsFreezeStatus.
  struct Repeater {
    static void arm(KubeVirt* kv, Duration d) {
      kv->poll_timer_ = kv->c_.loop().after(d, [kv, d] {
        kv->poll_fs_freeze();
        arm(kv, d);
      });
    }
  };
  Repeater::arm(this, c.scenario().fs_freeze_poll_interval);
}

KubeVirt::~KubeVirt() {
  if (poll_timer_) poll_timer_->cancel();
}

Duration KubeVirt::launcher_freeze_deadline() const {
  if (c_.scenario().launcher_freeze_deadline) return *c_.scenario().launcher_freeze_deadline;
  return version_ >= std::pair<int, int>{1, 8} ? Duration(60s) : Duration(20s);
}

Guest* KubeVirt::guest(const std::string& ns, const std::string& vm) {
  auto it = guests_.find(key(ns, vm));
  return it == guests_.end() ? nullptr : it->second.get();
}

Guest* KubeVirt::guest_for_pod(const std::string& ns, const std::string& pod) {
  if (auto it = guest_by_pod_.find(key(ns, pod)); it != guest_by_pod_.end() && it->second->ns == ns && it->second->pod == pod) {
    return it->second;
  }
  for (auto& [k, g] : guests_) {
    if (g->ns == ns && g->pod == pod) return g.get();
  }
  return nullptr;
}

Status KubeVirt::create_vm(const std::string& ns, const VmSpec& spec, const std::string& name) {
  specs_[key(ns, name)] = spec;
  json::array dv_templates, volumes, disks;
  for (const auto& v : spec.volumes) {
    std::string claim = name + "-" + v.name;
    if (v.type == "dataVolume") {
      json::object storage{{"resources", json::object{{"requests", json::object{{"storage", v.size}}}}}};
      if (!v.storage_class.empty()) storage["storageClassName"] = v.storage_class;
      dv_templates.push_back(json::object{{"metadata", json::object{{"name", claim}}},
                                          {"spec", json::object{{"source", json::object{{"blank", json::object()}}},
                                                                {"storage", storage}}}});
      volumes.push_back(json::object{{"name", v.name}, {"dataVolume", json::object{{"name", claim}}}});
    } else if (v.type == "persistentVolumeClaim") {
      KVB_CHECK(c_.csi().create_claim(ns, claim, v.size, v.storage_class));
      json::object pvc{{"claimName", claim}};
      if (v.hotplug) pvc["hotpluggable"] = true;
      volumes.push_back(json::object{{"name", v.name}, {"persistentVolumeClaim", pvc}});
    } else if (v.type == "cloudInitNoCloud") {
      volumes.push_back(json::object{{"name", v.name}, {"cloudInitNoCloud", json::object{{"userData", "#cloud-config\n"}}}});
    } else {
      volumes.push_back(json::object{
          {"name", v.name}, {"containerDisk", json::object{{"image", "quay.io/containerdisks/fedora:40"}}}});
    }
    if (!v.hotplug) disks.push_back(json::object{{"name", v.name}, {"disk", json::object{{"bus", "virtio"}}}});
  }
  json::object labels, annotations;
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  for (const auto& [k, v] : spec.annotations) annotations[k] = v;
  json::object tmpl_labels = labels;
  tmpl_labels["kubevirt.io/domain"] = name;
  json::object tmpl_annotations = annotations;
  if (spec.qemu_guest) tmpl_annotations[kGuestAnnotation] = "qemu";
  if (spec.agent != AgentMode::kConnected) tmpl_annotations[kAgentAnnotation] = agent_mode_name(spec.agent);
  json::object tmpl_spec{{"domain", json::object{{"devices", json::object{{"disks", disks}}},
                                                 {"resources", json::object{{"requests", json::object{{"memory", "2Gi"}}}}}}},
                         {"volumes", volumes}};
  if (!spec.hostname.empty()) tmpl_spec["hostname"] = spec.hostname;
  Object vm{{"apiVersion", "kubevirt.io/v1"},
            {"kind", "VirtualMachine"},
            {"metadata", json::object{{"name", name}, {"namespace", ns}, {"labels", labels}, {"annotations", annotations}}},
            {"spec", json::object{{"runStrategy", spec.running ? "Always" : "Halted"},
                                  {"template", json::object{{"metadata", json::object{{"labels", tmpl_labels},
                                                                                      {"annotations", tmpl_annotations}}},
                                                            {"spec", tmpl_spec}}}}}};
  if (!dv_templates.empty()) vm["spec"].as_object()["dataVolumeTemplates"] = dv_templates;
  auto created = c_.store().create(c_.resource(res::kVirtualMachines), ns, vm);
  if (!created) return created.error();
  return ok();
}

Object KubeVirt::make_vmi(const Object& vm, const std::string& name) {
  json::value v(vm);
  json::object labels, annotations;
  if (auto* l = kube::object_at(v, {"spec", "template", "metadata", "labels"})) labels = *l;
  if (auto* a = kube::object_at(v, {"spec", "template", "metadata", "annotations"})) annotations = *a;
  std::string ns(kube::namespace_of(v));
  json::object spec;
  if (auto* s = kube::object_at(v, {"spec", "template", "spec"})) spec = *s;
  return Object{{"apiVersion", "kubevirt.io/v1"},
                {"kind", "VirtualMachineInstance"},
                {"metadata", json::object{{"name", name},
                                          {"namespace", ns},
                                          {"labels", labels},
                                          {"annotations", annotations},
                                          {"ownerReferences", json::array{controller_ref(vm)}}}},
                {"spec", spec},
                {"status", json::object{{"phase", "Pending"}}}};
}

Object KubeVirt::make_pod(const Object& vmi, const Guest& g, const std::string& hostname) {
  json::value v(vmi);
  json::object labels;
  if (auto* l = kube::object_at(v, {"metadata", "labels"})) labels = *l;
  labels["kubevirt.io"] = "virt-launcher";
  labels["kubevirt.io/created-by"] = g.vmi_uid;
  labels["vm.kubevirt.io/name"] = hostname;
  json::object annotations{{"kubectl.kubernetes.io/default-container", "compute"}, {"kubevirt.io/domain", g.vm}};
  // Velero hooks unless kubevirt.io/skip-backup-hooks is set (on the VMI, else the VM).
  std::string skip(kube::annotation_of(v, "kubevirt.io/skip-backup-hooks"));
  if (skip.empty()) {
    if (const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), g.ns, g.vm)) {
      skip = std::string(kube::annotation_of(*vm, "kubevirt.io/skip-backup-hooks"));
    }
  }
  if (!truthy(skip)) {
    annotations["pre.hook.backup.velero.io/container"] = "compute";
    annotations["pre.hook.backup.velero.io/command"] =
        quoted_argv({"/usr/bin/virt-freezer", "--freeze", "--name", g.vm, "--namespace", g.ns});
    if (version_ >= std::pair<int, int>{1, 8}) annotations["pre.hook.backup.velero.io/timeout"] = "60s";
    annotations["post.hook.backup.velero.io/container"] = "compute";
    annotations["post.hook.backup.velero.io/command"] =
        quoted_argv({"/usr/bin/virt-freezer", "--unfreeze", "--name", g.vm, "--namespace", g.ns});
  }
  std::string image = "quay.io/kubevirt/virt-launcher:v" + std::to_string(version_.first) + "." +
                      std::to_string(version_.second) + ".0";
  // Pod volumes carry the VMI's volume names (virt-controller's template service).
  json::array pod_volumes;
  if (const auto* vols = kube::array_at(v, {"spec", "volumes"})) {
    for (const auto& vol : *vols) {
      std::string claim(kube::str_at(vol, {"persistentVolumeClaim", "claimName"}));
      if (claim.empty()) claim = std::string(kube::str_at(vol, {"dataVolume", "name"}));
      if (claim.empty() || kube::bool_at(vol, {"persistentVolumeClaim", "hotpluggable"}).value_or(false)) continue;
      pod_volumes.push_back(json::object{{"name", kube::str_at(vol, {"name"})}, {"persistentVolumeClaim", json::object{{"claimName", claim}}}});
    }
  }
  json::array statuses;
  for (const char* c : {"compute", "guest-console-log"}) {
    statuses.push_back(json::object{{"name", c}, {"ready", true}, {"restartCount", 0}, {"image", image},
                                    {"state", json::object{{"running", json::object{{"startedAt", format_rfc3339(WallClock::now())}}}}}});
  }
  return Object{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", json::object{{"generateName", "virt-launcher-" + g.vm + "-"},
                                {"namespace", g.ns},
                                {"labels", labels},
                                {"annotations", annotations},
                                {"ownerReferences", json::array{controller_ref(vmi)}}}},
      {"spec", json::object{{"containers", json::array{json::object{{"name", "compute"},
                                                                    {"image", image},
                                                                    {"command", json::array{"/usr/bin/virt-launcher-monitor"}}},
                                                       json::object{{"name", "guest-console-log"}, {"image", image}}}},
                            {"hostname", hostname},
                            {"nodeName", kNode},
                            {"volumes", pod_volumes}}},
      {"status", json::object{{"phase", "Running"}, {"containerStatuses", statuses}}}};  // podIP: the kubelet's (CoreControllers)
}

void KubeVirt::update_vmi_conditions(Guest& g) {
  (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), g.ns, g.vm, [&](Object& o) {
    json::object& st = o["status"].as_object();
    std::string now = format_rfc3339(WallClock::now());
    json::array conds{json::object{{"type", "Ready"}, {"status", g.paused ? "False" : "True"}, {"lastProbeTime", nullptr},
                                   {"lastTransitionTime", now}},
                      json::object{{"type", "LiveMigratable"}, {"status", "True"}, {"lastProbeTime", nullptr},
                                   {"lastTransitionTime", now}}};
    if (g.agent_connected && g.agent != AgentMode::kNone) {
      conds.push_back(json::object{{"type", "AgentConnected"}, {"status", "True"}, {"lastProbeTime", nullptr},
                                   {"lastTransitionTime", now}});
      bool windows = g.agent == AgentMode::kVss10s;
      st["guestOSInfo"] = windows ? json::object{{"id", "mswindows"}, {"name", "Microsoft Windows Server 2022"},
                                                 {"prettyName", "Windows Server 2022 Datacenter"}, {"version", "2022"},
                                                 {"kernelRelease", "20348"}, {"machine", "x86_64"}}
                                  : json::object{{"id", "fedora"}, {"name", "Fedora Linux"},
                                                 {"prettyName", "Fedora Linux 40 (Cloud Edition)"}, {"version", "40"},
                                                 {"versionId", "40"}, {"kernelRelease", "6.8.5-301.fc40.x86_64"},
                                                 {"machine", "x86_64"}};
    } else {
      st.erase("guestOSInfo");
    }
    if (g.paused) {
      conds.push_back(json::object{{"type", "Paused"}, {"status", "True"}, {"reason", "PausedByUser"},
                                   {"lastProbeTime", nullptr}, {"lastTransitionTime", now}});
    }
    // Keep transition times of conditions whose status did not change.
    if (auto* old = st.if_contains("conditions"); old && old->is_array()) {
      for (auto& c : conds) {
        for (const auto& oc : old->as_array()) {
          if (kube::str_at(oc, {"type"}) == kube::str_at(c, {"type"}) && kube::str_at(oc, {"status"}) == kube::str_at(c, {"status"})) {
            c.as_object()["lastTransitionTime"] = oc.at("lastTransitionTime");
          }
        }
      }
    }
    st["conditions"] = conds;
    if (g.migrating) st["migrationState"] = json::object{{"sourceNode", kNode}, {"targetNode", "node02"}, {"completed", false}};
    else st.erase("migrationState");
  });
}

void KubeVirt::set_active(Guest& g, bool active) {
  auto now = std::chrono::steady_clock::now();
  if (g.active && !active) g.active_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(now - g.active_since).count();
  if (!g.active && active) g.active_since = now;
  g.active = active;
}

void KubeVirt::poll_fs_freeze() {
  for (auto& [k, g] : guests_) {
    if (g->qemu) {
      poll_qemu(*g);
      continue;
    }
    bool frozen = g->frozen;
    // Most VMIs already show their state: skip the store's copy-and-compare.
    if (const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), g->ns, g->vm)) {
      const auto* st = vmi->if_contains("status");
      const auto* fs = st && st->is_object() ? st->as_object().if_contains("fsFreezeStatus") : nullptr;
      bool shown = fs && fs->is_string() && fs->as_string() == "frozen";
      if (st && st->is_object() && shown == frozen) continue;
    }
    (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), g->ns, g->vm, [&](Object& o) {
      auto& st = o["status"].as_object();
      if (frozen) st["fsFreezeStatus"] = "frozen";
      else st.erase("fsFreezeStatus");
    });
  }
}

}  // namespace kvb::testcluster
