// The plan's decisions are pure functions of the spec, the inventory, the
// rules and the storage catalog: no cluster, milliseconds per test.
#include "backup/plan.h"
#include "tests/backup/vm_shapes.h"

#include "rules/parse.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::backup {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

StorageCatalog storage(const std::vector<std::string>& vms) {
  StorageCatalog c;
  for (const auto& vm : vms) {
    c.pvcs["prod/" + vm + "-root"] = json::parse(R"({"metadata":{"name":")" + vm +
                                                 R"(-root","namespace":"prod"},"spec":{"storageClassName":"fast","resources":{"requests":{"storage":"10Gi"}}}})")
                                         .as_object();
  }
  c.provisioner["fast"] = "csi.example.com";
  c.class_driver["csi-snap"] = "csi.example.com";
  c.classes_by_driver["csi.example.com"] = {"csi-snap"};
  return c;
}

BackupSpec spec() {
  BackupSpec s;
  s.name = "nightly";
  s.freeze_deadline = 30s;
  return s;
}

std::vector<rules::Rule> rules_of(const std::string& yaml, rules::Phase phase) {
  auto r = rules::parse_rule_documents(yaml, "rules.yaml", phase);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

std::string argv_last(const rules::RuleItem& item) { return item.actions.at(0).command().back(); }

TEST(Plan, EveryKindOfVmGetsItsPromiseBeforeAnyGuestIsTouched) {
  auto p = make_plan(spec(),
                     {vm_info(vm("db")), vm_info(vm("web").no_agent()), vm_info(vm("batch").is_paused()),
                      vm_info(vm("archive").stopped())},
                     {}, {}, storage({"db", "web", "batch", "archive"}));
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->vms.size(), 4u);
  EXPECT_EQ(p->vms[0].promised, Consistency::kFileSystemConsistent);
  EXPECT_EQ(p->vms[0].freeze, FreezeKind::kBuiltinRules);
  ASSERT_EQ(p->vms[0].volumes.size(), 1u) << "cloud-init disks are not snapshotted";
  EXPECT_EQ(p->vms[0].volumes[0].snapshot_class, "csi-snap") << "the only class of the claim's driver";
  EXPECT_EQ(p->vms[0].volumes[0].snapshot_name, "nightly-db-root");
  EXPECT_EQ(p->vms[1].promised, Consistency::kCrashConsistent);
  EXPECT_THAT(p->vms[1].reason, HasSubstr("guest agent not connected"));
  EXPECT_FALSE(p->vms[1].freezes());
  EXPECT_EQ(p->vms[2].promised, Consistency::kCrashConsistent);
  EXPECT_THAT(p->vms[2].reason, HasSubstr("paused"));
  EXPECT_EQ(p->vms[3].promised, Consistency::kOffline);
}

TEST(Plan, NoAgentFollowsOnNoAgent) {
  auto s = spec();
  s.on_no_agent = OnNoAgent::kSkip;
  auto p = make_plan(s, {vm_info(vm("web").no_agent())}, {}, {}, storage({"web"}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->vms[0].planned, VmPhase::kSkipped);
  s.on_no_agent = OnNoAgent::kFail;
  p = make_plan(s, {vm_info(vm("web").no_agent())}, {}, {}, storage({"web"}));
  EXPECT_EQ(p->vms[0].planned, VmPhase::kFailed);
  EXPECT_THAT(p->vms[0].reason, HasSubstr("--on-no-agent fail"));
}

TEST(Plan, MissingClaimsAndSnapshotClassesAreNamed) {
  auto p = make_plan(spec(), {vm_info(vm("db"))}, {}, {}, storage({}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->vms[0].planned, VmPhase::kFailed);
  EXPECT_THAT(p->vms[0].reason, HasSubstr("PersistentVolumeClaim prod/db-root not found"));
  auto c = storage({"db"});
  c.classes_by_driver["csi.example.com"].push_back("csi-snap-2");
  c.class_driver["csi-snap-2"] = "csi.example.com";
  p = make_plan(spec(), {vm_info(vm("db"))}, {}, {}, c);
  EXPECT_THAT(p->vms[0].reason, HasSubstr("no VolumeSnapshotClass for this driver"));
  auto s = spec();
  s.snapshot_class = "nope";
  EXPECT_FALSE(make_plan(s, {vm_info(vm("db"))}, {}, {}, c));
}

TEST(Plan, KvbackupOwnsTheAutoThawOfBuiltinFreezes) {
  // KubeVirt's hook, and one with a timeout shorter than the freeze deadline allows.
  auto p = make_plan(spec(),
                     {vm_info(vm("db").hook(R"(["/usr/bin/virt-freezer", "--freeze", "--name", "db", "--namespace", "prod"])")),
                      vm_info(vm("short").hook(R"(["/usr/bin/virt-freezer", "--freeze", "--name", "short", "--namespace", "prod", "--unfreezeTimeoutSeconds", "1"])"))},
                     {}, {}, storage({"db", "short"}));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(argv_last(p->vms[0].pre[0]), "--unfreezeTimeoutSeconds=90");
  EXPECT_EQ(p->vms[0].auto_thaw, 90s);
  auto cmd = p->vms[1].pre[0].actions[0].command();
  EXPECT_EQ(std::count(cmd.begin(), cmd.end(), "1"), 0) << "the short timeout is gone";
  EXPECT_EQ(cmd.back(), "--unfreezeTimeoutSeconds=90");
  EXPECT_EQ(p->vms[1].auto_thaw, 90s);
}

const char* kPreShort = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "/usr/bin/virt-freezer --freeze --name db --namespace prod --unfreezeTimeoutSeconds 1"}
)";
const char* kPost = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "/usr/bin/virt-freezer --unfreeze --name db --namespace prod"}
)";

TEST(Plan, ACustomFreezeWithAShortAutoThawIsRaisedAndSaysSo) {
  auto s = spec();
  s.rules = RulesMode::kCustom;
  auto p = make_plan(s, {vm_info(vm("db"))}, rules_of(kPreShort, rules::Phase::kPre), rules_of(kPost, rules::Phase::kPost),
                     storage({"db"}));
  ASSERT_TRUE(p) << p.error().message;
  const auto& vm = p->vms[0];
  EXPECT_EQ(vm.freeze, FreezeKind::kCustomRules);
  EXPECT_EQ(vm.promised, Consistency::kFileSystemConsistent);
  // Still run by sh -c, as Stork does, with the words quoted.
  auto cmd = vm.pre[0].actions[0].command();
  ASSERT_EQ(cmd.size(), 3u);
  EXPECT_EQ(cmd[0], "sh");
  EXPECT_THAT(cmd[2], HasSubstr("--unfreezeTimeoutSeconds=90"));
  EXPECT_THAT(cmd[2], ::testing::Not(HasSubstr("Seconds 1")));
  EXPECT_EQ(vm.auto_thaw, 90s);
  bool said = false;
  for (const auto& n : vm.notes) said = said || n.find("raised it to 90") != std::string::npos;
  EXPECT_TRUE(said) << "the plan says what it changed";
}

TEST(Plan, APreRuleThatRulesCheckWouldFlagPromisesNoFileSystemConsistency) {
  const char* freeze_then_unfreeze = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "/usr/bin/virt-freezer --freeze --name db --namespace prod"}
      - {type: command, value: "/usr/bin/virt-freezer --unfreeze --name db --namespace prod"}
)";
  auto s = spec();
  s.rules = RulesMode::kCustom;
  auto p = make_plan(s, {vm_info(vm("db"))}, rules_of(freeze_then_unfreeze, rules::Phase::kPre),
                     rules_of(kPost, rules::Phase::kPost), storage({"db"}));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->vms[0].freeze, FreezeKind::kCustomRules) << "the user's rule still runs";
  EXPECT_EQ(p->vms[0].promised, Consistency::kCrashConsistent);
  EXPECT_THAT(p->vms[0].reason, HasSubstr("--unfreeze in the pre-exec phase"));
}

TEST(Plan, ApplicationItemsOfCustomRulesRunOnceAroundTheFreezes) {
  const char* pre = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {app: mysql}
    container: mysql
    actions: [{type: command, background: true, value: "mysql -e 'flush tables with read lock; system ${WAIT_CMD};'"}]
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions: [{type: command, value: "/usr/bin/virt-freezer --freeze --name db --namespace prod"}]
)";
  auto s = spec();
  s.rules = RulesMode::kCustom;
  auto p = make_plan(s, {vm_info(vm("db"))}, rules_of(pre, rules::Phase::kPre), rules_of(kPost, rules::Phase::kPost),
                     storage({"db"}));
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->app_pre.size(), 1u);
  EXPECT_EQ(p->app_pre[0].items.size(), 1u);
  EXPECT_EQ(p->vms[0].pre.size(), 1u) << "only the VM's own item runs on its pod";
}

}  // namespace
}  // namespace kvb::backup
