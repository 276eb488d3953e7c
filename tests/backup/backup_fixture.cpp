#include "tests/backup/backup_fixture.h"

#include "backup/snapshots.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "record/naming.h"

#include <map>

namespace kvb::testing {
using record::Consistency;

BackupFixture::BackupFixture(const std::string& scenario) : tc(scenario), location_dir(tc.dir() / "location") {
  auto loc = location::open_local(location_dir);
  if (!loc) throw std::runtime_error(loc.error().message);
  location = std::move(*loc);
}

backup::BackupSpec BackupFixture::spec(const std::string& name) const {
  backup::BackupSpec s;
  s.name = name;
  s.scope.namespaces = {"prod"};
  s.freeze_deadline = std::chrono::seconds(10);
  s.ready_timeout = std::chrono::seconds(30);
  s.late_freeze_bound = std::chrono::seconds(3);  // the test cluster's launcher deadlines are short
  return s;
}

Result<record::BackupRecord> BackupFixture::run(const backup::BackupSpec& spec, std::stop_token stop,
                                                backup::ProgressFn progress) {
  backup::BackupRunner runner(tc.client(), *location, spec, std::move(progress));
  return runner.run(stop);
}

void BackupFixture::expect_nothing_frozen() {
  auto vms = tc.vms();
  for (const auto& v : vms.at("vms").as_array()) {
    EXPECT_FALSE(v.at("frozen").as_bool()) << "left frozen: " << kube::str_at(v, {"namespace"}) << "/"
                                           << kube::str_at(v, {"name"});
  }
}

void BackupFixture::expect_truthful(const record::BackupRecord& rec) {
  expect_nothing_frozen();
  EXPECT_NE(rec.phase, record::BackupPhase::kInProgress);
  // snapshot -> was its VM frozen at the cut (the oracle's view); only cuts of
  // this run count (a leftover snapshot of the same name was cut by another).
  std::map<std::string, bool> cut_frozen;
  for (const auto& e : tc.events("SnapshotCut")) {
    auto at = parse_rfc3339(kube::str_at(e, {"time"}));
    if (!at || *at < rec.started || (rec.finished && *at > *rec.finished)) continue;
    cut_frozen[std::string(kube::str_at(e, {"namespace"})) + "/" + std::string(kube::str_at(e, {"volumeSnapshot"}))] =
        e.at("frozen").as_bool();
  }
  for (const auto& v : rec.vms) {
    if (v.consistency != Consistency::kFileSystemConsistent) continue;
    // Good snapshots whose data was not copied (--copy-data) leave the VM PartiallyFailed, still FSC.
    bool copy_failed = false;
    for (const auto& vol : v.volumes) copy_failed = copy_failed || (vol.copy && !vol.copy->ok());
    EXPECT_EQ(v.phase, copy_failed ? record::VmPhase::kPartiallyFailed : record::VmPhase::kCompleted) << v.name;
    ASSERT_TRUE(v.freeze.frozen_at && v.freeze.thaw_requested_at) << v.name;
    ASSERT_FALSE(v.volumes.empty()) << v.name;
    for (const auto& vol : v.volumes) {
      auto it = cut_frozen.find(v.ns + "/" + vol.volume_snapshot);
      ASSERT_NE(it, cut_frozen.end()) << v.name << ": no SnapshotCut for " << vol.volume_snapshot;
      EXPECT_TRUE(it->second) << v.name << ": recorded FileSystemConsistent, but " << vol.volume_snapshot
                              << " was cut while the VM was not frozen";
      ASSERT_TRUE(vol.cut_at) << vol.volume_snapshot;
      EXPECT_LE(*vol.cut_at, *v.freeze.thaw_requested_at) << vol.volume_snapshot;
    }
  }
  for (const auto& v : rec.vms) {
    EXPECT_TRUE(v.freeze.thaw_ok) << v.name << ": thaw not confirmed";
    if (v.freeze.thawed_at) {
      EXPECT_TRUE(v.freeze.thaw_ok) << v.name << ": a thawedAt for an unconfirmed thaw";
    }
  }
  EXPECT_FALSE(location->exists("journal/" + rec.name + ".json")) << "journal entry left behind";
  // No freeze lease is left held: another backup would wait for it.
  auto leases = tc.client()->list(kube::resources::kLeases, "");
  ASSERT_TRUE(leases) << leases.error().message;
  EXPECT_TRUE(leases->items.empty()) << "freeze lease left behind: " << kube::name_of(leases->items.front());
}

const record::VmRecord& BackupFixture::vm(const record::BackupRecord& rec, const std::string& name) const {
  for (const auto& v : rec.vms) {
    if (v.name == name) return v;
  }
  throw std::runtime_error("no VM " + name + " in the record");
}

size_t BackupFixture::snapshots_left(const std::string& backup, const std::string& vm_name) {
  kube::ListOptions o;
  o.label_selector = std::string(record::kBackupLabel) + "=" + backup;
  if (!vm_name.empty()) o.label_selector += "," + std::string(record::kVmLabel) + "=" + vm_name;
  auto list = tc.client()->list(kube::resources::kVolumeSnapshots, "prod", o);
  if (!list) throw std::runtime_error(list.error().message);
  // A snapshot kvbackup deleted may stay a while with a deletionTimestamp (its
  // finalizers hold it while its cut is in flight, as external-snapshotter's
  // do): that one is not left behind.
  size_t left = 0;
  for (const auto& item : list->items) {
    if (!kube::value_at(item, {"metadata", "deletionTimestamp"})) ++left;
  }
  return left;
}

std::vector<std::string> BackupFixture::snapshots_being_deleted(const std::string& backup, const std::string& vm_name) {
  kube::ListOptions o;
  o.label_selector = std::string(record::kBackupLabel) + "=" + backup;
  if (!vm_name.empty()) o.label_selector += "," + std::string(record::kVmLabel) + "=" + vm_name;
  auto list = tc.client()->list(kube::resources::kVolumeSnapshots, "prod", o);
  if (!list) throw std::runtime_error(list.error().message);
  std::vector<std::string> names;
  for (const auto& item : list->items) {
    if (kube::value_at(item, {"metadata", "deletionTimestamp"})) names.emplace_back(kube::name_of(item));
  }
  return names;
}

}  // namespace kvb::testing
