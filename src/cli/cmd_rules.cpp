// kvbackup rules check | show-builtin | generate
#include "cli/options.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "rules/builtin.h"
#include "rules/coverage.h"
#include "rules/sources.h"
#include "rules/templates.h"

#include <boost/json.hpp>

#include <cstdio>
#include <map>
#include <set>

namespace kvb::cli {
namespace json = boost::json;

namespace {

struct RulesOptions {
  ScopeOptions scope;
  std::string pre_rule, post_rule, output = "table", template_file, phase = "pre";
};

std::vector<std::string> namespaces_of(const std::vector<kubevirt::VmInfo>& vms) {
  std::set<std::string> s;
  for (const auto& v : vms) s.insert(v.ns);
  return {s.begin(), s.end()};
}

int check(const GlobalOptions& g, const RulesOptions& o) {
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto vms = kubevirt::load_inventory(**client, make_scope(g, o.scope, (*client)->default_namespace()));
  if (!vms) return report_error(vms.error());
  rules::CoverageReport report;
  if (o.pre_rule.empty() && o.post_rule.empty()) {
    report = rules::check_builtin_coverage(*vms, rules::BuiltinOptions{});
  } else {
    auto nss = namespaces_of(*vms);
    std::vector<rules::Rule> pre, post;
    if (!o.pre_rule.empty()) {
      auto r = rules::load_rules(o.pre_rule, rules::Phase::kPre, **client, nss);
      if (!r) return report_error(r.error());
      pre = std::move(*r);
    }
    if (!o.post_rule.empty()) {
      auto r = rules::load_rules(o.post_rule, rules::Phase::kPost, **client, nss);
      if (!r) return report_error(r.error());
      post = std::move(*r);
    }
    std::vector<rules::PodInfo> pods;
    for (const auto& ns : nss) {
      auto list = (*client)->list(kube::resources::kPods, ns);
      if (!list) return report_error(list.error());
      for (const auto& p : list->items) pods.push_back(rules::pod_info(p.as_object()));
    }
    report = rules::check_coverage(*vms, pre, post, pods);
  }
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(report.to_json()).c_str());
  } else {
    std::printf("%s", report.table().c_str());
  }
  return report.all_covered() ? kExitOk : kExitFailed;
}

int show_builtin(const GlobalOptions& g, const RulesOptions& o) {
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto vms = kubevirt::load_inventory(**client, make_scope(g, o.scope, (*client)->default_namespace()));
  if (!vms) return report_error(vms.error());
  std::printf("%s", rules::builtin_rules_yaml(*vms, rules::BuiltinOptions{}).c_str());
  return kExitOk;
}

int generate(const GlobalOptions& g, const RulesOptions& o) {
  rules::Phase phase = o.phase == "post" ? rules::Phase::kPost : rules::Phase::kPre;
  auto templates = rules::load_rule_file(o.template_file, phase);
  if (!templates) return report_error(templates.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto vms = kubevirt::load_inventory(**client, make_scope(g, o.scope, (*client)->default_namespace()));
  if (!vms) return report_error(vms.error());
  std::string out;
  for (const auto& tmpl : *templates) {
    std::map<std::string, std::vector<rules::RuleItem>> by_ns;
    for (const auto& vm : *vms) {
      if (!tmpl.ns.empty() && tmpl.ns != vm.ns) continue;
      auto rule = rules::expand_rule(tmpl, rules::TemplateVm{vm.name, vm.ns}, phase);
      if (!rule) return report_error(rule.error());
      for (auto& item : rule->items) by_ns[vm.ns].push_back(item);
      if (!tmpl.is_template) break;  // a plain rule is printed once
    }
    std::string name = tmpl.name.empty() ? std::string(phase == rules::Phase::kPre ? "pre" : "post") + "-exec-rule" : tmpl.name;
    for (const auto& [ns, items] : by_ns) out += "---\n" + to_yaml(rules::stork_rule_document(name, ns, items));
  }
  std::printf("%s", out.c_str());
  return kExitOk;
}

}  // namespace

void register_rules(CLI::App& app, GlobalOptions& g, CommandAction& run) {
  auto o = std::make_shared<RulesOptions>();
  auto* rules_cmd = app.add_subcommand("rules", "Check, show and generate pre-exec/post-exec freeze rules");
  rules_cmd->require_subcommand(1);

  auto* chk = rules_cmd->add_subcommand(
      "check", "Check that every running VM is frozen by a pre-exec rule and thawed by a post-exec rule that target it");
  add_scope_options(chk, o->scope);
  chk->add_option("--pre-rule", o->pre_rule, "Pre-exec rule: a file, or the name of a Stork Rule in the VM's namespace");
  chk->add_option("--post-rule", o->post_rule, "Post-exec rule: a file, or the name of a Stork Rule");
  chk->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  chk->callback([&run, &g, o] { run = [&g, o] { return check(g, *o); }; });

  auto* show = rules_cmd->add_subcommand("show-builtin", "Print kvbackup's built-in freeze/thaw rules as Stork Rule YAML");
  add_scope_options(show, o->scope);
  show->callback([&run, &g, o] { run = [&g, o] { return show_builtin(g, *o); }; });

  auto* gen = rules_cmd->add_subcommand(
      "generate", "Expand a rule template (<vm-name>, <vm-namespace>, {{vm.name}}) into plain per-VM Stork rules");
  add_scope_options(gen, o->scope);
  gen->add_option("--template", o->template_file, "Rule template file")->required();
  gen->add_option("--phase", o->phase, "pre or post (post rules may not have background actions)")
      ->check(CLI::IsMember({"pre", "post"}));
  gen->callback([&run, &g, o] { run = [&g, o] { return generate(g, *o); }; });
}

}  // namespace kvb::cli
