// The adversarial review, part four: a restore killed with SIGKILL halfway.
// Its record is its journal: `kvbackup recover` completes a restore that had
// started to replace the VM in the way (only the restore can bring it back),
// and rolls back one that had not (nothing of the user's was touched yet).
#include "kube/object.h"
#include "kubevirt/resources.h"
#include "restore/transform.h"
#include "tests/backup/backup_fixture.h"
#include "tests/support/backup_child.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

#include <signal.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";

SpawnedProcess start_restore(TestCluster& tc, const std::string& loc, const std::vector<std::string>& extra) {
  std::vector<std::string> argv{kvbackup_binary(), "--kubeconfig", tc.kubeconfig().string(), "restore", "create", "r1",
                                "--from-backup", "nightly", "--location", loc};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = spawn_process(argv, environment_with({}), {});
  if (!child) throw std::runtime_error(child.error().message);
  ::close(child->stdin_fd);
  return *child;
}

// Every object carrying the restore's label is named in its record.
void expect_everything_listed(BackupFixture& f, const boost::json::object& rec) {
  std::set<std::string> listed;
  for (const auto& vm : rec.at("vms").as_array()) {
    for (const auto& c : vm.at("created").as_array()) {
      listed.insert(std::string(kube::str_at(c, {"resource"})) + " " + std::string(kube::str_at(c, {"name"})));
    }
  }
  kube::ListOptions lo;
  lo.label_selector = std::string(restore::kRestoreLabel) + "=r1";
  for (const auto* ref : {&kube::resources::kPersistentVolumeClaims, &kube::resources::kVolumeSnapshots, &kubevirt::kVirtualMachines}) {
    auto list = f.tc.client()->list(*ref, "", lo);
    ASSERT_TRUE(list) << list.error().message;
    for (const auto& o : list->items) {
      EXPECT_TRUE(listed.count(ref->resource + " " + std::string(kube::name_of(o)))) << "unlisted: " << kube::name_of(o);
    }
  }
}

TEST(AdversarialRestore, KilledWhileReplacingTheVmInTheWayRecoverCompletesIt) {
  BackupFixture f(kScenario);
  auto b = f.run(f.spec("nightly"));
  ASSERT_TRUE(b && b->phase == record::BackupPhase::kCompleted);
  std::string loc = f.location_dir.string();
  // The restore stops the VM in the way, then waits for its VMI to go: block that wait.
  f.tc.add_fault(R"({"type":"latency","verb":"watch","resource":"virtualmachineinstances","delay":"60s"})");
  auto child = start_restore(f.tc, loc, {"--existing", "replace"});
  std::string err;
  bool replacing = wait_for_lines(child.stderr_fd, ": Replacing", 1, err);
  ::kill(child.pid, SIGKILL);
  reap(child);
  ASSERT_TRUE(replacing) << err;
  f.tc.clear_faults();

  auto r = run_kvbackup(f.tc, {"recover", "--location", loc});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("restore r1: completed"));
  auto rec = boost::json::parse(run_kvbackup(f.tc, {"restore", "describe", "r1", "--location", loc, "-o", "json"}).out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Completed");
  const auto& vm = rec.at("vms").as_array()[0].as_object();
  EXPECT_EQ(vm.at("phase").as_string(), "Completed");
  EXPECT_FALSE(vm.at("replaced").as_array().empty());
  auto restored = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  ASSERT_TRUE(restored) << "the VM was brought back";
  EXPECT_EQ(kube::label_of(*restored, restore::kRestoreLabel), "r1");
  expect_everything_listed(f, rec);
}

TEST(AdversarialRestore, KilledBeforeTouchingTheVmInTheWayRecoverRollsItBack) {
  BackupFixture f(kScenario);
  auto b = f.run(f.spec("nightly"));
  ASSERT_TRUE(b && b->phase == record::BackupPhase::kCompleted);
  std::string loc = f.location_dir.string();
  auto original = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  ASSERT_TRUE(original);
  // The restored claims are made, then the restore waits for them to bind: block that wait.
  f.tc.add_fault(R"({"type":"latency","verb":"watch","resource":"persistentvolumeclaims","delay":"60s"})");
  auto child = start_restore(f.tc, loc, {"--existing", "replace"});
  std::string err;
  bool creating = wait_for_lines(child.stderr_fd, ": Creating", 1, err);
  // The claim exists once the restore waits for it to bind.
  ASSERT_TRUE(creating) << err;
  kube::ListOptions lo;
  lo.label_selector = std::string(restore::kRestoreLabel) + "=r1";
  ::kill(child.pid, SIGKILL);
  reap(child);
  f.tc.clear_faults();

  auto r = run_kvbackup(f.tc, {"recover", "--location", loc});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("restore r1: rolled back prod/db"));
  auto rec = boost::json::parse(run_kvbackup(f.tc, {"restore", "describe", "r1", "--location", loc, "-o", "json"}).out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Failed");
  auto left = f.tc.client()->list(kube::resources::kPersistentVolumeClaims, "prod", lo);
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->items.empty()) << "the half-made claims are gone";
  auto vm = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  ASSERT_TRUE(vm) << "the VM in the way was never touched";
  EXPECT_EQ(kube::uid_of(*vm), kube::uid_of(*original));
}

}  // namespace
}  // namespace kvb::testing
