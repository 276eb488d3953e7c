// The VMs in a backup's scope, with what kvbackup needs to know of each: the
// VM, its running VMI, its virt-launcher pod and its volumes.
//
// The launcher pod is found by kubevirt.io/created-by=<VMI uid>, never by the
// vm.kubevirt.io/name label (that label is the guest's hostname, which is not
// always the VM's name). Listing is three list calls per namespace (or three in
// all), whatever the number of VMs.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::kubevirt {

struct VolumeInfo {
  std::string name;     // the volume's name in the VM spec
  std::string source;   // dataVolume, persistentVolumeClaim, cloudInitNoCloud, containerDisk, ...
  std::string claim;    // the PersistentVolumeClaim behind it, empty if none
  bool hotplug = false;
};

struct VmInfo {
  std::string ns;
  std::string name;
  boost::json::object vm;
  std::optional<boost::json::object> vmi;
  std::optional<boost::json::object> pod;  // the launcher pod
  std::vector<VolumeInfo> volumes;
  std::vector<std::string> notes;          // oddities found while loading (two launcher pods, ...)

  bool has_vmi() const { return vmi.has_value(); }
  std::string vmi_uid() const;
  std::string vmi_phase() const;
  bool running() const;          // VMI phase Running
  bool paused() const;           // VMI condition Paused=True
  bool agent_connected() const;  // VMI condition AgentConnected=True
  bool migrating() const;
  std::string printable_status() const;
  std::string pod_name() const;
  std::string hostname_label() const;  // the launcher pod's vm.kubevirt.io/name
  std::vector<std::string> pod_containers() const;
  std::vector<VolumeInfo> claims() const;  // the volumes backed by a claim (what gets snapshotted)
  std::string key() const { return ns + "/" + name; }
};

struct Scope {
  std::vector<std::string> namespaces;  // empty with all_namespaces=false: the client's default namespace
  bool all_namespaces = false;
  std::vector<std::string> vm_names;    // empty: every VM
  std::string label_selector;           // on VMs
};

// Loads the VMs in scope. Names given in vm_names that do not exist are an
// error naming them.
Result<std::vector<VmInfo>> load_inventory(kube::Client& client, const Scope& scope);

// Volumes of a VM spec (template volumes; hotpluggable claims flagged).
std::vector<VolumeInfo> vm_volumes(const boost::json::object& vm);

}  // namespace kvb::kubevirt
