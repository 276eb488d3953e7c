#include "kubevirt/preconditions.h"

#include "kube/object.h"
#include "kubevirt/resources.h"

#include <algorithm>

namespace kvb::kubevirt {

bool Readiness::can_freeze() const {
  return std::all_of(checks.begin(), checks.end(), [](const Precondition& p) { return p.met; });
}

std::string Readiness::blocker() const {
  for (const auto& p : checks) {
    if (!p.met) return p.reason;
  }
  return {};
}

const Precondition* Readiness::find(std::string_view name) const {
  for (const auto& p : checks) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Readiness check_preconditions(const VmInfo& vm) {
  Readiness r;
  std::string vmi = "VMI " + vm.key();
  bool running = vm.running();
  r.checks.push_back({"Running", running,
                      !vm.has_vmi() ? "VM is not running (no VMI; printableStatus " +
                                          (vm.printable_status().empty() ? std::string("unknown") : vm.printable_status()) + ")"
                                    : "VM is not running (" + vmi + " phase " + vm.vmi_phase() + ")"});
  r.checks.push_back({"NotPaused", !vm.paused(), "VM is paused (" + vmi + " has condition Paused=True)"});
  r.checks.push_back({"AgentConnected", vm.agent_connected(),
                      "guest agent not connected (no AgentConnected condition on " + vmi + ")"});
  bool pod_ok = false;
  std::string pod_reason = "no virt-launcher pod with kubevirt.io/created-by=" + vm.vmi_uid();
  if (vm.pod) {
    std::string phase(kube::str_at(*vm.pod, {"status", "phase"}));
    auto containers = vm.pod_containers();
    bool has_compute = std::find(containers.begin(), containers.end(), kComputeContainer) != containers.end();
    pod_ok = phase == "Running" && has_compute;
    pod_reason = phase != "Running" ? "launcher pod " + vm.pod_name() + " is " + phase
                                    : "launcher pod " + vm.pod_name() + " has no compute container";
  }
  r.checks.push_back({"LauncherPod", pod_ok, pod_reason});
  r.checks.push_back({"NotMigrating", !vm.migrating(), "VM is migrating (freezes are refused during a migration)"});
  r.checks.push_back({"SnapshotableVolume", !vm.claims().empty(),
                      "VM has no volume backed by a PersistentVolumeClaim or DataVolume"});
  return r;
}

}  // namespace kvb::kubevirt
