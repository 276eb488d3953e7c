// The coverage check behind `kvbackup rules check`: is every running VM in
// scope frozen by a pre-exec rule and thawed by a post-exec rule that really
// target it?
//
// An item covers a VM when its selector matches the VM's launcher pod, its
// container exists there, and its action runs virt-freezer with the right mode
// and --name/--namespace equal to the VM's VMI. The check reports the traps
// users fall into: a selector on vm.kubevirt.io/name that misses because that
// label is the hostname, a selector that also matches other VMs' pods, a
// missing container, an action that names another VM, a VM frozen but never
// thawed, a guest without agent (the freeze would not happen), and rule items
// that match nothing.
#pragma once

#include "kubevirt/inventory.h"
#include "rules/builtin.h"
#include "rules/executor.h"
#include "rules/model.h"
#include "rules/parse.h"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace kvb::rules {

struct PhaseCoverage {
  bool covered = false;
  std::string by;  // "presnap-rule rules[0] (/usr/bin/virt-freezer --freeze ...)"
};

struct VmCoverage {
  std::string ns;
  std::string name;
  std::string status;         // printableStatus
  bool needs_coverage = false;  // running VMs need both rules
  PhaseCoverage pre;
  PhaseCoverage post;
  std::vector<std::string> problems;
  bool ok() const { return !needs_coverage || (pre.covered && post.covered && problems.empty()); }
};

struct CoverageReport {
  std::vector<VmCoverage> vms;
  std::vector<std::string> problems;  // about rules rather than VMs (items matching nothing)
  bool all_covered() const;
  boost::json::object to_json() const;
  std::string table() const;
};

// One VM and one phase: whether `rules` freeze (pre) or thaw (post) it, with the
// problems `rules check` reports appended to `problems`. A VM is frozen by a
// pre rule only when it is covered and no problem was found for the phase.
PhaseCoverage check_vm_phase(const kubevirt::VmInfo& vm, const std::vector<Rule>& rules, Phase phase,
                             const std::vector<PodInfo>& pods, std::vector<std::string>& problems);

// Custom rules. `pods` are all pods of the namespaces in scope (to find what else a selector hits).
CoverageReport check_coverage(const std::vector<kubevirt::VmInfo>& vms, const std::vector<Rule>& pre,
                              const std::vector<Rule>& post, const std::vector<PodInfo>& pods);
// The built-in rules.
CoverageReport check_builtin_coverage(const std::vector<kubevirt::VmInfo>& vms, const BuiltinOptions& o);

}  // namespace kvb::rules
