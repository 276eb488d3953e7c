#include "rules/coverage.h"

#include "kube/object.h"
#include "kubevirt/preconditions.h"
#include "kubevirt/resources.h"
#include "rules/freeze_check.h"
#include "rules/parse.h"
#include "rules/templates.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace kvb::rules {
namespace json = boost::json;

namespace {

std::string where(const Rule& r, const RuleItem& item) {
  std::string origin = item.origin;
  return (r.name.empty() ? r.origin : r.name) + " " + origin.substr(origin.rfind(' ') == std::string::npos ? 0 : origin.rfind(' ') + 1);
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

bool applies_to_ns(const Rule& r, const std::string& ns) { return r.ns.empty() || r.ns == ns; }

void add_precondition_problems(const kubevirt::VmInfo& vm, VmCoverage& c) {
  auto readiness = kubevirt::check_preconditions(vm);
  for (const char* name : {"NotPaused", "AgentConnected", "LauncherPod", "NotMigrating", "SnapshotableVolume"}) {
    const auto* p = readiness.find(name);
    if (p && !p->met) c.problems.push_back(p->reason + ": the freeze would not happen");
  }
}

}  // namespace

// Checks one phase for one VM; returns whether covered and records problems.
PhaseCoverage check_vm_phase(const kubevirt::VmInfo& vm, const std::vector<Rule>& rules, Phase phase,
                          const std::vector<PodInfo>& pods, std::vector<std::string>& problems) {
  PhaseCoverage pc;
  const std::string mode = phase == Phase::kPre ? "freeze" : "unfreeze";
  kube::Labels pod_labels = kube::labels_of(*vm.pod);
  std::string vmi(kube::name_of(*vm.vmi));
  auto containers = vm.pod_containers();
  for (const auto& tmpl : rules) {
    if (!applies_to_ns(tmpl, vm.ns)) continue;
    auto expanded = expand_rule(tmpl, TemplateVm{vm.name, vm.ns}, phase);
    if (!expanded) {
      problems.push_back(expanded.error().message);
      continue;
    }
    const Rule& rule = *expanded;
    for (const auto& item : rule.items) {
      bool matches = item.pod_name.empty() ? item.pod_selector.matches(pod_labels) : item.pod_name == vm.pod_name();
      if (!matches) {
        // The hostname trap: selecting by vm.kubevirt.io/name=<VM name> when the label is the hostname.
        for (const auto& req : item.pod_selector.requirements()) {
          if (req.key == kubevirt::kLabelVmName && req.op == kube::LabelRequirement::Op::kEquals && !req.values.empty() &&
              req.values[0] == vm.name && vm.hostname_label() != vm.name) {
            problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " selects " +
                               kubevirt::kLabelVmName + "=" + vm.name + ", but this VM's launcher pod has " +
                               kubevirt::kLabelVmName + "=" + vm.hostname_label() +
                               " (that label is the guest's hostname); select by kubevirt.io/created-by=" + vm.vmi_uid() +
                               " or by the hostname");
          }
        }
        continue;
      }
      std::string container = item.container;
      if (container.empty()) {
        if (containers.size() != 1) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " names no container, and pod " +
                             vm.pod_name() + " has several (" + join(containers) + "): it would fail");
          continue;
        }
        container = containers[0];
      } else if (std::find(containers.begin(), containers.end(), container) == containers.end()) {
        problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " runs in container \"" +
                           container + "\", which pod " + vm.pod_name() + " does not have (" + join(containers) + ")");
        continue;
      }
      // Other VMs' pods that the selector also hits.
      std::vector<std::string> others;
      for (const auto& p : pods) {
        if (p.ns != vm.ns || p.name == vm.pod_name()) continue;
        if (p.labels.count(kubevirt::kLabelCreatedBy) && item.pod_name.empty() && item.pod_selector.matches(p.labels)) {
          others.push_back(p.ns + "/" + p.name);
        }
      }
      for (const auto& action : item.actions) {
        auto call = analyze_command(action.command());
        if (!call.is_freezer) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " runs \"" + action.display() +
                             "\" on this VM's pod; it is not virt-freezer, so kvbackup cannot tell what it " + mode + "s");
          continue;
        }
        if (!call.problem.empty()) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + ": virt-freezer would fail: " + call.problem);
          continue;
        }
        bool right_mode = phase == Phase::kPre ? call.freeze : call.unfreeze;
        if (!right_mode) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " runs virt-freezer --" +
                             (call.freeze ? "freeze" : "unfreeze") + " in the " + std::string(phase_name(phase)) + "-exec phase");
          continue;
        }
        if (call.name != vmi || call.ns != vm.ns) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " matches this VM's pod but " +
                             mode + "s " + call.ns + "/" + call.name + ", not " + vm.ns + "/" + vmi +
                             " (virt-freezer in this pod would fail)");
          continue;
        }
        pc.covered = true;
        pc.by = where(rule, item) + " (" + action.display() + ")";
        if (!others.empty()) {
          problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) +
                             " also matches the launcher pods " + join(others) + ", where --name " + call.name + " fails");
        }
      }
    }
  }
  return pc;
}


bool CoverageReport::all_covered() const {
  return std::all_of(vms.begin(), vms.end(), [](const VmCoverage& v) { return v.ok(); });
}

CoverageReport check_coverage(const std::vector<kubevirt::VmInfo>& vms, const std::vector<Rule>& pre,
                              const std::vector<Rule>& post, const std::vector<PodInfo>& pods) {
  CoverageReport report;
  for (const auto& vm : vms) {
    VmCoverage c;
    c.ns = vm.ns;
    c.name = vm.name;
    c.status = vm.printable_status().empty() ? (vm.running() ? "Running" : "Stopped") : vm.printable_status();
    c.needs_coverage = vm.running();
    if (c.needs_coverage) {
      if (!vm.pod) {
        c.problems.push_back("no virt-launcher pod found for VMI uid " + vm.vmi_uid());
      } else {
        c.pre = check_vm_phase(vm, pre, Phase::kPre, pods, c.problems);
        c.post = check_vm_phase(vm, post, Phase::kPost, pods, c.problems);
        if (c.pre.covered && !c.post.covered) {
          c.problems.push_back("frozen by the pre-exec rule but never thawed by a post-exec rule: the guest would stay "
                               "frozen until virt-freezer's auto-thaw (default 300 s)");
        }
        add_precondition_problems(vm, c);
      }
    }
    report.vms.push_back(std::move(c));
  }
  // Rule items that match no pod of any VM in scope.
  std::set<std::string> vm_pods;
  for (const auto& vm : vms) vm_pods.insert(vm.ns + "/" + vm.pod_name());
  for (const auto* phase_rules : {&pre, &post}) {
    Phase phase = phase_rules == &pre ? Phase::kPre : Phase::kPost;
    for (const auto& rule : *phase_rules) {
      if (rule.is_template) continue;  // templates match by construction per VM
      for (const auto& item : rule.items) {
        int vm_hits = 0, other_hits = 0;
        for (const auto& p : pods) {
          if (!applies_to_ns(rule, p.ns) || !item.pod_selector.matches(p.labels)) continue;
          (vm_pods.count(p.ns + "/" + p.name) ? vm_hits : other_hits)++;
        }
        if (vm_hits == 0 && other_hits == 0) {
          report.problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " matches no pod (selector " +
                                    item.pod_selector.to_string() + ")");
        } else if (vm_hits == 0) {
          report.problems.push_back(std::string(phase_name(phase)) + " rule " + where(rule, item) + " matches no VM's launcher pod (" +
                                    std::to_string(other_hits) + " application pod(s))");
        }
      }
    }
  }
  return report;
}

CoverageReport check_builtin_coverage(const std::vector<kubevirt::VmInfo>& vms, const BuiltinOptions& o) {
  CoverageReport report;
  for (const auto& vm : vms) {
    VmCoverage c;
    c.ns = vm.ns;
    c.name = vm.name;
    c.status = vm.printable_status().empty() ? (vm.running() ? "Running" : "Stopped") : vm.printable_status();
    c.needs_coverage = vm.running();
    if (c.needs_coverage) {
      auto rules = builtin_rules(vm, o);
      if (!rules) {
        c.problems.push_back(rules.error().message);
      } else if (!rules->pre) {
        c.problems.push_back("no built-in rules: " + rules->skip_reason);
      } else {
        Rule pre{"kvbackup-builtin-freeze", vm.ns, RuleSource::kBuiltin, "built-in", {*rules->pre}, false, {}};
        Rule post{"kvbackup-builtin-unfreeze", vm.ns, RuleSource::kBuiltin, "built-in", {*rules->post}, false, {}};
        std::vector<PodInfo> none;
        c.pre = check_vm_phase(vm, {pre}, Phase::kPre, none, c.problems);
        c.post = check_vm_phase(vm, {post}, Phase::kPost, none, c.problems);
        add_precondition_problems(vm, c);
      }
    }
    report.vms.push_back(std::move(c));
  }
  return report;
}

json::object CoverageReport::to_json() const {
  json::array arr;
  for (const auto& v : vms) {
    json::array probs;
    for (const auto& p : v.problems) probs.push_back(json::string(p));
    arr.push_back(json::object{{"namespace", v.ns},
                               {"name", v.name},
                               {"status", v.status},
                               {"needsCoverage", v.needs_coverage},
                               {"covered", v.ok()},
                               {"pre", json::object{{"covered", v.pre.covered}, {"by", v.pre.by}}},
                               {"post", json::object{{"covered", v.post.covered}, {"by", v.post.by}}},
                               {"problems", probs}});
  }
  json::array rp;
  for (const auto& p : problems) rp.push_back(json::string(p));
  return json::object{{"vms", arr}, {"ruleProblems", rp}, {"allCovered", all_covered()}};
}

std::string CoverageReport::table() const {
  size_t w = 2;
  for (const auto& v : vms) w = std::max(w, v.ns.size() + v.name.size() + 1);
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-*s  %-10s  %-4s  %-4s  %s\n", static_cast<int>(w), "VM", "STATUS", "PRE", "POST", "PROBLEMS");
  out += buf;
  for (const auto& v : vms) {
    std::string key = v.ns + "/" + v.name;
    const char* pre = !v.needs_coverage ? "-" : v.pre.covered ? "yes" : "NO";
    const char* post = !v.needs_coverage ? "-" : v.post.covered ? "yes" : "NO";
    std::string first = v.problems.empty() ? (v.needs_coverage ? "" : "not running: nothing to freeze") : v.problems[0];
    std::snprintf(buf, sizeof buf, "%-*s  %-10s  %-4s  %-4s  ", static_cast<int>(w), key.c_str(), v.status.c_str(), pre, post);
    out += buf + first + "\n";
    for (size_t i = 1; i < v.problems.size(); ++i) out += std::string(w + 26, ' ') + v.problems[i] + "\n";
  }
  for (const auto& p : problems) out += "rule: " + p + "\n";
  size_t covered = static_cast<size_t>(std::count_if(vms.begin(), vms.end(), [](const VmCoverage& v) { return v.needs_coverage && v.ok(); }));
  size_t need = static_cast<size_t>(std::count_if(vms.begin(), vms.end(), [](const VmCoverage& v) { return v.needs_coverage; }));
  out += std::to_string(covered) + " of " + std::to_string(need) + " running VMs covered by a freeze and a thaw that target them\n";
  return out;
}

}  // namespace kvb::rules
