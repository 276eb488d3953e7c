// The adversarial review, part two: what a backup leaves in its location and
// in the cluster, and what a hostile file there can make kvbackup do.
#include "backup/journal.h"
#include "backup/recover.h"
#include "kube/object.h"
#include "kubevirt/resources.h"
#include "record/naming.h"
#include "tests/backup/backup_fixture.h"
#include "tests/support/backup_child.h"
#include "tests/support/failing_location.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

namespace kvb::testing {
namespace {
using record::Consistency;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}, {name: ci, type: cloudInitNoCloud}]}
    pods:
      - {name: mysql-0, labels: {app: mysql}, containers: [{name: mysql}]}
)";

// Item 10: a journal entry can only ever thaw. A planted entry naming a
// command and another pod (the 0.1 format) runs nothing of it; recover runs
// virt-freezer --unfreeze in the VM's own launcher pod, and only believes a
// thaw it can confirm.
TEST(Adversarial, APlantedJournalEntryCanOnlyThaw) {
  BackupFixture f(kScenario);
  ::umask(022);
  std::filesystem::create_directories(f.location_dir / "journal");
  std::ofstream(f.location_dir / "journal/evil.json")
      << R"({"backup":"evil","vms":[{"namespace":"prod","name":"db","method":"exec","pod":"mysql-0","container":"mysql","thawCommand":["id"]}]})";
  backup::BackupSpec timing;
  timing.thaw_retry_budget = 500ms;
  auto report = backup::recover(f.tc.client(), *f.location, timing);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0]);
  for (const auto& e : f.tc.events("Exec")) {
    std::string detail(kube::str_at(e, {"detail"}));
    EXPECT_THAT(detail, Not(HasSubstr("mysql-0"))) << "recover ran something in the planted pod";
    EXPECT_THAT(detail, Not(HasSubstr("command=id")));
    EXPECT_THAT(detail, HasSubstr("virt-freezer --unfreeze --name db --namespace prod"));
  }
  EXPECT_FALSE(f.tc.events("Exec").empty());
  EXPECT_FALSE(f.location->exists("journal/evil.json"));
}

TEST(Adversarial, RecoverBelievesOnlyAThawItCanConfirm) {
  BackupFixture f(kScenario);
  auto pod = f.tc.launcher_pod("prod", "db");
  auto frozen = f.tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--freeze", "--name", "db", "--namespace", "prod"});
  ASSERT_EQ(frozen.exit_code, 0) << frozen.err;
  std::filesystem::create_directories(f.location_dir / "journal");
  std::ofstream(f.location_dir / "journal/dead.json")
      << R"({"backup":"dead","uid":"u","vms":[{"namespace":"prod","name":"db","method":"exec"}]})";
  // virt-freezer exits 0 without thawing, and the unfreeze API fails: exit 0 proves nothing.
  f.tc.add_fault(R"({"type":"exec-fail","vm":"db","command":"--unfreeze","exitCode":0,"message":""})");
  f.tc.add_fault(R"({"type":"api-error","code":500,"resource":"virtualmachineinstances/unfreeze"})");
  backup::BackupSpec timing;
  timing.thaw_retry_budget = 500ms;
  auto report = backup::recover(f.tc.client(), *f.location, timing);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.thawed, 0);
  EXPECT_TRUE(f.location->exists("journal/dead.json")) << "an unconfirmed thaw keeps the entry";
  f.tc.clear_faults();
  report = backup::recover(f.tc.client(), *f.location, timing);
  EXPECT_TRUE(report.ok());
  f.expect_nothing_frozen();
  EXPECT_FALSE(f.location->exists("journal/dead.json"));
}

// Item 11: secrets at rest. The VM spec's inline cloud-init user data is a
// secret too; every file kvbackup writes is private, every directory 0700.
TEST(Adversarial, EveryFileOfABackupIsPrivate) {
  BackupFixture f(kScenario);
  ::umask(022);
  // Inline cloud-init user data with a password, as many VM templates have.
  auto vm = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  ASSERT_TRUE(vm) << vm.error().message;
  for (auto& v : vm->at("spec").at("template").at("spec").at("volumes").as_array()) {
    if (v.as_object().contains("cloudInitNoCloud")) {
      v.as_object()["cloudInitNoCloud"] = boost::json::object{{"userData", "#cloud-config\npassword: hunter2\n"}};
    }
  }
  ASSERT_TRUE(f.tc.client()->update(kubevirt::kVirtualMachines, "prod", *vm));
  auto rec = f.run(f.spec("private"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(f.location_dir)) {
    struct stat st {};
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    if (S_ISDIR(st.st_mode)) {
      EXPECT_EQ(st.st_mode & 0777, 0700u) << e.path();
    } else {
      ++files;
      EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
    }
  }
  EXPECT_GT(files, 3u);
  auto record = f.location->get("backups/private/backup.json");
  ASSERT_TRUE(record);
  EXPECT_THAT(*record, Not(HasSubstr("hunter2"))) << "user data belongs in the resources, not the record";
}

// Item 12: the disk fills at the final record write. The record stays
// InProgress, so the journal must stay for recover, and `backup delete` must
// find the backup's snapshots by their labels (the record names none).
TEST(Adversarial, ABackupWhoseFinalRecordWasLostLeaksNothing) {
  BackupFixture f(kScenario);
  FailingLocation full(*f.location, StorageFault::kFinalRecordWrite);
  backup::BackupRunner runner(f.tc.client(), full, f.spec("lost"));
  auto rec = runner.run({});
  ASSERT_FALSE(rec);
  EXPECT_THAT(rec.error().message, HasSubstr("No space left"));
  f.expect_nothing_frozen();
  EXPECT_EQ(f.snapshots_left("lost"), 1u);
  EXPECT_TRUE(f.location->exists("journal/lost.json")) << "the run is not over until its record is";
  auto report = backup::recover(f.tc.client(), *f.location);
  EXPECT_TRUE(report.ok());
  auto stored = record::load_backup_record(*f.location, "lost");
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->phase, record::BackupPhase::kFailed) << "recover finishes the record";
  auto del = run_kvbackup(f.tc, {"backup", "delete", "lost", "--location", f.location_dir.string()});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  EXPECT_THAT(del.err, HasSubstr("deleted 1 VolumeSnapshots"));
  EXPECT_EQ(f.snapshots_left("lost"), 0u);
}

// A run whose lock is lost while it runs (an S3 lock that could not be
// refreshed within its expiry, a lock file someone deleted) may already be
// being recovered by another kvbackup: it freezes no further guest, says
// why per VM, and the record warns; the VM it had finished keeps its verdict.
const char* kThreeVms = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 20ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: a, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
      - {name: b, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
      - {name: c, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";

// A backup of kThreeVms, one VM after the other, whose run lock is held for
// its first check (the first VM's start) and lost from then on.
Result<record::BackupRecord> backup_losing_the_lock(BackupFixture& f, const std::string& name,
                                                    record::ConsistencyGroup group = record::ConsistencyGroup::kNone) {
  FailingLocation losing(*f.location, StorageFault::kRunLockLost);
  auto spec = f.spec(name);
  spec.concurrency = 1;
  spec.consistency_group = group;
  backup::BackupRunner runner(f.tc.client(), losing, spec);
  return runner.run({});
}

TEST(Adversarial, ARunThatLostItsLockFreezesNoFurtherGuest) {
  BackupFixture f(kThreeVms);
  auto rec = backup_losing_the_lock(f, "lost-lock");
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(rec->phase, record::BackupPhase::kPartiallyFailed);
  ASSERT_EQ(rec->vms.size(), 3u);
  int completed = 0, refused = 0;
  for (const auto& vm : rec->vms) {
    if (vm.phase == record::VmPhase::kCompleted) {
      ++completed;
      EXPECT_EQ(vm.consistency, Consistency::kFileSystemConsistent) << vm.reason;
    } else {
      ++refused;
      EXPECT_EQ(vm.phase, record::VmPhase::kFailed);
      EXPECT_EQ(vm.consistency, Consistency::kNone);
      EXPECT_THAT(vm.reason, HasSubstr("run lock was lost")) << vm.key();
    }
  }
  EXPECT_EQ(completed, 1);
  EXPECT_EQ(refused, 2);
  bool warned = false;
  for (const auto& w : rec->warnings) warned = warned || w.find("run lock was lost") != std::string::npos;
  EXPECT_TRUE(warned) << "the record says the lock was lost";
  // One guest was frozen (and thawed), the two others never.
  size_t freezes = 0;
  for (const auto& e : f.tc.events("Exec")) {
    if (std::string(kube::str_at(e, {"detail"})).find("--freeze") != std::string::npos) ++freezes;
  }
  EXPECT_EQ(freezes, 1u);
  f.expect_nothing_frozen();
}

// The same in a consistency group: a lock lost while the group froze means
// nothing is cut under it; the VM that froze is thawed and no VM counts.
TEST(Adversarial, AGroupWhoseRunLostItsLockCutsNothing) {
  BackupFixture f(kThreeVms);
  auto rec = backup_losing_the_lock(f, "lost-group", record::ConsistencyGroup::kAll);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(rec->phase, record::BackupPhase::kFailed);
  for (const auto& vm : rec->vms) {
    EXPECT_EQ(vm.phase, record::VmPhase::kFailed) << vm.key();
    EXPECT_EQ(vm.consistency, Consistency::kNone) << vm.key();
    EXPECT_THAT(vm.reason, HasSubstr("run lock was lost")) << vm.key();
  }
  EXPECT_EQ(f.snapshots_left("lost-group"), 0u) << "nothing cut";
  f.expect_nothing_frozen();
}

// Item 16: deleting a backup while it runs.
TEST(Adversarial, ARunningBackupIsNotDeletedUnderItsFeet) {
  BackupFixture f(kScenario);
  std::string loc = f.location_dir.string();
  auto child = start_stuck_backup(f.tc, loc, "busy");
  std::string err;
  bool frozen = wait_for_lines(child.stderr_fd, ": frozen", 1, err);
  auto del = run_kvbackup(f.tc, {"backup", "delete", "busy", "--location", loc});
  ::kill(child.pid, SIGTERM);
  reap(child);
  ASSERT_TRUE(frozen) << err;
  EXPECT_EQ(del.exit_code, 1);
  EXPECT_THAT(del.err, HasSubstr("still running"));
  EXPECT_TRUE(f.location->exists("backups/busy/backup.json"));
  f.expect_nothing_frozen();
}

// Item 7: SIGHUP (the terminal or SSH session closed) and SIGQUIT thaw first, like SIGTERM.
TEST(Adversarial, HangupAndQuitThawBeforeExiting) {
  for (int sig : {SIGHUP, SIGQUIT}) {
    SCOPED_TRACE(sig);
    BackupFixture f(kScenario);
    auto child = start_stuck_backup(f.tc, f.location_dir.string(), "hup");
    std::string err;
    bool frozen = wait_for_lines(child.stderr_fd, ": frozen", 1, err);
    ::kill(child.pid, sig);
    int wstatus = reap(child);
    ASSERT_TRUE(frozen) << err;
    ASSERT_TRUE(WIFEXITED(wstatus)) << "killed by the signal, with the guest frozen";
    EXPECT_EQ(WEXITSTATUS(wstatus), 128 + sig);
    f.expect_nothing_frozen();
  }
}

}  // namespace
}  // namespace kvb::testing
