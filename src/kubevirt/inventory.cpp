#include "kubevirt/inventory.h"

#include "kube/object.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

#include <map>
#include <set>

namespace kvb::kubevirt {
namespace json = boost::json;

std::string VmInfo::vmi_uid() const { return vmi ? std::string(kube::uid_of(*vmi)) : std::string(); }
std::string VmInfo::vmi_phase() const { return vmi ? std::string(kube::str_at(*vmi, {"status", "phase"})) : std::string(); }
bool VmInfo::running() const { return vmi_phase() == "Running"; }

namespace {
bool condition_true(const std::optional<json::object>& vmi, std::string_view type) {
  if (!vmi) return false;
  const auto* conds = kube::array_at(*vmi, {"status", "conditions"});
  if (!conds) return false;
  for (const auto& c : *conds) {
    if (kube::str_at(c, {"type"}) == type && kube::str_at(c, {"status"}) == "True") return true;
  }
  return false;
}
}  // namespace

bool VmInfo::paused() const { return condition_true(vmi, "Paused"); }
bool VmInfo::agent_connected() const { return condition_true(vmi, "AgentConnected"); }
bool VmInfo::migrating() const {
  if (!vmi) return false;
  const auto* ms = kube::object_at(*vmi, {"status", "migrationState"});
  return ms && !kube::bool_at(*ms, {"completed"}).value_or(false) && !kube::bool_at(*ms, {"failed"}).value_or(false);
}
std::string VmInfo::printable_status() const { return std::string(kube::str_at(vm, {"status", "printableStatus"})); }
std::string VmInfo::pod_name() const { return pod ? std::string(kube::name_of(*pod)) : std::string(); }
std::string VmInfo::hostname_label() const {
  return pod ? std::string(kube::label_of(*pod, kLabelVmName)) : std::string();
}
std::vector<std::string> VmInfo::pod_containers() const {
  std::vector<std::string> out;
  if (!pod) return out;
  if (const auto* cs = kube::array_at(*pod, {"spec", "containers"})) {
    for (const auto& c : *cs) out.emplace_back(kube::str_at(c, {"name"}));
  }
  return out;
}
std::vector<VolumeInfo> VmInfo::claims() const {
  std::vector<VolumeInfo> out;
  for (const auto& v : volumes) {
    if (!v.claim.empty()) out.push_back(v);
  }
  return out;
}

std::vector<VolumeInfo> vm_volumes(const json::object& vm) {
  std::vector<VolumeInfo> out;
  const auto* vols = kube::array_at(vm, {"spec", "template", "spec", "volumes"});
  if (!vols) return out;
  for (const auto& v : *vols) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    VolumeInfo info;
    info.name = std::string(kube::str_at(o, {"name"}));
    for (const auto& [k, val] : o) {
      if (k != "name") info.source = std::string(k);
    }
    if (auto dv = kube::str_at(o, {"dataVolume", "name"}); !dv.empty()) {
      info.source = "dataVolume";
      info.claim = std::string(dv);
      info.hotplug = kube::bool_at(o, {"dataVolume", "hotpluggable"}).value_or(false);
    } else if (auto pvc = kube::str_at(o, {"persistentVolumeClaim", "claimName"}); !pvc.empty()) {
      info.source = "persistentVolumeClaim";
      info.claim = std::string(pvc);
      info.hotplug = kube::bool_at(o, {"persistentVolumeClaim", "hotpluggable"}).value_or(false);
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::vector<VmInfo>> load_inventory(kube::Client& client, const Scope& scope) {
  std::vector<std::string> namespaces = scope.namespaces;
  if (scope.all_namespaces) namespaces = {""};
  else if (namespaces.empty()) namespaces = {client.default_namespace()};
  std::vector<VmInfo> out;
  std::set<std::string> wanted(scope.vm_names.begin(), scope.vm_names.end());
  std::set<std::string> found;
  for (const auto& ns : namespaces) {
    kube::ListOptions vm_opts;
    vm_opts.label_selector = scope.label_selector;
    auto vms = client.list(kVirtualMachines, ns, vm_opts);
    if (!vms) return vms.error().with_context("listing VirtualMachines" + std::string(ns.empty() ? "" : " in " + ns));
    auto vmis = client.list(kVirtualMachineInstances, ns);
    if (!vmis) return vmis.error().with_context("listing VirtualMachineInstances");
    kube::ListOptions pod_opts;
    pod_opts.label_selector = std::string(kLabelKubevirt) + "=virt-launcher";
    auto pods = client.list(kube::resources::kPods, ns, pod_opts);
    if (!pods) return pods.error().with_context("listing virt-launcher pods");

    std::map<std::string, const json::object*> vmi_by_key;
    for (const auto& v : vmis->items) {
      if (v.is_object()) vmi_by_key[kube::key_of(v.as_object())] = &v.as_object();
    }
    std::map<std::string, std::vector<const json::object*>> pods_by_vmi_uid;
    for (const auto& p : pods->items) {
      if (!p.is_object()) continue;
      std::string uid(kube::label_of(p.as_object(), kLabelCreatedBy));
      if (!uid.empty()) pods_by_vmi_uid[uid].push_back(&p.as_object());
    }
    for (auto& v : vms->items) {
      if (!v.is_object()) continue;
      VmInfo info;
      info.vm = std::move(v.as_object());
      info.ns = std::string(kube::namespace_of(info.vm));
      info.name = std::string(kube::name_of(info.vm));
      if (!wanted.empty() && !wanted.count(info.name) && !wanted.count(info.key())) continue;
      found.insert(info.name);
      found.insert(info.key());
      if (auto it = vmi_by_key.find(info.key()); it != vmi_by_key.end()) info.vmi = *it->second;
      if (info.vmi) {
        auto pit = pods_by_vmi_uid.find(info.vmi_uid());
        if (pit != pods_by_vmi_uid.end()) {
          // During a migration there are two launcher pods; the one on the VMI's node is current.
          std::string node(kube::str_at(*info.vmi, {"status", "nodeName"}));
          const json::object* chosen = nullptr;
          for (const auto* p : pit->second) {
            bool running = kube::str_at(*p, {"status", "phase"}) == "Running";
            bool on_node = node.empty() || kube::str_at(*p, {"spec", "nodeName"}) == node;
            if (running && on_node) chosen = p;
          }
          if (!chosen) chosen = pit->second.front();
          if (pit->second.size() > 1) info.notes.push_back(std::to_string(pit->second.size()) + " launcher pods; using " + std::string(kube::name_of(*chosen)));
          info.pod = *chosen;
        }
      }
      info.volumes = vm_volumes(info.vm);
      out.push_back(std::move(info));
    }
  }
  for (const auto& w : wanted) {
    if (!found.count(w)) {
      std::string where = scope.all_namespaces ? "any namespace" : "namespace " + (namespaces.size() == 1 ? namespaces[0] : std::string("scope"));
      return Error(Errc::kNotFound, "VirtualMachine \"" + w + "\" not found in " + where);
    }
  }
  return out;
}

}  // namespace kvb::kubevirt
