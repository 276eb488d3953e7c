#include "kubevirt/hooks.h"
#include "rules/freeze_check.h"
#include "rules/parse.h"
#include "rules/templates.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::rules {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

// The Stork rule from the reference file, verbatim.
constexpr const char* kStorkExample = R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata:
  name: presnap-rule
rules:
  - podSelector:
      app: mysql
    container: mysql
    actions:
    - type: command
      background: true
      value: mysql --user=root -Bse 'flush tables with read lock;system ${WAIT_CMD};'
)";

TEST(RuleParse, StorkExampleVerbatim) {
  auto rules = parse_rule_documents(kStorkExample, "presnap.yaml", Phase::kPre);
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->size(), 1u);
  const Rule& r = (*rules)[0];
  EXPECT_EQ(r.name, "presnap-rule");
  EXPECT_EQ(r.source, RuleSource::kStorkFile);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].container, "mysql");
  EXPECT_TRUE(r.items[0].pod_selector.matches({{"app", "mysql"}, {"tier", "db"}}));
  EXPECT_FALSE(r.items[0].pod_selector.matches({{"app", "nginx"}}));
  ASSERT_EQ(r.items[0].actions.size(), 1u);
  const Action& a = r.items[0].actions[0];
  EXPECT_TRUE(a.background);
  EXPECT_FALSE(a.run_in_single_pod);
  EXPECT_EQ(a.timeout, std::chrono::seconds(60));
  EXPECT_EQ(a.on_error, OnError::kFail);
  EXPECT_EQ(a.command(), (std::vector<std::string>{"sh", "-c", "mysql --user=root -Bse 'flush tables with read lock;system ${WAIT_CMD};'"}));
}

TEST(RuleParse, MultiDocumentWithExtensionsAndLabelSelector) {
  std::string text = std::string(kStorkExample) + R"(---
apiVersion: kvbackup.io/v1alpha1
kind: BackupRule
metadata: {name: ext, namespace: prod}
rules:
  - podSelector:
      matchLabels: {kubevirt.io: virt-launcher}
      matchExpressions:
        - {key: tier, operator: In, values: [db, cache]}
    container: compute
    actions:
      - {type: command, value: "echo hi", timeout: 5s, onError: Continue, runInSinglePod: true}
---
)";
  auto rules = parse_rule_documents(text, "multi.yaml", Phase::kPre);
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->size(), 2u);
  const Rule& ext = (*rules)[1];
  EXPECT_EQ(ext.source, RuleSource::kBackupRuleFile);
  EXPECT_EQ(ext.ns, "prod");
  EXPECT_TRUE(ext.items[0].pod_selector.matches({{"kubevirt.io", "virt-launcher"}, {"tier", "cache"}}));
  EXPECT_FALSE(ext.items[0].pod_selector.matches({{"kubevirt.io", "virt-launcher"}, {"tier", "web"}}));
  EXPECT_EQ(ext.items[0].actions[0].timeout, std::chrono::seconds(5));
  EXPECT_EQ(ext.items[0].actions[0].on_error, OnError::kContinue);
  EXPECT_TRUE(ext.items[0].actions[0].run_in_single_pod);
}

struct Bad {
  const char* name;
  const char* yaml;
  Phase phase;
  const char* expected;
};
void PrintTo(const Bad& b, std::ostream* os) { *os << b.name; }

class RuleParseErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(RuleParseErrors, NameFileDocumentAndField) {
  auto r = parse_rule_documents(GetParam().yaml, "rules.yaml", GetParam().phase);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code == Errc::kInvalidArgument || r.error().code == Errc::kParse, true);
  EXPECT_THAT(r.error().message, HasSubstr("rules.yaml")) << r.error().message;
  EXPECT_THAT(r.error().message, HasSubstr(GetParam().expected)) << r.error().message;
}

#define STORK "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: Rule\nmetadata: {name: r}\n"
INSTANTIATE_TEST_SUITE_P(
    All, RuleParseErrors,
    ::testing::Values(
        Bad{"bad_yaml", "rules: [\n  - a: b\n   c", Phase::kPre, "invalid YAML"},
        Bad{"unknown_type", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {type: exec, value: ls}\n", Phase::kPre,
            "document 1: rules[0].actions[0].type: unknown action type \"exec\""},
        Bad{"background_in_post", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {background: true, value: 'x ${WAIT_CMD}'}\n",
            Phase::kPost, "rules[0].actions[0].background: background actions are only allowed in pre-exec rules"},
        Bad{"background_without_wait", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {background: true, value: sleep 1}\n",
            Phase::kPre, "must contain ${WAIT_CMD}"},
        Bad{"empty_selector", STORK "rules:\n- podSelector: {}\n  actions:\n  - {value: ls}\n", Phase::kPre,
            "rules[0].podSelector: is empty"},
        Bad{"missing_selector", STORK "rules:\n- actions:\n  - {value: ls}\n", Phase::kPre, "rules[0].podSelector: is required"},
        Bad{"empty_value", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {value: ''}\n", Phase::kPre,
            "rules[0].actions[0].value: is required"},
        Bad{"unknown_field", STORK "rules:\n- podSelector: {app: x}\n  containr: c\n  actions:\n  - {value: ls}\n", Phase::kPre,
            "rules[0].containr: unknown field"},
        Bad{"bad_timeout", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {value: ls, timeout: soon}\n", Phase::kPre,
            "rules[0].actions[0].timeout"},
        Bad{"bad_on_error", STORK "rules:\n- podSelector: {app: x}\n  actions:\n  - {value: ls, onError: Ignore}\n", Phase::kPre,
            "\"Ignore\" is not Fail or Continue"},
        Bad{"wrong_kind", "apiVersion: v1\nkind: ConfigMap\n", Phase::kPre, "is not a rule"},
        Bad{"second_doc", STORK "rules:\n- podSelector: {app: x}\n  actions: [{value: ls}]\n---\n" STORK "rules: []\n",
            Phase::kPre, "document 2: rules: is required"},
        Bad{"bad_label", STORK "rules:\n- podSelector: {'bad key!': x}\n  actions: [{value: ls}]\n", Phase::kPre,
            "label key"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(RuleTemplates, SeedNotationExpandsPerVmWithShellQuoting) {
  const char* tmpl = R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: vm-freeze}
rules:
  - podSelector:
      vm.kubevirt.io/name: <vm-name>
    container: compute
    actions:
      - type: command
        value: /usr/bin/virt-freezer --freeze --name <vm-name> --namespace {{vm.namespace}}
)";
  auto rules = parse_rule_documents(tmpl, "t.yaml", Phase::kPre);
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_TRUE((*rules)[0].is_template);
  auto db = expand_rule((*rules)[0], TemplateVm{"db", "prod"}, Phase::kPre);
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_TRUE(db->items[0].pod_selector.matches({{"vm.kubevirt.io/name", "db"}}));
  EXPECT_EQ(db->items[0].actions[0].value, "/usr/bin/virt-freezer --freeze --name db --namespace prod");
  // A name that tries to break out of the shell stays one word.
  json::value doc = expand_template_document((*rules)[0].document, TemplateVm{"x; rm -rf /", "prod"});
  std::string value(doc.at("rules").at(0).at("actions").at(0).at("value").as_string());
  EXPECT_EQ(value, "/usr/bin/virt-freezer --freeze --name 'x; rm -rf /' --namespace prod");
  auto evil = expand_rule((*rules)[0], TemplateVm{"x; rm -rf /", "prod"}, Phase::kPre);
  EXPECT_FALSE(evil) << "and it is not a valid label value, so the expansion is rejected";
}

TEST(FreezeCheck, AnalyzesVirtFreezerCommands) {
  auto c = analyze_command({"sh", "-c", "/usr/bin/virt-freezer --freeze --name db --namespace prod --unfreezeTimeoutSeconds=30"});
  EXPECT_TRUE(c.is_freezer);
  EXPECT_TRUE(c.freeze);
  EXPECT_EQ(c.name, "db");
  EXPECT_EQ(c.ns, "prod");
  EXPECT_EQ(c.unfreeze_timeout_seconds, 30);
  EXPECT_TRUE(c.problem.empty());
  auto both = analyze_command({"virt-freezer", "--unfreeze", "--freeze", "--name=a", "--namespace=b"});
  EXPECT_TRUE(both.freeze);
  EXPECT_FALSE(both.unfreeze);
  EXPECT_FALSE(analyze_command({"sh", "-c", "virt-freezer --freeze && echo done"}).is_freezer);
  EXPECT_FALSE(analyze_command({"fsfreeze", "-f", "/"}).is_freezer);
  EXPECT_THAT(analyze_command({"virt-freezer", "--freeze", "--name", "x"}).problem, HasSubstr("--namespace"));
}

TEST(FreezeCheck, ExitZeroIsNotProofOfAFreeze) {
  auto log = [](const char* msg) { return std::string(R"({"component":"freezer","level":"info","msg":")") + msg + "\"}\n"; };
  EXPECT_EQ(freezer_verdict(true, 0, log("Starting...") + log("Operation completed successfully")).evidence, FreezeEvidence::kFrozen);
  EXPECT_EQ(freezer_verdict(false, 0, log("Operation completed successfully")).evidence, FreezeEvidence::kThawed);
  auto none = freezer_verdict(true, 0, log("No guest agent, exiting"));
  EXPECT_EQ(none.evidence, FreezeEvidence::kNotFrozen);
  EXPECT_THAT(none.reason, HasSubstr("no guest agent"));
  EXPECT_EQ(freezer_verdict(true, 0, log("VM domain not running, no need to freeze/unfreeze")).evidence, FreezeEvidence::kNotFrozen);
  EXPECT_EQ(freezer_verdict(true, 0, "").evidence, FreezeEvidence::kUnknown);
  auto failed = freezer_verdict(true, 1, log("Freezing VMI failed, please make sure guest agent is running and try again"));
  EXPECT_EQ(failed.evidence, FreezeEvidence::kFailed);
  EXPECT_THAT(failed.reason, HasSubstr("Freezing VMI failed"));
}

TEST(VeleroHooks, ReadsKubevirtAnnotationsWithVeleroDefaults) {
  json::object pod = json::parse(R"({"metadata":{"name":"virt-launcher-db-x","namespace":"prod","annotations":{
    "pre.hook.backup.velero.io/container":"compute",
    "pre.hook.backup.velero.io/command":"[\"/usr/bin/virt-freezer\", \"--freeze\", \"--name\", \"db\", \"--namespace\", \"prod\"]",
    "pre.hook.backup.velero.io/timeout":"60s",
    "post.hook.backup.velero.io/command":"[\"/usr/bin/virt-freezer\", \"--unfreeze\", \"--name\", \"db\", \"--namespace\", \"prod\"]",
    "post.hook.backup.velero.io/on-error":"Continue"}}})").as_object();
  auto pre = kubevirt::velero_hook(pod, "pre");
  ASSERT_TRUE(pre && *pre);
  EXPECT_EQ((*pre)->container, "compute");
  EXPECT_EQ((*pre)->command.size(), 6u);
  EXPECT_EQ((*pre)->timeout, std::chrono::seconds(60));
  auto post = kubevirt::velero_hook(pod, "post");
  ASSERT_TRUE(post && *post);
  EXPECT_EQ((*post)->container, "") << "Velero's default: the first container";
  EXPECT_EQ((*post)->timeout, std::chrono::seconds(30)) << "Velero's default timeout";
  EXPECT_TRUE((*post)->on_error_continue);
  json::object bad = json::parse(R"({"metadata":{"name":"p","namespace":"n","annotations":{
    "pre.hook.backup.velero.io/command":"[1, 2]"}}})").as_object();
  auto b = kubevirt::velero_hook(bad, "pre");
  ASSERT_FALSE(b);
  EXPECT_THAT(b.error().message, HasSubstr("pod n/p annotation pre.hook.backup.velero.io/command"));
}

}  // namespace
}  // namespace kvb::rules
