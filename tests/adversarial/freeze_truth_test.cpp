// The adversarial review, part one: ways a hostile or careless user got a
// false FileSystemConsistent or a guest left frozen out of kvbackup. Each test
// ends with the fault matrix's oracle (BackupFixture::expect_truthful: a VM is
// FSC only if the test cluster saw each of its cuts, in this run, while it was
// frozen; nothing frozen; journal and leases gone) plus what the case needs.
#include "backup/recover.h"
#include "kube/object.h"
#include "record/naming.h"
#include "tests/backup/backup_fixture.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

#include <fstream>
#include <thread>

namespace kvb::testing {
namespace {
using record::Consistency;
using record::VmPhase;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const char* kOne = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

std::string rule(const std::string& name, const std::vector<std::string>& values) {
  std::string out = "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: Rule\nmetadata: {name: " + name +
                    "}\nrules:\n  - podSelector: {vm.kubevirt.io/name: db}\n    container: compute\n    actions:\n";
  for (const auto& v : values) out += "      - {type: command, value: \"" + v + "\"}\n";
  return out;
}

const std::string kFreezeDb = "/usr/bin/virt-freezer --freeze --name db --namespace prod";
const std::string kThawDb = "/usr/bin/virt-freezer --unfreeze --name db --namespace prod";

backup::BackupSpec custom(BackupFixture& f, const std::string& name, const std::string& pre, const std::string& post) {
  write_file(f.tc.dir() / (name + "-pre.yaml"), pre);
  write_file(f.tc.dir() / (name + "-post.yaml"), post);
  auto s = f.spec(name);
  s.rules = backup::RulesMode::kCustom;
  s.pre_rule = (f.tc.dir() / (name + "-pre.yaml")).string();
  s.post_rule = (f.tc.dir() / (name + "-post.yaml")).string();
  return s;
}

// Item 1: `backup delete weekly --keep-snapshots` then `backup create weekly`:
// the kept snapshots carry the backup's name and labels, and were cut seconds
// before the new freeze. They must never count; neither may snapshots someone
// else labelled for the backup.
TEST(Adversarial, LeftoverAndForeignSnapshotsOfTheSameNameNeverCount) {
  BackupFixture f(kOne);
  auto first = f.run(f.spec("weekly"));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(f.vm(*first, "db").consistency, Consistency::kFileSystemConsistent);
  std::string old_uid = f.vm(*first, "db").volumes[0].snapshot_uid;
  ASSERT_TRUE(f.location->remove("backups/weekly"));  // backup delete weekly --keep-snapshots
  auto second = f.run(f.spec("weekly"));
  ASSERT_TRUE(second) << second.error().message;
  f.expect_truthful(*second);
  const auto& vol = f.vm(*second, "db").volumes[0];
  EXPECT_NE(vol.snapshot_uid, old_uid) << "the kept snapshot of the first run was taken for this one";
  EXPECT_NE(vol.volume_snapshot, "weekly-db-root") << "the name was taken: the run's short id is appended";
  EXPECT_EQ(f.vm(*second, "db").consistency, Consistency::kFileSystemConsistent) << f.vm(*second, "db").reason;

  // Someone else's snapshot with the backup's planned name and labels.
  boost::json::object planted{
      {"apiVersion", "snapshot.storage.k8s.io/v1"},
      {"kind", "VolumeSnapshot"},
      {"metadata", boost::json::object{{"name", "monthly-db-root"},
                                       {"namespace", "prod"},
                                       {"labels", boost::json::object{{record::kBackupLabel, "monthly"}, {record::kVmLabel, "db"}}}}},
      {"spec", boost::json::object{{"volumeSnapshotClassName", "csi-snap"},
                                   {"source", boost::json::object{{"persistentVolumeClaimName", "db-root"}}}}}};
  auto made = f.tc.client()->create(kube::resources::kVolumeSnapshots, "prod", planted);
  ASSERT_TRUE(made) << made.error().message;
  auto third = f.run(f.spec("monthly"));
  ASSERT_TRUE(third) << third.error().message;
  f.expect_truthful(*third);
  EXPECT_NE(f.vm(*third, "db").volumes[0].snapshot_uid, std::string(kube::uid_of(*made)));
}

// Item 2: two backups (different names) of one VM at once. Without
// coordination the first one's thaw lands between the second one's freeze
// and cut, and both say FSC. The freeze lease makes the second wait.
TEST(Adversarial, TwoBackupsOfOneVmAtOnceNeverOverlapTheirFreezes) {
  BackupFixture f(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 400ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)");
  Result<record::BackupRecord> a = Error(Errc::kUnknown, "not run"), b = Error(Errc::kUnknown, "not run");
  std::thread ta([&] { a = f.run(f.spec("alpha")); });
  std::thread tb([&] { b = f.run(f.spec("beta")); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  f.expect_truthful(*a);
  f.expect_truthful(*b);
  EXPECT_EQ(f.vm(*a, "db").consistency, Consistency::kFileSystemConsistent) << f.vm(*a, "db").reason;
  EXPECT_EQ(f.vm(*b, "db").consistency, Consistency::kFileSystemConsistent) << f.vm(*b, "db").reason;
  // The oracle's timeline: freeze, thaw, freeze, thaw — never two freezes in a row.
  std::vector<std::pair<std::string, std::string>> events;
  for (const char* type : {"Freeze", "Thaw"}) {
    for (const auto& e : f.tc.events(type, "db")) events.push_back({std::string(kube::str_at(e, {"time"})), type});
  }
  std::sort(events.begin(), events.end());
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].second, i % 2 == 0 ? "Freeze" : "Thaw") << i;
  std::string waited = f.vm(*a, "db").freeze.lease + f.vm(*b, "db").freeze.lease;
  EXPECT_THAT(waited, HasSubstr("waited")) << "one backup says it waited for the other";
}

// Item 2, the loser's side: a lease held by another backup that outlasts --freeze-wait.
TEST(Adversarial, ABackupThatCannotGetTheFreezeLeaseSaysWhoHoldsIt) {
  BackupFixture f(kOne);
  boost::json::object lease{
      {"apiVersion", "coordination.k8s.io/v1"},
      {"kind", "Lease"},
      {"metadata", boost::json::object{{"name", record::freeze_lease_name("db")}, {"namespace", "prod"}}},
      {"spec", boost::json::object{{"holderIdentity", "other/1234@elsewhere/99"},
                                   {"leaseDurationSeconds", 600},
                                   {"renewTime", format_rfc3339(WallClock::now(), TimePrecision::kMicros)}}}};
  ASSERT_TRUE(f.tc.client()->create(kube::resources::kLeases, "prod", lease));
  auto s = f.spec("late");
  s.freeze_wait = 300ms;
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_nothing_frozen();
  EXPECT_EQ(f.vm(*rec, "db").phase, VmPhase::kFailed);
  EXPECT_THAT(f.vm(*rec, "db").reason, HasSubstr("other/1234@elsewhere/99"));
  EXPECT_TRUE(f.tc.events("Freeze", "db").empty()) << "nothing was frozen without the lease";
}

// Item 3: a pre rule that arms a 1 s auto-thaw, with a 2 s cut: the guest
// thawed itself at +1 s, yet the VM was called FSC. kvbackup owns the timer.
TEST(Adversarial, APreRuleAutoThawShorterThanTheCutIsRaised) {
  BackupFixture f(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 2s, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)");
  auto s = custom(f, "short", rule("pre", {kFreezeDb + " --unfreezeTimeoutSeconds 1"}), rule("post", {kThawDb}));
  auto rec = f.run(s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& db = f.vm(*rec, "db");
  EXPECT_EQ(db.consistency, Consistency::kFileSystemConsistent) << db.reason;
  EXPECT_TRUE(f.tc.events("AutoThaw", "db").empty()) << "the guest never thawed itself";
  std::string notes;
  for (const auto& p : db.problems) notes += p;
  EXPECT_THAT(notes, HasSubstr("raised it to"));
}

// Item 4: a pre rule that freezes and then unfreezes.
TEST(Adversarial, APreRuleThatUnfreezesAgainIsNeverFileSystemConsistent) {
  BackupFixture f(kOne);
  auto rec = f.run(custom(f, "undo", rule("pre", {kFreezeDb, kThawDb}), rule("post", {kThawDb})));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  const auto& db = f.vm(*rec, "db");
  EXPECT_EQ(db.promised, Consistency::kCrashConsistent) << "rules check would flag it: no promise";
  EXPECT_EQ(db.consistency, Consistency::kCrashConsistent) << db.reason;
}

// Item 5: a custom post rule that does not thaw (`value: "true"`).
TEST(Adversarial, APostRuleThatDoesNotThawIsCaughtAndTheGuestThawed) {
  BackupFixture f(kOne);
  auto rec = f.run(custom(f, "nothaw", rule("pre", {kFreezeDb}), rule("post", {"true"})));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);  // nothing frozen, journal gone
  const auto& db = f.vm(*rec, "db");
  EXPECT_EQ(db.consistency, Consistency::kFileSystemConsistent) << db.reason;
  std::string problems;
  for (const auto& p : db.problems) problems += p;
  EXPECT_THAT(problems, HasSubstr("did not confirm the thaw"));
}

// Item 6: a freeze exec slower than --freeze-deadline lands after kvbackup's thaw.
TEST(Adversarial, AFreezeThatLandsAfterTheDeadlineIsThawedAgain) {
  for (const char* variant : {"slow exec", "1ms deadline"}) {
    SCOPED_TRACE(variant);
    BackupFixture f(kOne);
    auto s = f.spec("slow");
    s.late_freeze_bound = 6s;
    if (std::string(variant) == "slow exec") {
      f.tc.add_fault(R"({"type":"latency","resource":"pods/exec","delay":"3s","count":1})");
      s.freeze_deadline = 2s;
    } else {
      s.freeze_deadline = 1ms;
    }
    auto rec = f.run(s);
    ASSERT_TRUE(rec) << rec.error().message;
    f.expect_truthful(*rec);
    EXPECT_FALSE(f.tc.events("Freeze", "db").empty()) << "the late freeze did land";
    EXPECT_NE(f.vm(*rec, "db").consistency, Consistency::kFileSystemConsistent);
  }
}

// Item 8: a 401 on every call after the freeze: the thaw cannot be confirmed,
// and nothing may say it happened; the journal keeps the VM for recover.
TEST(Adversarial, AThawThatCannotBeConfirmedIsNeverReportedAndRecoverFinishesIt) {
  BackupFixture f(kOne);
  auto s = f.spec("denied");
  s.thaw_retry_budget = 1500ms;
  s.ready_timeout = 2s;
  std::vector<std::string> lines;
  std::atomic<bool> posted{false};
  auto rec = f.run(s, {}, [&](const std::string& line) {
    lines.push_back(line);
    if (line.find(": frozen") != std::string::npos && !posted.exchange(true)) {
      f.tc.add_fault(R"({"type":"api-error","code":401,"message":"Unauthorized"})");
    }
  });
  ASSERT_TRUE(rec) << rec.error().message;
  const auto& db = f.vm(*rec, "db");
  EXPECT_FALSE(db.freeze.thaw_ok);
  EXPECT_FALSE(db.freeze.thawed_at) << "no thawedAt for a thaw that was not confirmed";
  EXPECT_EQ(db.phase, VmPhase::kFailed);
  for (const auto& l : lines) EXPECT_THAT(l, ::testing::Not(HasSubstr(": thawed"))) << l;
  EXPECT_TRUE(f.tc.vm_state("prod", "db").at("frozen").as_bool());
  EXPECT_TRUE(f.location->exists("journal/denied.json")) << "the journal keeps the VM for recover";

  f.tc.clear_faults();
  auto report = backup::recover(f.tc.client(), *f.location, s);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(report.thawed, 1);
  f.expect_nothing_frozen();
  EXPECT_FALSE(f.location->exists("journal/denied.json"));
}

}  // namespace
}  // namespace kvb::testing
