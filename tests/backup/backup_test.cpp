// Backups end to end against the test cluster: every path of a VM (agent, no
// agent, paused, stopped, Windows VSS, two disks), consistency groups, failing
// snapshots, hung execs, API errors in the freeze window, custom rules with
// background actions, stop requests and bad input. Every test ends with the
// oracle's verdict: the record tells the truth and no VM is left frozen.
#include "tests/backup/backup_fixture.h"

#include "common/time.h"
#include "kube/object.h"
#include "kube/watch.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

namespace kvb::testing {
namespace {
using record::BackupPhase;
using record::Consistency;
using record::VmPhase;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const char* kEveryPath = R"(
kubevirtVersion: "1.8"
snapshotClasses:
  - {name: csi-snap, driver: csi.example.com, cutLatency: 150ms, readyLatency: 100ms}
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: rootdisk, type: dataVolume, size: 10Gi, storageClass: fast}
          - {name: data, type: persistentVolumeClaim, size: 50Gi, storageClass: fast}
          - {name: cloudinit, type: cloudInitNoCloud}
      - {name: web, agent: none, volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]}
      - {name: batch, paused: true, volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]}
      - {name: archive, running: false, volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]}
      - {name: win, agent: vss10s, volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]}
)";

const char* kThree = R"(
snapshotClasses:
  - {name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - {name: db, count: 3, volumes: [{name: root, type: dataVolume, storageClass: fast},
                                       {name: data, type: persistentVolumeClaim, storageClass: fast}]}
    pods:
      - {name: mysql-0, labels: {app: mysql}, containers: [{name: mysql}]}
)";

TEST(Backup, EveryKindOfVmEndsAsPromisedAndTheRecordIsOnDisk) {
  BackupFixture f(kEveryPath);
  auto rec = f.run(f.spec("nightly"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  EXPECT_EQ(rec->phase, BackupPhase::kCompleted) << rec->error;
  ASSERT_EQ(rec->vms.size(), 5u);

  const auto& db = f.vm(*rec, "db");
  EXPECT_EQ(db.consistency, Consistency::kFileSystemConsistent) << db.reason;
  EXPECT_EQ(db.freeze.kind, record::FreezeKind::kBuiltinRules);
  ASSERT_EQ(db.volumes.size(), 2u) << "cloud-init disks are not snapshotted";
  EXPECT_EQ(f.tc.vm_state("prod", "db").at("freezes").as_int64(), 1) << "both disks are cut inside one freeze";
  // The freeze window is the cut latency plus little: the thaw follows the cut at once.
  EXPECT_LT(db.freeze.window_ms(), 150 + 1000);
  EXPECT_GE(db.freeze.window_ms(), 150);
  EXPECT_FALSE(db.executions.empty());
  for (const auto& v : db.volumes) {
    EXPECT_TRUE(v.ready_at);
    EXPECT_FALSE(v.content.empty());
  }

  EXPECT_EQ(f.vm(*rec, "win").consistency, Consistency::kFileSystemConsistent) << "cut well within VSS's 10 s";
  const auto& web = f.vm(*rec, "web");
  EXPECT_EQ(web.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(web.reason, HasSubstr("agent"));
  EXPECT_EQ(f.tc.vm_state("prod", "web").at("freezes").as_int64(), 0);
  const auto& batch = f.vm(*rec, "batch");
  EXPECT_EQ(batch.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(batch.reason, HasSubstr("paused"));
  const auto& archive = f.vm(*rec, "archive");
  EXPECT_EQ(archive.consistency, Consistency::kOffline);
  EXPECT_EQ(archive.phase, VmPhase::kCompleted);

  // The record on disk is the record returned; resources are beside it.
  auto text = f.location->get("backups/nightly/backup.json");
  ASSERT_TRUE(text);
  auto stored = record::BackupRecord::from_json(boost::json::parse(*text), "backup.json");
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->phase, BackupPhase::kCompleted);
  EXPECT_EQ(f.vm(*stored, "db").consistency, Consistency::kFileSystemConsistent);
  EXPECT_EQ(f.vm(*stored, "db").volumes[0].cut_at, db.volumes[0].cut_at);
  auto vm_file = f.location->get("backups/nightly/resources/prod/virtualmachines.kubevirt.io/db.json");
  ASSERT_TRUE(vm_file);
  auto vm_obj = boost::json::parse(*vm_file).as_object();
  EXPECT_FALSE(vm_obj.contains("status"));
  EXPECT_TRUE(kube::str_at(vm_obj, {"metadata", "uid"}).empty());
  EXPECT_TRUE(f.location->exists("backups/nightly/resources/prod/persistentvolumeclaims/db-data.json"));

  // A second backup of the same name is refused; nothing is overwritten.
  auto again = f.run(f.spec("nightly"));
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error().message, HasSubstr("already exists"));
}

TEST(Backup, ConsistencyGroupAllCutsEverySnapshotWhileEveryVmIsFrozen) {
  BackupFixture f(kThree);
  auto s = f.spec("group");
  s.consistency_group = record::ConsistencyGroup::kAll;
  s.concurrency = 2;
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.name << ": " << v.reason;
  // The oracle's order: every freeze, then every cut, then every thaw.
  auto time_of = [](const boost::json::object& e) { return *parse_rfc3339(kube::str_at(e, {"time"})); };
  WallTime last_freeze{}, first_cut = WallTime::max(), last_cut{}, first_thaw = WallTime::max();
  for (const auto& e : f.tc.events("Freeze")) last_freeze = std::max(last_freeze, time_of(e));
  for (const auto& e : f.tc.events("SnapshotCut")) {
    first_cut = std::min(first_cut, time_of(e));
    last_cut = std::max(last_cut, time_of(e));
    EXPECT_TRUE(e.at("frozen").as_bool());
  }
  for (const auto& e : f.tc.events("Thaw")) first_thaw = std::min(first_thaw, time_of(e));
  EXPECT_EQ(f.tc.events("SnapshotCut").size(), 6u);
  EXPECT_EQ(f.tc.events("Thaw").size(), 3u);
  EXPECT_LT(last_freeze, first_cut);
  EXPECT_LT(last_cut, first_thaw);
}

TEST(Backup, AFailingSnapshotFailsOnlyItsVmWhichIsThawedAndLeavesNoSnapshots) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"snapshot-fail","vm":"db-1","pvc":"db-1-data","message":"storage backend exploded"})");
  auto rec = f.run(f.spec("partial"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  EXPECT_EQ(rec->phase, BackupPhase::kPartiallyFailed);
  const auto& bad = f.vm(*rec, "db-1");
  EXPECT_EQ(bad.phase, VmPhase::kFailed);
  EXPECT_EQ(bad.consistency, Consistency::kNone);
  EXPECT_THAT(bad.reason, HasSubstr("storage backend exploded"));
  EXPECT_THAT(bad.reason, HasSubstr("thawed first"));
  EXPECT_TRUE(bad.freeze.thawed_at);
  EXPECT_EQ(f.snapshots_left("partial", "db-1"), 0u) << "a failed VM's snapshots are not left behind";
  EXPECT_EQ(f.snapshots_left("partial"), 4u);
  for (const char* ok : {"db-0", "db-2"}) EXPECT_EQ(f.vm(*rec, ok).consistency, Consistency::kFileSystemConsistent) << ok;
}

TEST(Backup, AFreezeExecThatHangsIsAbandonedAtTheDeadlineAndTheVmThawed) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"exec-hang","vm":"db-2","command":"--freeze"})");
  auto s = f.spec("hang");
  s.freeze_deadline = 1s;
  auto start = std::chrono::steady_clock::now();
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  f.expect_truthful(*rec);
  const auto& hung = f.vm(*rec, "db-2");
  EXPECT_EQ(hung.phase, VmPhase::kFailed);
  EXPECT_THAT(hung.reason, HasSubstr("freeze failed"));
  EXPECT_TRUE(hung.freeze.thaw_requested_at) << "the post rule runs whenever the pre rule started";
  EXPECT_EQ(f.snapshots_left("hang", "db-2"), 0u);
  EXPECT_EQ(f.vm(*rec, "db-0").consistency, Consistency::kFileSystemConsistent);
}

TEST(Backup, SnapshotsNotCutWithinTheFreezeDeadlineThawFirstThenFail) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"snapshot-cut-delay","vm":"db-0","delay":"5s"})");
  auto s = f.spec("slow");
  s.freeze_deadline = 600ms;
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& slow = f.vm(*rec, "db-0");
  EXPECT_EQ(slow.phase, VmPhase::kFailed);
  EXPECT_THAT(slow.reason, HasSubstr("--freeze-deadline 600ms"));
  EXPECT_LT(f.tc.vm_state("prod", "db-0").at("maxFrozenMs").to_number<double>(), 600 + 1000)
      << "the guest was thawed at the deadline, not when the snapshot was finally cut";
  EXPECT_EQ(f.snapshots_left("slow", "db-0"), 0u);
  // Deleted mid-cut, they stay until the cut in flight is done, then go.
  for (const auto& name : f.snapshots_being_deleted("slow", "db-0")) {
    auto gone = kube::wait_for_object(f.tc.client(), kube::resources::kVolumeSnapshots, "prod", name,
                                      [](const boost::json::object* o) { return o == nullptr; }, 20s);
    EXPECT_TRUE(gone) << name << " was never deleted";
  }
}

TEST(Backup, ApiErrorsInTheFreezeWindowAreRetriedAndNeverLeaveAGuestFrozen) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"api-error","verb":"create","resource":"volumesnapshots","code":500,"count":2})");
  f.tc.add_fault(R"({"type":"api-error","resource":"pods/exec","code":503,"count":2,"retryAfter":0})");
  auto rec = f.run(f.spec("flaky"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) {
    EXPECT_EQ(v.phase, VmPhase::kCompleted) << v.name << ": " << v.reason;
    EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.name << ": " << v.reason;
  }
}

TEST(Backup, AThawCommandThatFailsFallsBackToKubeVirtsUnfreezeApi) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"exec-fail","vm":"db-0","command":"virt-freezer --unfreeze","exitCode":1,"message":"boom"})");
  auto rec = f.run(f.spec("fallback"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& v = f.vm(*rec, "db-0");
  EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.reason;
  bool used_api = false;
  for (const auto& e : v.executions) used_api = used_api || (e.rule == "subresource" && e.exit_code == 0);
  EXPECT_TRUE(used_api);
}

TEST(Backup, SubresourceFreezeMethodIsVerifiedByTheOracleToo) {
  BackupFixture f(kThree);
  auto s = f.spec("api");
  s.freeze_method = backup::FreezeMethod::kSubresource;
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) {
    EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.name << ": " << v.reason;
    EXPECT_EQ(v.freeze.kind, record::FreezeKind::kSubresource);
  }
}

TEST(Backup, AStopRequestWhileFrozenThawsEveryVmBeforeReturning) {
  BackupFixture f(kThree);
  f.tc.add_fault(R"({"type":"snapshot-cut-delay","delay":"60s"})");
  std::stop_source stop;
  std::atomic<int> frozen{0};
  auto progress = [&](const std::string& line) {
    if (line.find(": frozen") != std::string::npos && ++frozen == 3) stop.request_stop();  // the moment all are frozen
  };
  auto start = std::chrono::steady_clock::now();
  auto rec = f.run(f.spec("stopped"), stop.get_token(), progress);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  f.expect_truthful(*rec);
  EXPECT_EQ(rec->phase, BackupPhase::kFailed);
  EXPECT_THAT(rec->error, HasSubstr("interrupted"));
  EXPECT_EQ(f.tc.events("Thaw").size(), 3u);
  for (const auto& v : rec->vms) EXPECT_EQ(v.phase, VmPhase::kFailed) << v.name;
}

TEST(Backup, AWindowsGuestThatThawsItselfBeforeTheCutIsNotCalledFileSystemConsistent) {
  BackupFixture f(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 10500ms, readyLatency: 10ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms: [{name: win, agent: vss10s, volumes: [{name: root, type: dataVolume, storageClass: fast}]}]
)");
  auto s = f.spec("vss");
  s.freeze_deadline = 20s;
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& win = f.vm(*rec, "win");
  EXPECT_NE(win.consistency, Consistency::kFileSystemConsistent);
  EXPECT_THAT(win.reason, HasSubstr("thawed itself"));
  ASSERT_EQ(f.tc.events("SnapshotCut").size(), 1u);
  EXPECT_FALSE(f.tc.events("SnapshotCut")[0].at("frozen").as_bool());
}

TEST(Backup, OnNoAgentSkipOrFailDecidesForVmsWithoutAnAgent) {
  BackupFixture f(kEveryPath);
  auto skip = f.spec("skip");
  skip.on_no_agent = backup::OnNoAgent::kSkip;
  skip.scope.vms = {"web", "db"};
  auto rec = f.run(skip);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  EXPECT_EQ(f.vm(*rec, "web").phase, VmPhase::kSkipped);
  EXPECT_EQ(f.snapshots_left("skip", "web"), 0u);
  auto fail = f.spec("fail");
  fail.on_no_agent = backup::OnNoAgent::kFail;
  fail.scope.vms = {"web"};
  auto frec = f.run(fail);
  ASSERT_TRUE(frec) << frec.error().message;
  EXPECT_EQ(f.vm(*frec, "web").phase, VmPhase::kFailed);
  EXPECT_EQ(frec->phase, BackupPhase::kFailed);
}

TEST(Backup, BadInputIsAClearErrorBeforeAnyGuestIsTouched) {
  BackupFixture f(kThree);
  auto unknown_vm = f.spec("x1");
  unknown_vm.scope.vms = {"ghost"};
  auto r1 = f.run(unknown_vm);
  ASSERT_FALSE(r1);
  EXPECT_THAT(r1.error().message, HasSubstr("\"ghost\" not found"));
  auto unknown_class = f.spec("x2");
  unknown_class.snapshot_class = "no-such-class";
  auto r2 = f.run(unknown_class);
  ASSERT_FALSE(r2);
  EXPECT_THAT(r2.error().message, HasSubstr("--snapshot-class: VolumeSnapshotClass \"no-such-class\" not found"));
  auto bad_map = f.spec("x3");
  bad_map.snapshot_class_map = {{"fast", "nope"}};
  auto r3 = f.run(bad_map);
  ASSERT_FALSE(r3);
  EXPECT_THAT(r3.error().message, HasSubstr("nope"));
  auto bad_name = f.spec("Bad_Name");
  auto r4 = f.run(bad_name);
  ASSERT_FALSE(r4);
  EXPECT_THAT(r4.error().message, HasSubstr("backup name \"Bad_Name\""));
  EXPECT_TRUE(f.tc.events("Freeze").empty());
  EXPECT_TRUE(f.tc.events("SnapshotCut").empty());
  for (const char* n : {"x1", "x2", "x3"}) EXPECT_FALSE(f.location->exists(std::string("backups/") + n + "/backup.json")) << n;
}

TEST(Backup, CustomRulesWithABackgroundActionHoldTheApplicationAcrossTheFreeze) {
  BackupFixture f(kThree);
  f.tc.dir().write("pre.yaml", R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: pre}
rules:
  - podSelector: {app: mysql}
    container: mysql
    actions:
      - {type: command, background: true, value: "echo locked > state; ${WAIT_CMD}; echo unlocked > state"}
  - podSelector: {vm.kubevirt.io/name: "{{vm.name}}"}
    container: compute
    actions:
      - {type: command, value: "virt-freezer --freeze --name {{vm.name}} --namespace {{vm.namespace}}"}
)");
  f.tc.dir().write("post.yaml", R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata: {name: post}
rules:
  - podSelector: {vm.kubevirt.io/name: "{{vm.name}}"}
    container: compute
    actions:
      - {type: command, value: "virt-freezer --unfreeze --name {{vm.name}} --namespace {{vm.namespace}}"}
  - podSelector: {app: mysql}
    container: mysql
    actions:
      - {type: command, value: "cat state > seen-by-post"}
)");
  auto s = f.spec("custom");
  s.rules = backup::RulesMode::kCustom;
  s.pre_rule = (f.tc.dir() / "pre.yaml").string();
  s.post_rule = (f.tc.dir() / "post.yaml").string();
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) {
    EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.name << ": " << v.reason;
    EXPECT_EQ(v.freeze.kind, record::FreezeKind::kCustomRules);
  }
  // The lock was released after the last thaw, and the post rule ran after the release.
  EXPECT_EQ(f.tc.exec("prod", "mysql-0", "mysql", {"cat", "state"}).out, "unlocked\n");
  EXPECT_EQ(f.tc.exec("prod", "mysql-0", "mysql", {"cat", "seen-by-post"}).out, "unlocked\n");
}

}  // namespace
}  // namespace kvb::testing
