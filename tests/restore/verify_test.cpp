// Boot verification (docs/restore.md "Verification"), with simulated guests:
// `kvbackup backup verify` and `restore create --verify` boot a copy of each
// VM in an isolated namespace until its agent connects, report the time, and
// delete the copy. A VM whose agent never connects (scenario `agent: none`,
// which travels with the VM as the template annotation
// testcluster.kvbackup.io/agent) fails with a clear reason. On every path —
// success, failure, Ctrl-C, SIGKILL then `kvbackup recover` — nothing of the
// verification is left: no namespace, no VolumeSnapshotContent, no restore
// record, no journal entry. (The real guest is verified in qemu_cluster_test.)
#include "common/subprocess.h"
#include "kube/object.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const char* kScenario = R"(
storageClasses: [{name: fast, provisioner: csi.example.com}]
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 10ms, readyLatency: 10ms}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, size: 8Mi, storageClass: fast}]}
      - {name: mute, agent: none, volumes: [{name: root, type: dataVolume, size: 8Mi, storageClass: fast}]}
)";

const kube::ResourceRef kVms{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
const kube::ResourceRef kVmis{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};

struct Fixture {
  TempDir scratch;
  std::filesystem::path loc = scratch.path() / "location";
  TestCluster tc{kScenario};

  Fixture() {
    auto b = run_kvbackup(tc, {"backup", "create", "nightly", "-n", "prod", "--location", loc.string()});
    EXPECT_EQ(b.exit_code, 0) << b.out << b.err;
  }
  ProcessResult kvb(std::vector<std::string> args) {
    args.insert(args.end(), {"--location", loc.string()});
    return run_kvbackup(tc, args);
  }
  std::vector<std::string> verify_namespaces() {
    kube::ListOptions o;
    o.label_selector = "kvbackup.io/verify";
    auto l = tc.client()->list(kube::resources::kNamespaces, "", o);
    std::vector<std::string> out;
    if (!l) return {"(list failed)"};
    for (const auto& n : l->items) out.emplace_back(kube::name_of(n));
    return out;
  }
  // Nothing of any verification left, in the cluster or the location.
  void expect_nothing_left() {
    EXPECT_THAT(verify_namespaces(), ::testing::IsEmpty());
    auto contents = tc.client()->list(kube::resources::kVolumeSnapshotContents, "");
    ASSERT_TRUE(contents);
    for (const auto& c : contents->items) {
      EXPECT_THAT(std::string(kube::label_of(c, "kvbackup.io/restore")), ::testing::Not(StartsWith("verify-")))
          << "left: VolumeSnapshotContent " << kube::name_of(c);
    }
    auto vmis = tc.client()->list(kVmis, "");
    ASSERT_TRUE(vmis);
    for (const auto& v : vmis->items) EXPECT_THAT(std::string(kube::namespace_of(v)), ::testing::Not(StartsWith("kvb-verify-")));
    std::error_code ec;
    EXPECT_TRUE(!std::filesystem::exists(loc / "verify") || std::filesystem::is_empty(loc / "verify", ec)) << "a verify journal entry is left";
    if (std::filesystem::exists(loc / "restores")) {
      for (const auto& e : std::filesystem::directory_iterator(loc / "restores")) {
        EXPECT_THAT(e.path().filename().string(), ::testing::Not(StartsWith("verify-"))) << "a verification's restore record is left";
      }
    }
    // The backup's own snapshots are untouched.
    auto snaps = tc.client()->list(kube::resources::kVolumeSnapshots, "prod");
    ASSERT_TRUE(snaps);
    EXPECT_EQ(snaps->items.size(), 2u);
    for (const auto& s : snaps->items) EXPECT_EQ(kube::bool_at(s, {"status", "readyToUse"}), true) << kube::name_of(s);
  }
};

TEST(BackupVerify, BootsEachVmInAnIsolatedNamespaceReportsAndKeepsNothing) {
  Fixture f;
  auto good = f.kvb({"backup", "verify", "nightly", "--vm", "prod/db", "-o", "json"});
  ASSERT_EQ(good.exit_code, 0) << good.out << good.err;
  auto doc = json::parse(good.out);
  const auto& v = doc.at("vms").as_array().at(0);
  EXPECT_EQ(kube::str_at(v, {"vm"}), "prod/db");
  EXPECT_EQ(kube::str_at(v, {"result"}), "Passed");
  EXPECT_GE(v.at("secondsToAgentReady").to_number<double>(), 0.0);
  std::printf("[measure] simulated guest: agent ready %.3f s after the verification copy was created\n",
              v.at("secondsToAgentReady").to_number<double>());
  EXPECT_THAT(std::string(kube::str_at(v, {"namespace"})), StartsWith("kvb-verify-"));
  EXPECT_THAT(good.err, HasSubstr("guest agent ready after"));
  f.expect_nothing_left();

  // The agent never connects: Failed with the reason, exit 1, nothing left.
  auto mute = f.kvb({"backup", "verify", "nightly", "--vm", "prod/mute", "--verify-timeout", "2s"});
  EXPECT_EQ(mute.exit_code, 1) << mute.out << mute.err;
  EXPECT_THAT(mute.out, HasSubstr("prod/mute"));
  EXPECT_THAT(mute.out, HasSubstr("Failed"));
  EXPECT_THAT(mute.out, HasSubstr("the guest agent did not connect within 2.0s (VMI phase Running)"));
  f.expect_nothing_left();

  // Bad input: a VM not in the backup, a bad timeout; nothing is created.
  auto missing = f.kvb({"backup", "verify", "nightly", "--vm", "prod/nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("VM prod/nope is not in backup nightly"));
  auto bad_timeout = f.kvb({"backup", "verify", "nightly", "--verify-timeout", "soon"});
  EXPECT_NE(bad_timeout.exit_code, 0);
  EXPECT_THAT(bad_timeout.err, HasSubstr("--verify-timeout \"soon\""));
  f.expect_nothing_left();
}

TEST(RestoreVerify, RecordsEachVerificationInTheRestoreRecord) {
  Fixture f;
  auto r = f.kvb({"restore", "create", "r1", "--from-backup", "nightly", "--namespace-mapping", "prod:copy", "--create-namespace",
                  "--verify", "--verify-timeout", "3s", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;  // the restore completed; one verification failed
  auto rec = json::parse(r.out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Completed");
  std::map<std::string, json::object> by_vm;
  for (const auto& vm : rec.at("vms").as_array()) {
    ASSERT_TRUE(vm.at("verification").is_object()) << json::serialize(vm);
    by_vm[std::string(kube::str_at(vm, {"name"}))] = vm.at("verification").as_object();
  }
  EXPECT_EQ(by_vm["db"].at("result").as_string(), "Passed");
  EXPECT_EQ(by_vm["db"].at("vm").as_string(), "copy/db");
  EXPECT_GE(by_vm["db"].at("secondsToAgentReady").to_number<double>(), 0.0);
  EXPECT_EQ(by_vm["mute"].at("result").as_string(), "Failed");
  EXPECT_THAT(std::string(by_vm["mute"].at("reason").as_string()), HasSubstr("the guest agent did not connect within 3.0s"));
  // The restored VMs stay; their verification copies are gone.
  EXPECT_TRUE(f.tc.client()->get(kVms, "copy", "db"));
  EXPECT_TRUE(f.tc.client()->get(kVms, "copy", "mute"));
  f.expect_nothing_left();

  auto d = f.kvb({"restore", "describe", "r1"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_THAT(d.out, HasSubstr("Verified: Passed, guest agent ready after"));
  EXPECT_THAT(d.out, HasSubstr("Verified: Failed: the guest agent did not connect within 3.0s"));
}

// Waits (polling with a deadline) until a verification namespace holds a VMI.
bool verification_booting(Fixture& f) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& ns : f.verify_namespaces()) {
      auto vmis = f.tc.client()->list(kVmis, ns);
      if (vmis && !vmis->items.empty()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition, with a deadline
  }
  return false;
}

std::optional<SpawnedProcess> start_verify(Fixture& f) {
  std::vector<std::string> argv{kvbackup_binary(), "--kubeconfig", f.tc.kubeconfig().string(), "backup", "verify", "nightly",
                                "--vm", "prod/mute", "--verify-timeout", "10m", "--location", f.loc.string()};
  auto child = spawn_process(argv, environment_with({}), {});
  EXPECT_TRUE(child) << child.error().message;
  if (!child) return std::nullopt;
  ::close(child->stdin_fd);
  return *child;
}

int reap(SpawnedProcess& child, std::string* err = nullptr) {
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  if (err) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(child.stderr_fd, buf, sizeof buf)) > 0) err->append(buf, static_cast<size_t>(n));
  }
  for (int fd : {child.stdout_fd, child.stderr_fd}) ::close(fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(BackupVerify, CtrlCCleansUpAndAKilledRunIsCleanedByRecover) {
  Fixture f;
  // Ctrl-C while the copy boots: the run deletes what it made before it exits.
  auto child = start_verify(f);
  ASSERT_TRUE(child);
  bool booting = verification_booting(f);
  ::kill(child->pid, SIGINT);
  std::string err;
  int code = reap(*child, &err);
  ASSERT_TRUE(booting) << "no verification copy started within 60 s: " << err;
  EXPECT_EQ(code, 130) << err;
  EXPECT_THAT(err, HasSubstr("interrupted"));
  f.expect_nothing_left();

  // recover leaves a running verification alone; after SIGKILL the namespace
  // stays until recover removes it.
  child = start_verify(f);
  ASSERT_TRUE(child);
  booting = verification_booting(f);
  auto live = f.kvb({"recover"});
  EXPECT_THAT(live.out, HasSubstr("is still running: left alone")) << live.out << live.err;
  EXPECT_EQ(f.verify_namespaces().size(), 1u);
  ::kill(child->pid, SIGKILL);
  reap(*child);
  ASSERT_TRUE(booting);
  EXPECT_EQ(f.verify_namespaces().size(), 1u);
  auto r = f.kvb({"recover"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("removed namespace kvb-verify-"));
  f.expect_nothing_left();
}

}  // namespace
}  // namespace kvb::testing
