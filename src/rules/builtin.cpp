#include "rules/builtin.h"

#include "common/shell.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "kubevirt/freeze_api.h"
#include "kubevirt/hooks.h"
#include "kubevirt/resources.h"
#include "rules/freeze_check.h"

#include <boost/json.hpp>

#include <map>

namespace kvb::rules {
namespace json = boost::json;

namespace {

RuleItem item_for(const kubevirt::VmInfo& vm, const std::string& container, std::vector<std::string> argv,
                  std::chrono::milliseconds timeout) {
  RuleItem item;
  item.pod_selector.add({kubevirt::kLabelVmName, kube::LabelRequirement::Op::kEquals, {vm.hostname_label()}});
  item.pod_selector.add({kubevirt::kLabelCreatedBy, kube::LabelRequirement::Op::kEquals, {vm.vmi_uid()}});
  item.pod_namespace = vm.ns;
  item.pod_name = vm.pod_name();
  item.container = container;
  Action a;
  a.argv = std::move(argv);
  a.timeout = timeout;
  item.actions.push_back(std::move(a));
  item.origin = "built-in rule for VM " + vm.key();
  return item;
}

}  // namespace

Result<BuiltinRules> builtin_rules(const kubevirt::VmInfo& vm, const BuiltinOptions& o) {
  BuiltinRules out;
  if (kubevirt::skip_backup_hooks(vm.vm) || (vm.vmi && kubevirt::skip_backup_hooks(*vm.vmi))) {
    out.skip_reason = "kubevirt.io/skip-backup-hooks is set on the VM";
    return out;
  }
  if (!vm.pod) {
    out.skip_reason = vm.has_vmi() ? "no virt-launcher pod found for the VMI" : "the VM is not running";
    return out;
  }
  KVB_TRY(auto pre_hook, kubevirt::velero_hook(*vm.pod, "pre"));
  KVB_TRY(auto post_hook, kubevirt::velero_hook(*vm.pod, "post"));
  std::string vmi = std::string(kube::name_of(*vm.vmi));
  if (pre_hook && post_hook) {
    out.source = "velero-annotations";
    auto pre_timeout = pre_hook->timeout_given ? pre_hook->timeout : kDefaultActionTimeout;
    auto post_timeout = post_hook->timeout_given ? post_hook->timeout : kDefaultActionTimeout;
    out.pre = item_for(vm, pre_hook->container.empty() ? kubevirt::kComputeContainer : pre_hook->container, pre_hook->command,
                       pre_timeout);
    out.post = item_for(vm, post_hook->container.empty() ? kubevirt::kComputeContainer : post_hook->container,
                        post_hook->command, post_timeout);
    // A virt-freezer freeze from the annotation gets kvbackup's auto-thaw timer (never a shorter one).
    std::string note;
    (void)own_unfreeze_timeout(out.pre->actions[0], vmi, vm.ns, o.unfreeze_timeout, note);
    if (pre_hook->on_error_continue) out.pre->actions[0].on_error = OnError::kContinue;
    if (post_hook->on_error_continue) out.post->actions[0].on_error = OnError::kContinue;
    return out;
  }
  out.source = "virt-freezer-fallback";
  out.pre = item_for(vm, kubevirt::kComputeContainer,
                     kubevirt::virt_freezer_argv(kubevirt::FreezerMode::kFreeze, vmi, vm.ns, o.unfreeze_timeout),
                     kDefaultActionTimeout);
  out.post = item_for(vm, kubevirt::kComputeContainer, kubevirt::virt_freezer_argv(kubevirt::FreezerMode::kUnfreeze, vmi, vm.ns),
                      kDefaultActionTimeout);
  return out;
}

json::object stork_rule_document(const std::string& name, const std::string& ns, const std::vector<RuleItem>& items) {
  json::array rules;
  for (const auto& item : items) {
    json::object selector;
    for (const auto& r : item.pod_selector.requirements()) {
      if (r.op == kube::LabelRequirement::Op::kEquals && !r.values.empty()) selector[r.key] = r.values[0];
    }
    json::array actions;
    for (const auto& a : item.actions) {
      std::string value;
      if (a.argv.empty()) {
        value = a.value;
      } else {
        for (const auto& w : a.argv) value += (value.empty() ? "" : " ") + shell_quote(w);
      }
      json::object action{{"type", "command"}, {"value", value}};
      if (a.background) action["background"] = true;
      if (a.run_in_single_pod) action["runInSinglePod"] = true;
      actions.push_back(action);
    }
    json::object entry{{"podSelector", selector}};
    if (!item.container.empty()) entry["container"] = item.container;
    entry["actions"] = actions;
    rules.push_back(entry);
  }
  json::object meta{{"name", name}};
  if (!ns.empty()) meta["namespace"] = ns;
  return json::object{{"apiVersion", "stork.libopenstorage.org/v1alpha1"}, {"kind", "Rule"}, {"metadata", meta}, {"rules", rules}};
}

std::string builtin_rules_yaml(const std::vector<kubevirt::VmInfo>& vms, const BuiltinOptions& o) {
  std::map<std::string, std::pair<std::vector<RuleItem>, std::vector<RuleItem>>> by_ns;
  std::string comments;
  for (const auto& vm : vms) {
    auto r = builtin_rules(vm, o);
    if (!r) {
      comments += "# " + vm.key() + ": " + r.error().message + "\n";
      continue;
    }
    if (!r->pre) {
      comments += "# " + vm.key() + ": no built-in rules (" + r->skip_reason + ")\n";
      continue;
    }
    by_ns[vm.ns].first.push_back(*r->pre);
    by_ns[vm.ns].second.push_back(*r->post);
  }
  std::string out = comments;
  for (const auto& [ns, items] : by_ns) {
    out += "---\n" + to_yaml(stork_rule_document("kvbackup-builtin-freeze", ns, items.first));
    out += "---\n" + to_yaml(stork_rule_document("kvbackup-builtin-unfreeze", ns, items.second));
  }
  return out;
}

}  // namespace kvb::rules
