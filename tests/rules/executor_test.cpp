// Rules run against the test cluster: built-in rules, Stork semantics,
// background actions, timeouts, onError, and the coverage check's traps.
#include "kube/object.h"
#include "kubevirt/inventory.h"
#include "rules/builtin.h"
#include "rules/coverage.h"
#include "rules/executor.h"
#include "rules/freeze_check.h"
#include "rules/parse.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::rules {
namespace {

using ::testing::HasSubstr;
using testing::TestCluster;
using namespace std::chrono_literals;

const char* kScenario = R"(
kubevirtVersion: "1.8"
launcherFreezeDeadline: 500ms
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume}]}
      - {name: named, hostname: database-host, volumes: [{name: root, type: dataVolume}]}
      - {name: web.example, volumes: [{name: root, type: dataVolume}]}
      - {name: noagent, agent: none, volumes: [{name: root, type: dataVolume}]}
      - {name: paused, paused: true, volumes: [{name: root, type: dataVolume}]}
      - {name: stopped, running: false, volumes: [{name: root, type: dataVolume}]}
      - {name: optout, annotations: {kubevirt.io/skip-backup-hooks: "true"}, volumes: [{name: root, type: dataVolume}]}
    pods:
      - {name: mysql-0, labels: {app: mysql}, containers: [{name: mysql}]}
      - {name: mysql-1, labels: {app: mysql}, containers: [{name: mysql}]}
      - {name: two, labels: {app: two}, containers: [{name: a}, {name: b}]}
)";

struct Fixture {
  TestCluster tc{kScenario};
  std::vector<kubevirt::VmInfo> vms;
  Fixture() {
    kubevirt::Scope s;
    s.namespaces = {"prod"};
    auto inv = kubevirt::load_inventory(*tc.client(), s);
    if (!inv) throw std::runtime_error(inv.error().describe());
    vms = *inv;
  }
  const kubevirt::VmInfo& vm(const std::string& name) {
    for (const auto& v : vms)
      if (v.name == name) return v;
    throw std::runtime_error("no VM " + name);
  }
  std::vector<PodInfo> all_pods() {
    std::vector<PodInfo> out;
    auto l = tc.client()->list(kube::resources::kPods, "prod");
    for (const auto& p : l->items) out.push_back(pod_info(p.as_object()));
    return out;
  }
};

Rule parse_one(const std::string& yaml, Phase phase) {
  auto r = parse_rule_documents(yaml, "test.yaml", phase);
  if (!r) throw std::runtime_error(r.error().message);
  return (*r)[0];
}

TEST(BuiltinRules, FreezeAndThawRealGuests) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{});
  auto rules = builtin_rules(f.vm("db"), BuiltinOptions{std::chrono::seconds(90)});
  ASSERT_TRUE(rules && rules->pre && rules->post);
  EXPECT_EQ(rules->source, "velero-annotations");
  EXPECT_THAT(rules->pre->actions[0].display(), HasSubstr("--unfreezeTimeoutSeconds=90"));
  auto pod = pod_info(*f.vm("db").pod);
  auto pre = ex.run_item("builtin", *rules->pre, pod);
  ASSERT_TRUE(pre.ok()) << pre.status.error().message;
  ASSERT_EQ(pre.runs.size(), 1u);
  EXPECT_EQ(pre.runs[0].container, "compute");
  EXPECT_EQ(freezer_verdict(true, pre.runs[0].exit_code, pre.runs[0].err).evidence, FreezeEvidence::kFrozen);
  EXPECT_EQ(kube::bool_at(f.tc.vm_state("prod", "db"), {"frozen"}), true);
  auto post = ex.run_item("builtin", *rules->post, pod);
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(kube::bool_at(f.tc.vm_state("prod", "db"), {"frozen"}), false);
}

TEST(BuiltinRules, HostnamesDotsAgentsPausedStoppedAndOptOut) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{});
  for (const char* name : {"named", "web.example"}) {
    auto r = builtin_rules(f.vm(name), BuiltinOptions{});
    ASSERT_TRUE(r && r->pre) << name;
    auto run = ex.run_item("builtin", *r->pre, pod_info(*f.vm(name).pod));
    ASSERT_TRUE(run.ok()) << name << ": " << run.status.error().message;
    EXPECT_EQ(freezer_verdict(true, run.runs[0].exit_code, run.runs[0].err).evidence, FreezeEvidence::kFrozen) << name;
    (void)ex.run_item("builtin", *r->post, pod_info(*f.vm(name).pod));
  }
  // No agent / paused: the rule runs and exits 0, but the verdict says no freeze happened.
  for (const char* name : {"noagent", "paused"}) {
    auto r = builtin_rules(f.vm(name), BuiltinOptions{});
    auto run = ex.run_item("builtin", *r->pre, pod_info(*f.vm(name).pod));
    ASSERT_TRUE(run.ok()) << name;
    EXPECT_EQ(freezer_verdict(true, run.runs[0].exit_code, run.runs[0].err).evidence, FreezeEvidence::kNotFrozen) << name;
  }
  auto stopped = builtin_rules(f.vm("stopped"), BuiltinOptions{});
  ASSERT_TRUE(stopped);
  EXPECT_FALSE(stopped->pre);
  auto optout = builtin_rules(f.vm("optout"), BuiltinOptions{});
  ASSERT_TRUE(optout);
  EXPECT_FALSE(optout->pre);
  EXPECT_THAT(optout->skip_reason, HasSubstr("skip-backup-hooks"));
  EXPECT_TRUE(f.tc.events("Freeze", "noagent").empty());
}

TEST(StorkExecutor, RunsOnEveryMatchedPodAndWarnsWhenNothingMatches) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{});
  auto rule = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: each}
rules:
  - podSelector: {app: mysql}
    container: mysql
    actions: [{type: command, value: "echo ran-on-$HOSTNAME"}]
  - podSelector: {app: nothing-here}
    actions: [{type: command, value: "true"}]
)", Phase::kPre);
  auto run = ex.run(rule, {"prod"}, cluster_pod_lister(f.tc.client()));
  ASSERT_TRUE(run.ok()) << run.status.error().message;
  ASSERT_EQ(run.runs.size(), 2u);
  std::set<std::string> outs{run.runs[0].out, run.runs[1].out};
  EXPECT_EQ(outs, (std::set<std::string>{"ran-on-mysql-0\n", "ran-on-mysql-1\n"}));
  ASSERT_EQ(run.warnings.size(), 1u);
  EXPECT_THAT(run.warnings[0], HasSubstr("no running pod matches selector \"app=nothing-here\""));
  auto single = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: one}
rules:
  - podSelector: {app: mysql}
    actions: [{type: command, value: "true", runInSinglePod: true}]
)", Phase::kPre);
  EXPECT_EQ(ex.run(single, {"prod"}, cluster_pod_lister(f.tc.client())).runs.size(), 1u);
}

TEST(StorkExecutor, MultiContainerPodWithoutContainerFailsNamingThePod) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{});
  auto rule = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: ambiguous}
rules:
  - podSelector: {app: two}
    actions: [{type: command, value: "true"}]
)", Phase::kPre);
  auto run = ex.run(rule, {"prod"}, cluster_pod_lister(f.tc.client()));
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.status.error().message, HasSubstr("could not determine which container to use in pod prod/two"));
}

TEST(StorkExecutor, OnErrorContinueVersusFailAndTimeouts) {
  Fixture f;
  ExecutorOptions o;
  o.max_attempts = 2;
  o.retry_delay = 10ms;
  Executor ex(cluster_pod_exec(f.tc.client()), o);
  auto rule = parse_one(R"(apiVersion: kvbackup.io/v1alpha1
kind: BackupRule
metadata: {name: policies}
rules:
  - podSelector: {app: two}
    container: a
    actions:
      - {value: "exit 3", onError: Continue}
      - {value: "echo after"}
      - {value: "exit 4"}
      - {value: "echo never"}
)", Phase::kPre);
  auto run = ex.run(rule, {"prod"}, cluster_pod_lister(f.tc.client()));
  ASSERT_FALSE(run.ok());
  ASSERT_EQ(run.runs.size(), 3u);
  EXPECT_EQ(run.runs[0].verdict, "failed (exit 3) (continued)");
  EXPECT_EQ(run.runs[0].attempts, 2) << "retried within the budget";
  EXPECT_EQ(run.runs[1].out, "after\n");
  EXPECT_EQ(run.runs[2].verdict, "failed (exit 4)");
  EXPECT_THAT(run.status.error().message, HasSubstr("exited with code 4"));

  auto slow = parse_one(R"(apiVersion: kvbackup.io/v1alpha1
kind: BackupRule
metadata: {name: slow}
rules:
  - podSelector: {app: two}
    container: b
    actions: [{value: "sleep 30", timeout: 300ms}]
)", Phase::kPre);
  auto start = std::chrono::steady_clock::now();
  auto t = ex.run(slow, {"prod"}, cluster_pod_lister(f.tc.client()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.runs[0].verdict, "timed out");
  EXPECT_EQ(t.runs[0].attempts, 1) << "a timed-out command may still run: not retried";
}

TEST(StorkExecutor, BackgroundWaitCmdHoldsUntilReleased) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{});
  // The background command writes "locked", holds at ${WAIT_CMD}, then writes "unlocked".
  auto rule = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: lock}
rules:
  - podSelector: {app: mysql}
    container: mysql
    actions:
      - type: command
        background: true
        value: "echo locked > state; ${WAIT_CMD}; echo unlocked > state"
      - type: command
        value: "cat state"
)", Phase::kPre);
  auto run = ex.run(rule, {"prod"}, cluster_pod_lister(f.tc.client()));
  ASSERT_TRUE(run.ok()) << run.status.error().message;
  ASSERT_TRUE(run.background);
  EXPECT_EQ(run.background->size(), 2u);
  // While held, the lock is in place on both pods.
  ASSERT_EQ(run.runs.size(), 2u);
  for (const auto& r : run.runs) EXPECT_EQ(r.out, "locked\n") << r.pod;
  auto released = run.background->release(10s);
  ASSERT_EQ(released.size(), 2u);
  for (const auto& r : released) EXPECT_TRUE(r.succeeded()) << r.verdict;
  auto after = f.tc.exec("prod", "mysql-0", "mysql", {"cat", "state"});
  EXPECT_EQ(after.out, "unlocked\n");
}

TEST(StorkExecutor, BackgroundActionsAreReleasedWhenALaterActionFails) {
  Fixture f;
  Executor ex(cluster_pod_exec(f.tc.client()), ExecutorOptions{.max_attempts = 1, .wait_limit = std::nullopt});
  auto rule = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: lock-then-fail}
rules:
  - podSelector: {app: mysql}
    container: mysql
    actions:
      - {type: command, background: true, value: "echo held > state2; ${WAIT_CMD}; echo released > state2"}
      - {type: command, value: "exit 9"}
)", Phase::kPre);
  auto run = ex.run(rule, {"prod"}, cluster_pod_lister(f.tc.client()));
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(f.tc.exec("prod", "mysql-0", "mysql", {"cat", "state2"}).out, "released\n");
  EXPECT_EQ(f.tc.exec("prod", "mysql-1", "mysql", {"cat", "state2"}).out, "released\n");
}

TEST(Coverage, BuiltinRulesCoverRunningVmsWithAnAgent) {
  Fixture f;
  auto report = check_builtin_coverage(f.vms, BuiltinOptions{});
  std::map<std::string, VmCoverage> by;
  for (const auto& v : report.vms) by[v.name] = v;
  EXPECT_TRUE(by["db"].ok());
  EXPECT_TRUE(by["named"].ok());
  EXPECT_TRUE(by["web.example"].ok());
  EXPECT_TRUE(by["stopped"].ok()) << "nothing to freeze";
  EXPECT_FALSE(by["noagent"].ok());
  EXPECT_THAT(by["noagent"].problems[0], HasSubstr("guest agent not connected"));
  EXPECT_FALSE(by["paused"].ok());
  EXPECT_FALSE(by["optout"].ok());
  EXPECT_THAT(by["optout"].problems[0], HasSubstr("skip-backup-hooks"));
  EXPECT_FALSE(report.all_covered());
}

TEST(Coverage, FindsTheHostnameTrapWrongTargetsAndMissingThaws) {
  Fixture f;
  auto pre = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions: [{value: /usr/bin/virt-freezer --freeze --name db --namespace prod}]
  - podSelector: {vm.kubevirt.io/name: named}
    container: compute
    actions: [{value: /usr/bin/virt-freezer --freeze --name named --namespace prod}]
  - podSelector: {kubevirt.io: virt-launcher}
    container: compute
    actions: [{value: /usr/bin/virt-freezer --freeze --name web.example --namespace prod}]
  - podSelector: {app: ghost}
    actions: [{value: "true"}]
)", Phase::kPre);
  auto post = parse_one(R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions: [{value: /usr/bin/virt-freezer --unfreeze --name db --namespace prod}]
)", Phase::kPost);
  kubevirt::Scope s;
  s.namespaces = {"prod"};
  s.vm_names = {"db", "named", "web.example"};
  auto vms = kubevirt::load_inventory(*f.tc.client(), s);
  ASSERT_TRUE(vms);
  auto report = check_coverage(*vms, {pre}, {post}, f.all_pods());
  std::map<std::string, VmCoverage> by;
  for (const auto& v : report.vms) by[v.name] = v;
  auto all = [](const VmCoverage& v) {
    std::string text;
    for (const auto& p : v.problems) text += p + "\n";
    return text;
  };
  EXPECT_TRUE(by["db"].pre.covered);
  EXPECT_TRUE(by["db"].post.covered);
  EXPECT_THAT(all(by["db"]), HasSubstr("matches this VM's pod but freezes prod/web.example, not prod/db"));
  EXPECT_FALSE(by["named"].pre.covered);
  EXPECT_THAT(all(by["named"]), HasSubstr("that label is the guest's hostname"));
  EXPECT_TRUE(by["web.example"].pre.covered);
  EXPECT_FALSE(by["web.example"].post.covered);
  EXPECT_THAT(all(by["web.example"]), HasSubstr("never thawed by a post-exec rule"));
  EXPECT_THAT(all(by["web.example"]), HasSubstr("also matches the launcher pods"));
  bool ghost = false;
  for (const auto& p : report.problems) ghost = ghost || p.find("matches no pod") != std::string::npos;
  EXPECT_TRUE(ghost);
  EXPECT_FALSE(report.all_covered());
}

}  // namespace
}  // namespace kvb::rules
