// `kvbackup rules ...` end to end: the binary against the test cluster.
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

using ::testing::HasSubstr;

const char* kScenario = R"(
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume}]}
      - {name: noagent, agent: none, volumes: [{name: root, type: dataVolume}]}
)";

ProcessResult kvbackup(const TestCluster& tc, const std::vector<std::string>& args) { return run_kvbackup(tc, args); }

TEST(RulesCli, CheckExitsZeroOnlyWhenEveryRunningVmIsCovered) {
  TestCluster tc(kScenario);
  auto all = kvbackup(tc, {"-n", "prod", "rules", "check"});
  EXPECT_EQ(all.exit_code, 1) << all.out << all.err;
  EXPECT_THAT(all.out, HasSubstr("prod/noagent"));
  EXPECT_THAT(all.out, HasSubstr("guest agent not connected"));
  auto db = kvbackup(tc, {"-n", "prod", "rules", "check", "--vm", "db", "-o", "json"});
  EXPECT_EQ(db.exit_code, 0) << db.out << db.err;
  EXPECT_THAT(db.out, HasSubstr(R"("allCovered":true)"));
}

TEST(RulesCli, MalformedRulesExitWithCode2AndNameTheField) {
  TestCluster tc(kScenario);
  tc.dir().write("post.yaml", R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {app: db}
    actions: [{type: command, background: true, value: "x ${WAIT_CMD}"}]
)");
  auto r = kvbackup(tc, {"-n", "prod", "rules", "check", "--post-rule", (tc.dir() / "post.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("post.yaml: document 1: rules[0].actions[0].background"));
  auto missing = kvbackup(tc, {"-n", "prod", "rules", "check", "--pre-rule", "no-such-rule"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("neither a file nor a Stork Rule"));
  auto vm = kvbackup(tc, {"-n", "prod", "rules", "check", "--vm", "ghost"});
  EXPECT_EQ(vm.exit_code, 1);
  EXPECT_THAT(vm.err, HasSubstr("VirtualMachine \"ghost\" not found"));
}

TEST(RulesCli, ShowBuiltinAndGenerateProduceStorkRules) {
  TestCluster tc(kScenario);
  auto show = kvbackup(tc, {"-n", "prod", "rules", "show-builtin"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("kind: Rule"));
  EXPECT_THAT(show.out, HasSubstr("--freeze --name db --namespace prod"));
  tc.dir().write("tmpl.yaml", R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: vm-freeze}
rules:
  - podSelector: {vm.kubevirt.io/name: <vm-name>}
    container: compute
    actions: [{type: command, value: "/usr/bin/virt-freezer --freeze --name <vm-name> --namespace <vm-namespace>"}]
)");
  auto gen = kvbackup(tc, {"-n", "prod", "rules", "generate", "--template", (tc.dir() / "tmpl.yaml").string()});
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_THAT(gen.out, HasSubstr("--name db --namespace prod"));
  EXPECT_THAT(gen.out, HasSubstr("--name noagent --namespace prod"));
  // The generated rules pass the coverage check for db.
  tc.dir().write("gen.yaml", gen.out);
  auto pre_only = kvbackup(tc, {"-n", "prod", "rules", "check", "--vm", "db", "--pre-rule", (tc.dir() / "gen.yaml").string()});
  EXPECT_EQ(pre_only.exit_code, 1) << "no post rule: never thawed";
  EXPECT_THAT(pre_only.out, HasSubstr("never thawed"));
}

}  // namespace
}  // namespace kvb::testing
