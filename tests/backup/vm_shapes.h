// VmInfo values for unit tests: a VM as the inventory would load it (VM,
// VMI with conditions, launcher pod with KubeVirt's labels and hooks), built
// without a cluster.
#pragma once

#include "kubevirt/inventory.h"

#include <boost/json.hpp>

#include <string>

namespace kvb::backup {

struct VmShape {
  std::string name = "db";
  bool running = true;
  bool agent = true;
  bool paused = false;
  std::string pre_hook;  // the launcher pod's Velero pre-hook command (JSON array), if any
  VmShape& stopped() { running = false; return *this; }
  VmShape& no_agent() { agent = false; return *this; }
  VmShape& is_paused() { paused = true; return *this; }
  VmShape& hook(std::string h) { pre_hook = std::move(h); return *this; }
};

inline VmShape vm(std::string name) {
  VmShape s;
  s.name = std::move(name);
  return s;
}

inline kubevirt::VmInfo vm_info(const VmShape& s) {
  kubevirt::VmInfo v;
  v.ns = "prod";
  v.name = s.name;
  v.vm = boost::json::parse(R"({"metadata":{"name":")" + s.name + R"(","namespace":"prod"},"status":{"printableStatus":")" +
                     (s.running ? "Running" : "Stopped") + R"("}})").as_object();
  v.volumes = {{"root", "dataVolume", s.name + "-root", false}, {"cloudinit", "cloudInitNoCloud", "", false}};
  if (!s.running) return v;
  boost::json::array conds{boost::json::object{{"type", "Ready"}, {"status", "True"}}};
  if (s.agent) conds.push_back(boost::json::object{{"type", "AgentConnected"}, {"status", "True"}});
  if (s.paused) conds.push_back(boost::json::object{{"type", "Paused"}, {"status", "True"}});
  v.vmi = boost::json::object{{"metadata", boost::json::object{{"name", s.name}, {"namespace", "prod"}, {"uid", "uid-" + s.name}}},
                       {"status", boost::json::object{{"phase", "Running"}, {"conditions", conds}}}};
  boost::json::object annotations;
  if (!s.pre_hook.empty()) {
    annotations["pre.hook.backup.velero.io/container"] = "compute";
    annotations["pre.hook.backup.velero.io/command"] = s.pre_hook;
    annotations["post.hook.backup.velero.io/container"] = "compute";
    annotations["post.hook.backup.velero.io/command"] =
        R"(["/usr/bin/virt-freezer", "--unfreeze", "--name", ")" + s.name + R"(", "--namespace", "prod"])";
  }
  v.pod = boost::json::object{
      {"metadata", boost::json::object{{"name", "virt-launcher-" + s.name + "-abcde"},
                                {"namespace", "prod"},
                                {"labels", boost::json::object{{"kubevirt.io", "virt-launcher"},
                                                        {"kubevirt.io/created-by", "uid-" + s.name},
                                                        {"vm.kubevirt.io/name", s.name}}},
                                {"annotations", annotations}}},
      {"spec", boost::json::object{{"containers", boost::json::array{boost::json::object{{"name", "compute"}}}}}},
      {"status", boost::json::object{{"phase", "Running"}}}};
  return v;
}

}  // namespace kvb::backup
