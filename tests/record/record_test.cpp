// Every record type round-trips: written, read back and written again, the two
// texts are equal — so no field is dropped on the way (`backup describe` once
// never showed rule runs because the reader skipped them).
#include "record/backup_record.h"
#include "record/journal_entry.h"
#include "restore/record.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace kvb {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

const WallTime kT0 = WallTime(std::chrono::nanoseconds(1'800'000'000'123'456'789));

record::BackupRecord full_backup_record() {
  record::BackupRecord r;
  r.name = "nightly";
  r.uid = "0b3c8f4e-5d0a-4c6e-9b1f-2a7d9e3c4b5a";
  r.kvbackup_version = "0.1.0 (abc123)";
  r.cluster = "https://api.example:6443";
  auto& o = r.options;
  o.scope = {{"prod", "lab"}, false, {"db", "lab/web"}, "tier=gold"};
  o.rules = record::RulesMode::kCustom;
  o.pre_rule = "pre.yaml";
  o.post_rule = "post.yaml";
  o.freeze_method = record::FreezeMethod::kExec;
  o.on_no_agent = record::OnNoAgent::kSkip;
  o.concurrency = 7;
  o.freeze_deadline = 2500ms;
  o.ready_timeout = 90s;
  o.freeze_wait = 45s;
  o.consistency_group = record::ConsistencyGroup::kAll;
  o.snapshot_class = "";
  o.snapshot_class_map = {{"fast", "csi-snap"}, {"slow", "csi-slow"}};
  o.copy_data = true;
  o.data_concurrency = 3;
  r.started = kT0;
  r.finished = kT0 + 3s;
  r.phase = record::BackupPhase::kPartiallyFailed;
  r.warnings = {"recover: thawed prod/x"};
  r.error = "";
  record::VmRecord vm;
  vm.ns = "prod";
  vm.name = "db";
  vm.phase = record::VmPhase::kPartiallyFailed;
  vm.promised = record::Consistency::kFileSystemConsistent;
  vm.consistency = record::Consistency::kCrashConsistent;
  vm.reason = "the guest was no longer frozen";
  auto& f = vm.freeze;
  f.kind = record::FreezeKind::kCustomRules;
  f.requested_at = kT0 + 1ms;
  f.frozen_at = kT0 + 20ms;
  f.held_at = kT0 + 230ms;
  f.thaw_requested_at = kT0 + 231ms;
  f.thawed_at = kT0 + 245ms;
  f.thaw_ok = true;
  f.auto_thaw_seconds = 90;
  f.evidence = "frozen: virt-freezer";
  f.hold = "thawed (guestosinfo fsFreezeStatus=(none))";
  f.lease = "lease prod/kvbackup-freeze-db (waited 12 ms for weekly/...)";
  record::VolumeRecord vol;
  vol.name = "root";
  vol.pvc = "db-root";
  vol.storage_class = "fast";
  vol.snapshot_class = "csi-snap";
  vol.volume_snapshot = "nightly-db-root";
  vol.snapshot_uid = "uid-1";
  vol.deleted = true;
  vol.content = "snapcontent-1";
  vol.cut_at = kT0 + 200ms;
  vol.ready_at = kT0 + 2s;
  vol.restore_size = "10Gi";
  vol.size = "10Gi";
  vol.error = "none really";
  record::DataCopyRecord copy;
  copy.series = "cluster-1/prod/db/root";
  copy.repository_snapshot = "ab12";
  copy.volume_mode = "Block";
  copy.bytes = uint64_t{5} << 32;  // beyond 32 bits
  copy.new_bytes = 1234;
  copy.stored_bytes = 567;
  copy.sha256 = "e3b0";
  copy.retried_ranges = 2;
  copy.transport = "port-forward";
  copy.change_tracking = "fingerprint";
  copy.change_tracking_reason = "CSI driver csi.example.com has no SnapshotMetadataService";
  copy.allocated_only = true;
  copy.downloaded_bytes = uint64_t{5} << 32;
  copy.millis = {3, 40, 500, 6000, 70};
  copy.error = "";
  vol.copy = copy;
  record::VolumeRecord failed_copy = vol;
  failed_copy.name = "data";
  failed_copy.copy->repository_snapshot = "";
  failed_copy.copy->error = "copy of VM prod/db volume data: 401";
  vm.volumes = {vol, failed_copy};
  record::ExecutionRecord e;
  e.phase = "pre";
  e.rule = "pre";
  e.pod = "virt-launcher-db-abcde";
  e.container = "compute";
  e.command = {"sh", "-c", "virt-freezer --freeze"};
  e.exit_code = 0;
  e.attempts = 2;
  e.duration_ms = 12.5;
  e.verdict = "succeeded";
  e.stdout_excerpt = "out";
  e.stderr_excerpt = "{\"msg\":\"Operation completed successfully\"}";
  vm.executions = {e};
  vm.problems = {"a problem"};
  vm.resources = {"resources/prod/virtualmachines.kubevirt.io/db.json"};
  r.vms = {vm};
  return r;
}

TEST(RecordRoundTrip, BackupRecordKeepsEveryField) {
  auto first = json::serialize(full_backup_record().to_json());
  auto back = record::parse_backup_record(first, "backup.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(json::serialize(back->to_json()), first);
  EXPECT_EQ(back->vms[0].executions.size(), 1u);
  EXPECT_EQ(back->options.concurrency, 7);
  EXPECT_EQ(back->options.freeze_deadline, 2500ms);
}

TEST(RecordRoundTrip, ACopysDataPathIsKeptAndAnUnknownOneIsNamed) {
  auto back = record::BackupRecord::from_json(full_backup_record().to_json(), "backup.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->vms[0].volumes[0].copy->transport, "port-forward");
  EXPECT_EQ(back->vms[0].volumes[0].copy->millis.ready, 500);
  EXPECT_EQ(back->vms[0].volumes[0].copy->millis.transfer, 6000);
  auto v = full_backup_record().to_json();
  v["vms"].as_array()[0].as_object()["volumes"].as_array()[0].as_object()["copy"].as_object()["transport"] = "carrier-pigeon";
  auto bad = record::BackupRecord::from_json(v, "backup.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("transport"), std::string::npos) << bad.error().message;
  // Stage durations: never negative, and a misspelt stage is named.
  for (const char* field : {"transfer", "tranfser"}) {
    auto w = full_backup_record().to_json();
    w["vms"].as_array()[0].as_object()["volumes"].as_array()[0].as_object()["copy"].as_object()["millis"].as_object()[field] = -1;
    auto wrong = record::BackupRecord::from_json(w, "backup.json");
    ASSERT_FALSE(wrong) << field;
    EXPECT_NE(wrong.error().message.find(field), std::string::npos) << wrong.error().message;
  }
  EXPECT_NE(bad.error().message.find("carrier-pigeon"), std::string::npos) << bad.error().message;
}

TEST(RecordRoundTrip, ACopysChangeTrackingIsKeptAndAnUnknownMethodIsNamed) {
  auto back = record::BackupRecord::from_json(full_backup_record().to_json(), "backup.json");
  ASSERT_TRUE(back) << back.error().message;
  const auto& c = *back->vms[0].volumes[0].copy;
  EXPECT_EQ(c.change_tracking, "fingerprint");
  EXPECT_EQ(c.change_tracking_reason, "CSI driver csi.example.com has no SnapshotMetadataService");
  EXPECT_EQ(c.downloaded_bytes, uint64_t{5} << 32);
  EXPECT_TRUE(c.allocated_only);
  EXPECT_EQ(c.allocated_only_reason, "");
  auto v = full_backup_record().to_json();
  v["vms"].as_array()[0].as_object()["volumes"].as_array()[0].as_object()["copy"].as_object()["changeTracking"] = "guesswork";
  auto bad = record::BackupRecord::from_json(v, "backup.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("changeTracking"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("guesswork"), std::string::npos) << bad.error().message;
}

TEST(RecordRoundTrip, BackupRecordOfVersionZeroPointOneStillReads) {
  auto v = full_backup_record().to_json();
  auto& f = v["vms"].as_array()[0].as_object()["freeze"].as_object();
  f.erase("rules");
  f["method"] = "exec-builtin";
  auto back = record::BackupRecord::from_json(v, "old.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->vms[0].freeze.kind, record::FreezeKind::kBuiltinRules);
}

TEST(RecordRoundTrip, BadValuesAreNamedByField) {
  auto v = full_backup_record().to_json();
  v["options"].as_object()["onNoAgent"] = "sometimes";
  auto back = record::BackupRecord::from_json(v, "backup.json");
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().message.find("onNoAgent"), std::string::npos) << back.error().message;
  EXPECT_NE(back.error().message.find("sometimes"), std::string::npos) << back.error().message;
}

TEST(RecordRoundTrip, JournalEntryKeepsEveryField) {
  record::JournalEntry e;
  e.backup = "nightly";
  e.uid = "uid";
  e.pid = 4242;
  e.host = "node-1";
  e.started = kT0;
  e.vms = {{"prod", "db", record::FreezeMethod::kExec}, {"prod", "web", record::FreezeMethod::kSubresource}};
  e.copy_namespaces = {"prod", "dev"};
  auto first = json::serialize(e.to_json());
  auto back = record::JournalEntry::from_json(json::parse(first), "journal.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(json::serialize(back->to_json()), first);
}

TEST(RecordRoundTrip, RestoreRecordKeepsEveryField) {
  restore::RestoreRecord r;
  r.name = "r1";
  r.backup = "nightly";
  r.kvbackup_version = "0.1.0";
  r.cluster = "https://api.example:6443";
  r.started = kT0;
  r.finished = kT0 + 5s;
  r.phase = restore::RestorePhase::kPartiallyFailed;
  r.error = "one VM failed";
  r.options.data_source = restore::DataSource::kRepository;
  r.options.upload_proxy_url = "https://cdi-uploadproxy.example";
  r.options.upload_proxy_ca = "/etc/kvbackup/cdi-ca.pem";
  r.options.parallel_uploads = 3;
  r.options.upload_timeout = std::chrono::minutes(7);
  restore::VmRestoreRecord vm;
  vm.source_ns = "prod";
  vm.source_name = "db";
  vm.ns = "lab";
  vm.name = "db2";
  vm.phase = "Failed";
  vm.reason = "why";
  vm.run_strategy = "Halted";
  restore::ClaimRecord from_snapshot;
  from_snapshot.volume = "root";
  from_snapshot.claim = "db2-root";
  from_snapshot.source_claim = "db-root";
  from_snapshot.volume_snapshot = "r1-db-root";
  from_snapshot.storage_class = "fast";
  from_snapshot.size = "10Gi";
  from_snapshot.phase = "Bound";
  restore::ClaimRecord from_repository = from_snapshot;
  from_repository.volume = "data";
  from_repository.volume_snapshot.clear();
  from_repository.data_source = "repository";
  from_repository.repository_snapshot = "0123abcd";
  from_repository.sha256 = std::string(64, 'e');
  from_repository.uploaded_bytes = 10737418240;
  from_repository.upload_attempts = 2;
  from_repository.upload_ms = 4321;
  vm.claims = {from_snapshot, from_repository};
  vm.created = {{"persistentvolumeclaims", "lab", "db2-root", true}};
  vm.replaced = {"virtualmachines lab/db2"};
  vm.problems = {"p"};
  r.vms = {vm};
  auto first = json::serialize(r.to_json());
  auto back = restore::RestoreRecord::from_json(json::parse(first), "restore.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(json::serialize(back->to_json()), first);
  EXPECT_EQ(back->options.data_source, restore::DataSource::kRepository);
  EXPECT_EQ(back->vms.at(0).claims.at(1).upload_attempts, 2);
}

}  // namespace
}  // namespace kvb
