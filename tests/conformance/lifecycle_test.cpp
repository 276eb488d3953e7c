// Conformance of KubeVirt's lifecycle subresources (issue 15 item 11, the VM
// start/stop/restart and VMI pause/unpause of subresources.kubevirt.io/v1),
// proven with real clients: kubectl (`kubectl replace --raw` is a PUT) and the
// official Python client (tests/conformance/controllers_client.py put/watch).
// A missing client FAILS these tests. Upstream: kubevirt pkg/virt-api/rest/
// lifecycle.go (answers), pkg/virt-controller/watch/vm/vm.go syncRunStrategy
// (what the requests do). The last case is kvbackup's own answer to a VM paused
// through the API: crash-consistent, never a freeze.
#include "common/subprocess.h"
#include "kube/object.h"
#include "tests/backup/backup_fixture.h"
#include "tests/conformance/real_clients.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

const char* kScenario = R"(
kubevirtVersion: "1.8"
fsFreezePollInterval: 200ms
snapshotClasses:
  - {name: fast, driver: csi.testcluster.kvbackup.io, cutLatency: 50ms, readyLatency: 50ms}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
      - name: off
        running: false
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
)";

const std::string kSub = "/apis/subresources.kubevirt.io/v1/namespaces/prod/";

class Lifecycle : public RealClients {
 protected:
  Lifecycle() : RealClients(kScenario) {}

  // kubectl's PUT of a subresource (an empty options object).
  ProcessResult put(const std::string& path) { return kubectl({"replace", "--raw", kSub + path, "-f", "-"}, "{}"); }
  std::string get(const std::string& what, const std::string& jsonpath) {
    auto r = kubectl({"get", what, "-n", "prod", "-o", "jsonpath=" + jsonpath});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  void wait_for(const std::string& what, const std::string& jsonpath, const std::string& value) {
    auto r = kubectl({"wait", "-n", "prod", what, "--for=jsonpath=" + jsonpath + "=" + value, "--timeout=40s"});
    ASSERT_EQ(r.exit_code, 0) << what << " " << jsonpath << " never became " << value << ": " << r.err
                              << "\nnow: " << get(what, jsonpath);
  }
  // The Python client's PUT: HTTP status, and the Status message of an error.
  std::pair<int64_t, std::string> py_put(const std::string& path, const std::string& body = "") {
    json::value v = python({"put", tc_->kubeconfig().string(), kSub + path, body});
    const auto* st = v.is_object() ? v.as_object().if_contains("status") : nullptr;
    return {st && st->is_int64() ? st->as_int64() : -1, std::string(kube::str_at(v, {"body", "message"}))};
  }
  std::string list_rv(const std::string& path) {
    return std::string(kube::str_at(python({"rv", tc_->kubeconfig().string(), path}), {"resourceVersion"}));
  }

};

std::string vm_yaml(const std::string& name, const std::string& strategy) {
  return "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: " + name + ", namespace: prod}\nspec:\n"
         "  runStrategy: " + strategy + "\n"
         "  template:\n    spec:\n      domain: {devices: {}, resources: {requests: {memory: 1Gi}}}\n"
         "      volumes: [{name: containerdisk, containerDisk: {image: quay.io/containerdisks/fedora:40}}]\n";
}

TEST_F(Lifecycle, StopAndStartOfAnAlwaysVmFlipItsRunStrategyAndTheSameRequestTwiceIsAConflict) {
  wait_for("vm/db", "{.status.printableStatus}", "Running");
  auto [code, msg] = py_put("virtualmachines/db/stop");
  EXPECT_EQ(code, 202) << msg;
  EXPECT_EQ(get("vm/db", "{.spec.runStrategy}"), "Halted");
  wait_for("vm/db", "{.status.printableStatus}", "Stopped");
  EXPECT_NE(kubectl({"get", "vmi/db", "-n", "prod"}).exit_code, 0) << "the VMI is gone";

  auto again = put("virtualmachines/db/stop");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"db\": VM is not running"));
  EXPECT_EQ(py_put("virtualmachines/db/stop").first, 409);

  auto start = put("virtualmachines/db/start");
  ASSERT_EQ(start.exit_code, 0) << start.err;
  EXPECT_EQ(get("vm/db", "{.spec.runStrategy}"), "Always");
  wait_for("vm/db", "{.status.printableStatus}", "Running");
  auto twice = py_put("virtualmachines/db/start");
  EXPECT_EQ(twice.first, 409);
  EXPECT_THAT(twice.second, HasSubstr("VM is already running"));

  auto missing = py_put("virtualmachines/nope/start");
  EXPECT_EQ(missing.first, 404);
  EXPECT_EQ(missing.second, "virtualmachine.kubevirt.io \"nope\" not found");
}

TEST_F(Lifecycle, RestartReplacesTheVmiThroughAStateChangeRequest) {
  wait_for("vm/db", "{.status.printableStatus}", "Running");
  std::string old_uid = get("vmi/db", "{.metadata.uid}");
  auto bad = py_put("virtualmachines/db/restart", R"({"gracePeriodSeconds": 5})");
  EXPECT_EQ(bad.first, 400);
  EXPECT_EQ(bad.second, "For force restart, only gracePeriod=0 is supported for now");

  std::string rv = list_rv("/apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances");
  auto r = put("virtualmachines/db/restart");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The watch sees the old VMI go and a new one (a new uid) come.
  json::value w = python({"watch", tc_->kubeconfig().string(), "/apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances",
                          rv, "metadata.name", "db", "20", "ADDED"});
  const auto* evs = kube::array_at(w, {"events"});
  ASSERT_TRUE(evs && !evs->empty()) << json::serialize(w);
  bool deleted = false;
  for (const auto& e : *evs) deleted = deleted || (kube::str_at(e, {"type"}) == "DELETED" && kube::str_at(e, {"object", "metadata", "uid"}) == old_uid);
  EXPECT_TRUE(deleted) << json::serialize(w);
  std::string new_uid(kube::str_at(evs->back(), {"object", "metadata", "uid"}));
  EXPECT_NE(new_uid, old_uid);
  wait_for("vmi/db", "{.status.phase}", "Running");
  EXPECT_EQ(get("vmi/db", "{.metadata.uid}"), new_uid);
  EXPECT_EQ(get("vm/db", "{.spec.runStrategy}"), "Always");
  EXPECT_EQ(get("vm/db", "{.status.stateChangeRequests}"), "") << "the controller removes requests it carried out";

  auto halted = put("virtualmachines/off/restart");
  EXPECT_NE(halted.exit_code, 0);
  EXPECT_THAT(halted.err, HasSubstr("RunStategy Halted does not support manual restart requests"));
}

TEST_F(Lifecycle, ManualAndRerunOnFailureVmsKeepTheirStrategyAndStartOrStopOnlyByRequest) {
  apply(vm_yaml("man", "Manual"));
  wait_for("vm/man", "{.status.printableStatus}", "Stopped");
  EXPECT_NE(kubectl({"get", "vmi/man", "-n", "prod"}).exit_code, 0);
  auto start = put("virtualmachines/man/start");
  ASSERT_EQ(start.exit_code, 0) << start.err;
  wait_for("vm/man", "{.status.printableStatus}", "Running");
  EXPECT_EQ(get("vm/man", "{.spec.runStrategy}"), "Manual");
  auto stop = put("virtualmachines/man/stop");
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  wait_for("vm/man", "{.status.printableStatus}", "Stopped");
  EXPECT_EQ(get("vm/man", "{.spec.runStrategy}"), "Manual");
  EXPECT_THAT(put("virtualmachines/man/stop").err, HasSubstr("VM is not running"));

  apply(vm_yaml("rerun", "RerunOnFailure"));
  wait_for("vm/rerun", "{.status.printableStatus}", "Running");
  ASSERT_EQ(put("virtualmachines/rerun/stop").exit_code, 0);
  wait_for("vm/rerun", "{.status.printableStatus}", "Stopped");
  EXPECT_EQ(get("vm/rerun", "{.spec.runStrategy}"), "RerunOnFailure");
  EXPECT_EQ(get("vm/rerun", "{.status.runStrategy}"), "RerunOnFailure");
  ASSERT_EQ(put("virtualmachines/rerun/start").exit_code, 0);
  wait_for("vm/rerun", "{.status.printableStatus}", "Running");

  apply(vm_yaml("always", "Always"));
  auto refused = put("virtualmachines/always/start");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("VM is already running"));
}

TEST_F(Lifecycle, PauseIsSeenOnTheVmiAndTheVmAndAPausedVmiCannotBeFrozen) {
  wait_for("vm/db", "{.status.printableStatus}", "Running");
  auto p = py_put("virtualmachineinstances/db/pause");
  EXPECT_EQ(p.first, 200) << p.second;
  auto w = kubectl({"wait", "-n", "prod", "vmi/db", "--for=condition=Paused", "--timeout=20s"});
  EXPECT_EQ(w.exit_code, 0) << w.err;
  EXPECT_EQ(get("vmi/db", "{.status.conditions[?(@.type==\"Paused\")].reason}"), "PausedByUser");
  EXPECT_EQ(get("vmi/db", "{.status.conditions[?(@.type==\"Ready\")].status}"), "False");
  wait_for("vm/db", "{.status.printableStatus}", "Paused");
  w = kubectl({"wait", "-n", "prod", "vm/db", "--for=condition=Paused", "--timeout=20s"});
  EXPECT_EQ(w.exit_code, 0) << w.err;

  auto twice = py_put("virtualmachineinstances/db/pause");
  EXPECT_EQ(twice.first, 409);
  EXPECT_THAT(twice.second, HasSubstr("VMI is already paused"));
  // virt-api passes the freeze on; the agent of a suspended domain is unreachable.
  json::value fr = python({"freeze", tc_->kubeconfig().string(), "prod", "db"});
  EXPECT_EQ(kube::int_at(fr, {"status"}).value_or(0), 500) << json::serialize(fr);
  EXPECT_EQ(tc_->vm_state("prod", "db").at("freezes").as_int64(), 0);

  auto un = put("virtualmachineinstances/db/unpause");
  ASSERT_EQ(un.exit_code, 0) << un.err;
  wait_for("vm/db", "{.status.printableStatus}", "Running");
  EXPECT_EQ(get("vmi/db", "{.status.conditions[?(@.type==\"Paused\")].status}"), "");
  auto again = put("virtualmachineinstances/db/unpause");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("VMI is not paused"));

  auto stopped = py_put("virtualmachineinstances/off/pause");
  EXPECT_EQ(stopped.first, 404);
  EXPECT_EQ(stopped.second, "virtualmachineinstance.kubevirt.io \"off\" not found");
}

TEST_F(Lifecycle, TheSubresourcesAreDiscoverable) {
  auto r = kubectl({"get", "--raw", "/apis/subresources.kubevirt.io/v1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* sub : {"virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart",
                          "virtualmachineinstances/pause", "virtualmachineinstances/unpause"}) {
    EXPECT_THAT(r.out, HasSubstr(std::string("\"") + sub + "\""));
  }
}

// kvbackup and a VM paused through the API: it cannot be frozen (the agent of
// a suspended domain does not answer), so the backup promises and records
// CrashConsistent with the reason, never FileSystemConsistent, and asks for no
// freeze; once unpaused the same VM is backed up file-system-consistent.
TEST(LifecycleBackup, AVmPausedThroughTheApiIsBackedUpCrashConsistentWithoutAFreeze) {
  ASSERT_TRUE(kubectl_available());
  BackupFixture f(kScenario);
  auto kc = [&](std::vector<std::string> args, const std::string& in = {}) {
    auto r = run_kubectl(f.tc.kubeconfig(), args, in);
    EXPECT_TRUE(r.has_value());
    return r ? *r : ProcessResult{};
  };
  auto w = kc({"wait", "-n", "prod", "vm/db", "--for=condition=Ready", "--timeout=30s"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto p = kc({"replace", "--raw", kSub + "virtualmachineinstances/db/pause", "-f", "-"}, "{}");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  w = kc({"wait", "-n", "prod", "vmi/db", "--for=condition=Paused", "--timeout=20s"});
  ASSERT_EQ(w.exit_code, 0) << w.err;

  auto rec = f.run(f.spec("paused"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& db = f.vm(*rec, "db");
  EXPECT_EQ(db.consistency, record::Consistency::kCrashConsistent);
  EXPECT_THAT(db.reason, HasSubstr("paused"));
  EXPECT_EQ(db.phase, record::VmPhase::kCompleted);
  EXPECT_EQ(f.tc.vm_state("prod", "db").at("freezes").as_int64(), 0);

  auto u = kc({"replace", "--raw", kSub + "virtualmachineinstances/db/unpause", "-f", "-"}, "{}");
  ASSERT_EQ(u.exit_code, 0) << u.err;
  w = kc({"wait", "-n", "prod", "vm/db", "--for=condition=Ready", "--timeout=20s"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto after = f.run(f.spec("unpaused"));
  ASSERT_TRUE(after) << after.error().message;
  f.expect_truthful(*after);
  EXPECT_EQ(f.vm(*after, "db").consistency, record::Consistency::kFileSystemConsistent) << f.vm(*after, "db").reason;
}

}  // namespace
}  // namespace kvb::testing
