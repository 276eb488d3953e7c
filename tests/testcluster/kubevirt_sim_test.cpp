// The test cluster's KubeVirt simulation, checked against the reference facts
// (../shared/reference/kubevirt-freeze-and-rules.md) through the real client.
#include "kube/api_status.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const kube::ResourceRef kVmi{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};
const kube::ResourceRef kVm{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
const kube::ResourceRef kVmiSub{"subresources.kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};

std::string scenario(const std::string& version, const std::string& vms) {
  return "kubevirtVersion: \"" + version + "\"\nfsFreezePollInterval: 100ms\nlauncherFreezeDeadline: 300ms\n"
         "snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 300ms}]\n"
         "storageClasses: [{name: fast, provisioner: csi.example.com}]\n"
         "namespaces:\n  - name: prod\n    vms:\n" + vms;
}

const char* kDb =
    "      - name: db\n        volumes:\n          - {name: rootdisk, type: dataVolume, size: 10Gi, storageClass: fast}\n"
    "          - {name: data, type: persistentVolumeClaim, size: 50Gi, storageClass: fast}\n";

std::vector<std::string> freezer(const std::string& mode, const std::string& vm, const std::string& ns = "prod") {
  return {"/usr/bin/virt-freezer", "--" + mode, "--name", vm, "--namespace", ns};
}

json::object wait_vmi(TestCluster& tc, const std::string& vm, const std::function<bool(const json::object*)>& pred) {
  auto r = kube::wait_for_object(tc.client(), kVmi, "prod", vm, pred, 20s);
  EXPECT_TRUE(r) << r.error().describe();
  return r ? *r : json::object();
}

bool fs_frozen(const json::object* o) { return o && kube::str_at(*o, {"status", "fsFreezeStatus"}) == "frozen"; }
bool fs_thawed(const json::object* o) { return o && kube::str_at(*o, {"status", "fsFreezeStatus"}).empty(); }

TEST(SimLauncherPod, HasTheRealNameLabelsOwnerAndHookAnnotations) {
  TestCluster tc(scenario("1.8", kDb));
  auto c = tc.client();
  auto vmi = c->get(kVmi, "prod", "db");
  ASSERT_TRUE(vmi) << vmi.error().describe();
  std::string pod_name = tc.launcher_pod("prod", "db");
  EXPECT_TRUE(std::regex_match(pod_name, std::regex("virt-launcher-db-[a-z0-9]{5}"))) << pod_name;
  auto pod = c->get(kube::resources::kPods, "prod", pod_name);
  ASSERT_TRUE(pod);
  EXPECT_EQ(kube::label_of(*pod, "kubevirt.io"), "virt-launcher");
  EXPECT_EQ(kube::label_of(*pod, "kubevirt.io/created-by"), kube::uid_of(*vmi));
  EXPECT_EQ(kube::label_of(*pod, "vm.kubevirt.io/name"), "db");
  const auto* owners = kube::array_at(*pod, {"metadata", "ownerReferences"});
  ASSERT_TRUE(owners && owners->size() == 1);
  EXPECT_EQ(kube::str_at((*owners)[0], {"kind"}), "VirtualMachineInstance");
  EXPECT_EQ(kube::bool_at((*owners)[0], {"controller"}), true);
  EXPECT_EQ(kube::annotation_of(*pod, "pre.hook.backup.velero.io/container"), "compute");
  EXPECT_EQ(kube::annotation_of(*pod, "pre.hook.backup.velero.io/command"),
            R"(["/usr/bin/virt-freezer", "--freeze", "--name", "db", "--namespace", "prod"])");
  EXPECT_EQ(kube::annotation_of(*pod, "post.hook.backup.velero.io/command"),
            R"(["/usr/bin/virt-freezer", "--unfreeze", "--name", "db", "--namespace", "prod"])");
  EXPECT_EQ(kube::annotation_of(*pod, "pre.hook.backup.velero.io/timeout"), "60s");
  EXPECT_EQ(kube::annotation_of(*pod, "kubectl.kubernetes.io/default-container"), "compute");
  const auto* containers = kube::array_at(*pod, {"spec", "containers"});
  ASSERT_TRUE(containers && containers->size() >= 2);
  EXPECT_EQ(kube::str_at((*containers)[0], {"name"}), "compute");
  EXPECT_TRUE(kube::value_at(*vmi, {"status", "conditions"}));
  bool agent = false;
  for (const auto& cond : *kube::array_at(*vmi, {"status", "conditions"})) {
    agent = agent || (kube::str_at(cond, {"type"}) == "AgentConnected" && kube::str_at(cond, {"status"}) == "True");
  }
  EXPECT_TRUE(agent);
}

TEST(SimLauncherPod, HookTimeoutOnlyFrom18AndSkipBackupHooksRemovesThem) {
  TestCluster tc(scenario("1.7", std::string(kDb) +
                                     "      - name: nohooks\n        annotations: {kubevirt.io/skip-backup-hooks: \"true\"}\n"
                                     "        volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]\n"));
  auto db = tc.client()->get(kube::resources::kPods, "prod", tc.launcher_pod("prod", "db"));
  ASSERT_TRUE(db);
  EXPECT_FALSE(kube::annotation_of(*db, "pre.hook.backup.velero.io/command").empty());
  EXPECT_TRUE(kube::annotation_of(*db, "pre.hook.backup.velero.io/timeout").empty());
  auto nohooks = tc.client()->get(kube::resources::kPods, "prod", tc.launcher_pod("prod", "nohooks"));
  ASSERT_TRUE(nohooks);
  EXPECT_TRUE(kube::annotation_of(*nohooks, "pre.hook.backup.velero.io/command").empty());
  EXPECT_TRUE(kube::annotation_of(*nohooks, "post.hook.backup.velero.io/container").empty());
}

TEST(SimLauncherPod, HostnameLabelIsTheHostnameNotTheVmName) {
  std::string long_name(70, 'a');
  TestCluster tc(scenario("1.8", "      - name: db\n        hostname: database-host\n"
                                 "      - name: web.example.com\n"
                                 "      - name: " + long_name + "\n"));
  auto label = [&](const std::string& vm) {
    auto pod = tc.client()->get(kube::resources::kPods, "prod", tc.launcher_pod("prod", vm));
    return pod ? std::string(kube::label_of(*pod, "vm.kubevirt.io/name")) : std::string("<no pod>");
  };
  EXPECT_EQ(label("db"), "database-host");
  EXPECT_EQ(label("web.example.com"), "web");
  EXPECT_EQ(label(long_name), std::string(63, 'a'));
}

// An exec finds its guest through the launcher pod (an index, not a scan):
// after a restart the new pod reaches the new guest, and fsFreezeStatus (the
// poll skips VMIs that already show their state) follows the freeze both ways.
TEST(SimFreezer, AnExecReachesTheGuestOfARestartedVm) {
  TestCluster tc(scenario("1.8", kDb));
  auto c = tc.client();
  std::string first = tc.launcher_pod("prod", "db");
  ASSERT_TRUE(c->patch(kVm, "prod", "db", kube::PatchType::kMerge, json::parse(R"({"spec":{"runStrategy":"Halted"}})")));
  ASSERT_TRUE(c->patch(kVm, "prod", "db", kube::PatchType::kMerge, json::parse(R"({"spec":{"runStrategy":"Always"}})")));
  std::string second = tc.launcher_pod("prod", "db");
  ASSERT_NE(second, "");
  EXPECT_NE(second, first);
  auto r = tc.exec("prod", second, "compute", freezer("freeze", "db"));
  ASSERT_TRUE(r.status) << r.status.error().describe();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(kube::bool_at(tc.vm_state("prod", "db"), {"frozen"}), true);
  wait_vmi(tc, "db", fs_frozen);
  EXPECT_EQ(tc.exec("prod", second, "compute", freezer("unfreeze", "db")).exit_code, 0);
  EXPECT_EQ(kube::bool_at(tc.vm_state("prod", "db"), {"frozen"}), false);
  wait_vmi(tc, "db", fs_thawed);
}

TEST(SimFreezer, FreezeAndThawShowOnTheTimelineAndInFsFreezeStatus) {
  TestCluster tc(scenario("1.8", kDb));
  std::string pod = tc.launcher_pod("prod", "db");
  auto r = tc.exec("prod", pod, "compute", freezer("freeze", "db"));
  ASSERT_TRUE(r.status) << r.status.error().describe();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(R"("msg":"Operation completed successfully")"));
  EXPECT_THAT(r.err, HasSubstr(R"("component":"freezer")"));
  EXPECT_EQ(tc.events("Freeze", "db").size(), 1u);
  EXPECT_EQ(kube::bool_at(tc.vm_state("prod", "db"), {"frozen"}), true);
  wait_vmi(tc, "db", fs_frozen);

  auto t = tc.exec("prod", pod, "compute", freezer("unfreeze", "db"));
  ASSERT_TRUE(t.status);
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_EQ(tc.events("Thaw", "db").size(), 1u);
  EXPECT_EQ(kube::bool_at(tc.vm_state("prod", "db"), {"frozen"}), false);
  wait_vmi(tc, "db", fs_thawed);
  // Unfreeze of a thawed guest is a no-op success; freeze twice is idempotent.
  EXPECT_EQ(tc.exec("prod", pod, "compute", freezer("unfreeze", "db")).exit_code, 0);
  EXPECT_EQ(tc.exec("prod", pod, "compute", freezer("freeze", "db")).exit_code, 0);
  EXPECT_EQ(tc.exec("prod", pod, "compute", freezer("freeze", "db")).exit_code, 0);
  EXPECT_EQ(tc.events("Freeze", "db").size(), 2u);
  EXPECT_EQ(tc.events("Thaw", "db").size(), 1u);
}

TEST(SimFreezer, WorksThroughShDashCAsStorkRunsIt) {
  TestCluster tc(scenario("1.8", kDb));
  auto r = tc.exec("prod", tc.launcher_pod("prod", "db"), "compute",
                   {"sh", "-c", "/usr/bin/virt-freezer --freeze --name db --namespace prod"});
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(tc.events("Freeze", "db").size(), 1u);
}

TEST(SimFreezer, ExitZeroWithoutFreezingWhenThereIsNoAgentOrTheVmIsPaused) {
  TestCluster tc(scenario("1.8", "      - name: noagent\n        agent: none\n      - name: paused\n        paused: true\n"));
  auto none = tc.exec("prod", tc.launcher_pod("prod", "noagent"), "compute", freezer("freeze", "noagent"));
  ASSERT_TRUE(none.status);
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("No guest agent, exiting"));
  auto paused = tc.exec("prod", tc.launcher_pod("prod", "paused"), "compute", freezer("freeze", "paused"));
  ASSERT_TRUE(paused.status);
  EXPECT_EQ(paused.exit_code, 0);
  EXPECT_THAT(paused.err, HasSubstr("VM domain not running, no need to freeze/unfreeze"));
  EXPECT_TRUE(tc.events("Freeze").empty()) << "exit code 0 without a freeze";
  // And the VMI of the agent-less VM has no AgentConnected condition at all.
  auto vmi = tc.client()->get(kVmi, "prod", "noagent");
  ASSERT_TRUE(vmi);
  for (const auto& cond : *kube::array_at(*vmi, {"status", "conditions"})) {
    EXPECT_NE(kube::str_at(cond, {"type"}), "AgentConnected");
  }
}

TEST(SimFreezer, OlderKubeVirtFailsOnAPausedVm) {
  TestCluster tc(scenario("1.5", "      - name: paused\n        paused: true\n"));
  auto r = tc.exec("prod", tc.launcher_pod("prod", "paused"), "compute", freezer("freeze", "paused"));
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.exit_code, 1);
}

TEST(SimFreezer, BadArgumentsFailLikeVirtFreezer) {
  TestCluster tc(scenario("1.8", kDb));
  std::string pod = tc.launcher_pod("prod", "db");
  auto no_mode = tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--name", "db", "--namespace", "prod"});
  EXPECT_EQ(no_mode.exit_code, 1);
  EXPECT_THAT(no_mode.err, HasSubstr("either --freeze or --unfreeze must be set"));
  auto no_ns = tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--freeze", "--name", "db"});
  EXPECT_EQ(no_ns.exit_code, 1);
  EXPECT_THAT(no_ns.err, HasSubstr("both --name and --namespace must be provided"));
  // Another VM's name: the local launcher has no such domain.
  auto other = tc.exec("prod", pod, "compute", freezer("freeze", "web"));
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_THAT(other.err, HasSubstr("Freezing VMI failed"));
  // Both flags: freeze wins.
  auto both = tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--unfreeze", "--freeze", "--name", "db", "--namespace", "prod"});
  EXPECT_EQ(both.exit_code, 0);
  EXPECT_EQ(tc.events("Freeze", "db").size(), 1u);
  EXPECT_TRUE(tc.events("Freeze", "web").empty());
}

TEST(SimFreezer, AutoThawAfterUnfreezeTimeoutSeconds) {
  TestCluster tc(scenario("1.8", kDb));
  auto cmd = freezer("freeze", "db");
  cmd.push_back("--unfreezeTimeoutSeconds=1");
  ASSERT_EQ(tc.exec("prod", tc.launcher_pod("prod", "db"), "compute", cmd).exit_code, 0);
  wait_vmi(tc, "db", fs_frozen);
  wait_vmi(tc, "db", fs_thawed);  // nobody thawed it: the timer did
  auto auto_thaws = tc.events("AutoThaw", "db");
  ASSERT_EQ(auto_thaws.size(), 1u);
  EXPECT_EQ(kube::bool_at(tc.vm_state("prod", "db"), {"frozen"}), false);
}

TEST(SimFreezer, UnresponsiveAgentFailsAfterTheLauncherDeadline) {
  TestCluster tc(scenario("1.8", "      - name: stuck\n        agent: unresponsive\n"));
  auto start = std::chrono::steady_clock::now();
  auto r = tc.exec("prod", tc.launcher_pod("prod", "stuck"), "compute", freezer("freeze", "stuck"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Freezing VMI failed, please make sure guest agent is running and try again"));
  EXPECT_EQ(tc.events("FreezeFailed", "stuck").size(), 1u);
}

TEST(SimFreezer, WindowsVssThawsItselfAfterTenSecondsAndTheUnfreezeFails) {
  TestCluster tc(scenario("1.8", "      - name: win\n        agent: vss10s\n"));
  std::string pod = tc.launcher_pod("prod", "win");
  ASSERT_EQ(tc.exec("prod", pod, "compute", freezer("freeze", "win")).exit_code, 0);
  wait_vmi(tc, "win", fs_frozen);
  wait_vmi(tc, "win", fs_thawed);
  auto auto_thaw = tc.events("AutoThaw", "win");
  ASSERT_EQ(auto_thaw.size(), 1u);
  EXPECT_THAT(std::string(kube::str_at(auto_thaw[0], {"detail"})), HasSubstr("10 s"));
  auto r = tc.exec("prod", pod, "compute", freezer("unfreeze", "win"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("fsfreeze is limited up to 10 seconds"));
  EXPECT_EQ(tc.events("ThawFailed", "win").size(), 1u);
}

TEST(SimSubresource, FreezeApiSemantics) {
  TestCluster tc(scenario("1.8", std::string(kDb) + "      - name: noagent\n        agent: none\n"));
  auto c = tc.client();
  kube::CallOptions once;
  once.retry = false;
  auto no_body = c->subresource("PUT", kVmiSub, "prod", "db", "freeze", std::nullopt, once);
  ASSERT_FALSE(no_body);
  EXPECT_EQ(no_body.error().http_status, 400);
  EXPECT_THAT(no_body.error().message, HasSubstr("Unfreeze timeout in freeze request is not set"));
  auto missing = c->subresource("PUT", kVmiSub, "prod", "ghost", "freeze", json::parse(R"({"unfreezeTimeout":"5m0s"})"), once);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().http_status, 404);
  auto noagent = c->subresource("PUT", kVmiSub, "prod", "noagent", "freeze", json::parse(R"({"unfreezeTimeout":"5m0s"})"), once);
  ASSERT_FALSE(noagent);
  EXPECT_EQ(noagent.error().http_status, 500);
  EXPECT_THAT(noagent.error().message, HasSubstr("QEMU guest agent is not connected"));
  kube::ListOptions lo;
  lo.field_selector = "involvedObject.name=noagent,reason=FreezeError";
  auto events = c->list(kube::resources::kEvents, "prod", lo);
  ASSERT_TRUE(events);
  EXPECT_EQ(events->items.size(), 1u);
  EXPECT_EQ(kube::str_at(events->items[0], {"type"}), "Warning");

  ASSERT_TRUE(c->subresource("PUT", kVmiSub, "prod", "db", "freeze", json::parse(R"({"unfreezeTimeout":"5m0s"})"), once));
  EXPECT_EQ(tc.events("Freeze", "db").size(), 1u);
  ASSERT_TRUE(c->subresource("PUT", kVmiSub, "prod", "db", "unfreeze", std::nullopt, once));
  EXPECT_EQ(tc.events("Thaw", "db").size(), 1u);
  auto info = c->subresource("GET", kVmiSub, "prod", "db", "guestosinfo", std::nullopt, once);
  ASSERT_TRUE(info);
  EXPECT_EQ(kube::str_at(*info, {"os", "id"}), "fedora");
}

}  // namespace
}  // namespace kvb::testing
