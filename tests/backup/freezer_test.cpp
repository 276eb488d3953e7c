// The freezer against a fake guest (tests/backup/fake_guest.h): what it does
// with the holds, the post rule, an abandoned freeze and a thaw it cannot
// confirm — in milliseconds, with no cluster. The same paths run end to end
// against the test cluster in tests/adversarial.
#include "backup/freezer.h"
#include "backup/plan.h"
#include "rules/parse.h"
#include "tests/backup/fake_guest.h"
#include "tests/backup/vm_shapes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>


namespace kvb::backup {
namespace {
using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct Rig {
  fake::Guest guest;
  BackupSpec spec;
  std::unique_ptr<Freezer> freezer;
  Rig() {
    spec.name = "b";
    spec.freeze_deadline = 200ms;
    spec.thaw_retry_budget = 300ms;
    spec.late_freeze_bound = 2s;
    freezer = std::make_unique<Freezer>(std::make_shared<fake::PodExec>(guest), std::make_shared<fake::FreezeApi>(guest), spec);
  }
};

std::vector<rules::RuleItem> items(const std::string& yaml, rules::Phase phase, const kubevirt::VmInfo& vm) {
  auto r = rules::parse_rule_documents(yaml, "rules.yaml", phase);
  if (!r) throw std::runtime_error(r.error().message);
  std::vector<rules::RuleItem> out;
  for (auto item : r->at(0).items) {
    item.pod_namespace = vm.ns;
    item.pod_name = vm.pod_name();
    out.push_back(item);
  }
  return out;
}

VmPlan custom_plan(const std::string& pre, const std::string& post) {
  VmPlan p;
  p.vm = vm_info(vm("db"));
  p.freeze = FreezeKind::kCustomRules;
  p.pre = items(pre, rules::Phase::kPre, p.vm);
  p.post = items(post, rules::Phase::kPost, p.vm);
  return p;
}

const char* kFreeze = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "/usr/bin/virt-freezer --freeze --name db --namespace prod"}
)";
const char* kThaw = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "/usr/bin/virt-freezer --unfreeze --name db --namespace prod"}
)";

TEST(Freezer, EveryWaitCmdHoldIsKeptUntilTheThaw) {
  Rig r;
  const char* two_holds = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, background: true, value: "lock-a ${WAIT_CMD}"}
      - {type: command, background: true, value: "lock-b ${WAIT_CMD}"}
      - {type: command, value: "/usr/bin/virt-freezer --freeze --name db --namespace prod"}
)";
  auto plan = custom_plan(two_holds, kThaw);
  auto f = r.freezer->freeze(plan, {});
  ASSERT_TRUE(f.frozen()) << f.reason;
  size_t held = 0;
  for (const auto& b : f.background) held += b->size();
  EXPECT_EQ(held, 2u) << "both holds are kept through the freeze window";
  auto t = r.freezer->thaw(plan, f);
  EXPECT_TRUE(t.ok) << t.reason;
  size_t released = 0;
  for (const auto& e : f.executions) released += e.command.size() == 3 && e.command[2].find("lock-") != std::string::npos;
  EXPECT_EQ(released, 2u) << "both holds are released after the thaw, and recorded";
}

TEST(Freezer, APreRuleThatUnfreezesAgainIsNotAFreeze) {
  Rig r;
  const char* both = R"(
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
  auto plan = custom_plan(both, kThaw);
  auto f = r.freezer->freeze(plan, {});
  EXPECT_FALSE(f.frozen());
  EXPECT_THAT(f.reason, HasSubstr("unfroze this VM again"));
  EXPECT_TRUE(r.freezer->thaw(plan, f).ok);
}

TEST(Freezer, APostRuleThatDoesNotThawIsFollowedByKvbackupsOwnThaw) {
  Rig r;
  const char* noop = R"(
apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {vm.kubevirt.io/name: db}
    container: compute
    actions:
      - {type: command, value: "true"}
)";
  auto plan = custom_plan(kFreeze, noop);
  auto f = r.freezer->freeze(plan, {});
  ASSERT_TRUE(f.frozen());
  auto t = r.freezer->thaw(plan, f);
  EXPECT_TRUE(t.ok) << t.reason;
  EXPECT_FALSE(r.guest.is_frozen()) << "kvbackup thawed the guest the rule left frozen";
  ASSERT_FALSE(t.problems.empty());
  EXPECT_THAT(t.problems[0], HasSubstr("did not confirm the thaw"));
}

TEST(Freezer, AnAbandonedFreezeThatLandsLaterIsThawedAgain) {
  Rig r;
  r.guest.hold_freezes = true;            // the freeze exec is slower than --freeze-deadline
  r.guest.land_on_first_unfreeze = true;  // and lands just after kvbackup's first thaw
  auto plan = custom_plan(kFreeze, kThaw);
  auto f = r.freezer->freeze(plan, {});
  EXPECT_FALSE(f.frozen());
  ASSERT_TRUE(f.may_land_late()) << "the still-running freeze is watched";
  auto t = r.freezer->thaw(plan, f);
  EXPECT_TRUE(t.ok) << t.reason;
  EXPECT_FALSE(r.guest.is_frozen()) << "the late freeze was thawed";
  EXPECT_EQ(r.guest.freezes, 1);
}

TEST(Freezer, AThawThatCannotBeConfirmedIsNeverReportedDone) {
  Rig r;
  auto plan = custom_plan(kFreeze, kThaw);
  auto f = r.freezer->freeze(plan, {});
  ASSERT_TRUE(f.frozen());
  r.guest.failing_unfreezes = 1000;  // every unfreeze fails (a 401 on every call, say)
  auto t = r.freezer->thaw(plan, f);
  EXPECT_FALSE(t.ok);
  EXPECT_FALSE(t.thawed_at) << "no thawedAt for a thaw that did not happen";
  EXPECT_TRUE(r.guest.is_frozen());
}

TEST(Freezer, TheHoldCheckSeesAGuestThatThawedBeforeTheThaw) {
  Rig r;
  auto plan = custom_plan(kFreeze, kThaw);
  auto f = r.freezer->freeze(plan, {});
  ASSERT_TRUE(f.frozen());
  EXPECT_EQ(r.freezer->check_held(plan).state, kubevirt::FreezeState::kFrozen);
  {
    std::lock_guard l(r.guest.mu);
    r.guest.frozen = false;  // an auto-thaw
  }
  EXPECT_EQ(r.freezer->check_held(plan).state, kubevirt::FreezeState::kThawed);
  EXPECT_TRUE(r.freezer->thaw(plan, f).ok);
}

}  // namespace
}  // namespace kvb::backup
