// Restore's fault matrix: API errors and latency at each step of a restore
// (snapshot import, claims, replacing the VM in the way, creating the VM).
// Every cell must hold:
//   - the record on disk is complete and parses (or the restore was refused
//     before any change, and there is no record);
//   - nothing labelled with the restore exists that the record does not list
//     as created and kept (no orphans), and what it lists as removed is gone;
//   - the original VM still exists and runs, unless the record says it was
//     replaced (then the restored VM exists).
#include "tests/backup/backup_fixture.h"

#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "restore/runner.h"
#include "restore/transform.h"

#include <boost/json.hpp>
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <set>

namespace kvb::testing {
namespace {
using namespace std::chrono_literals;
namespace res = kube::resources;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 20ms, readyLatency: 10ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast},
                             {name: data, type: persistentVolumeClaim, storageClass: fast}]}
  - name: lab
)";

struct Cell {
  std::string step;
  std::string fault;
  std::string json;
  bool in_place = false;  // --existing replace over prod/db; otherwise a copy into lab
};

std::vector<Cell> cells() {
  return {
      {"snapshot import", "API 500 on contents (always)",
       R"({"type":"api-error","code":500,"verb":"create","resource":"volumesnapshotcontents"})"},
      {"snapshot import", "API 500 on snapshots (always)",
       R"({"type":"api-error","code":500,"verb":"create","resource":"volumesnapshots","namespace":"lab"})"},
      {"claims", "API 500 on claims (once)",
       R"({"type":"api-error","code":500,"verb":"create","resource":"persistentvolumeclaims","count":1})"},
      {"claims", "API 500 on claims (always)",
       R"({"type":"api-error","code":500,"verb":"create","resource":"persistentvolumeclaims"})"},
      {"claims", "latency spike", R"({"type":"latency","verb":"create","resource":"persistentvolumeclaims","delay":"700ms"})"},
      {"replace", "API 500 on stopping the VM",
       R"({"type":"api-error","code":500,"verb":"patch","resource":"virtualmachines"})", true},
      {"replace", "API 500 on deleting the VM",
       R"({"type":"api-error","code":500,"verb":"delete","resource":"virtualmachines"})", true},
      {"VM", "API 500 on create (copy)", R"({"type":"api-error","code":500,"verb":"create","resource":"virtualmachines"})"},
      {"VM", "API 500 on create (in place)", R"({"type":"api-error","code":500,"verb":"create","resource":"virtualmachines"})",
       true},
      {"VM", "watch disconnect", R"({"type":"watch-disconnect","resource":"virtualmachineinstances"})"},
  };
}

size_t labelled(BackupFixture& f, const kube::ResourceRef& ref, const std::string& ns, std::set<std::string>& names) {
  kube::ListOptions o;
  o.label_selector = std::string(restore::kRestoreLabel) + "=cell";
  auto l = f.tc.client()->list(ref, ns, o);
  if (!l) throw std::runtime_error(l.error().message);
  for (const auto& i : l->items) names.insert(ref.resource + " " + std::string(kube::name_of(i)));
  return l->items.size();
}

std::string run_cell(const Cell& c) {
  BackupFixture f(kScenario);
  auto b = f.run(f.spec("nightly"));
  if (!b || b->phase != record::BackupPhase::kCompleted) throw std::runtime_error("the backup failed");
  f.tc.add_fault(c.json);
  restore::RestoreSpec s;
  s.name = "cell";
  s.backup = "nightly";
  if (c.in_place) s.existing = restore::Existing::kReplace;
  else s.namespace_mapping = {{"prod", "lab"}};
  s.bind_timeout = s.start_timeout = 10s;
  kube::ClientOptions co;
  co.retry_budget = 2s;
  auto client = kube::Client::create(f.tc.rest_config(), co);
  if (!client) throw std::runtime_error(client.error().message);
  restore::RestoreRunner runner(*client, *f.location, s);
  auto rec = runner.run();
  std::string ns = c.in_place ? "prod" : "lab";
  std::set<std::string> present;
  for (const auto* ref : {&res::kPersistentVolumeClaims, &res::kVolumeSnapshots, &kubevirt::kVirtualMachines}) labelled(f, *ref, ns, present);
  labelled(f, res::kVolumeSnapshotContents, "", present);
  if (!rec) {
    EXPECT_FALSE(f.location->exists("restores/cell/restore.json"));
    EXPECT_THAT(present, ::testing::IsEmpty()) << "refused, yet objects exist";
    return "refused: " + rec.error().message.substr(0, 50);
  }
  auto stored = f.location->get("restores/cell/restore.json");
  EXPECT_TRUE(stored);
  if (stored) {
    auto parsed = restore::RestoreRecord::from_json(boost::json::parse(*stored), "restore.json");
    EXPECT_TRUE(parsed && parsed->phase != restore::RestorePhase::kInProgress);
  }
  std::set<std::string> kept, removed;
  bool replaced = false;
  for (const auto& v : rec->vms) {
    for (const auto& o : v.created) (o.removed ? removed : kept).insert(o.resource + " " + o.name);
    for (const auto& r : v.replaced) replaced = replaced || r == "virtualmachines prod/db";
    if (v.phase != "Completed") {
      EXPECT_FALSE(v.reason.empty());
    }
  }
  for (const auto& p : present) EXPECT_TRUE(kept.count(p)) << "orphan: " << p;
  for (const auto& r : removed) EXPECT_FALSE(present.count(r)) << "recorded as removed, still there: " << r;
  auto original = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  if (!replaced) {
    EXPECT_TRUE(original) << "the original VM is gone without the record saying so";
    auto vmi = f.tc.client()->get(kubevirt::kVirtualMachineInstances, "prod", "db");
    EXPECT_TRUE(vmi && kube::str_at(*vmi, {"status", "phase"}) == "Running") << "the original VM does not run";
  }
  int completed = 0;
  for (const auto& v : rec->vms) completed += v.phase == "Completed";
  return fmt::format("{}: {}/{} VMs restored, {} objects kept, {} removed{}", to_string(rec->phase), completed, rec->vms.size(),
                     kept.size(), removed.size(), replaced ? ", original replaced" : "");
}

TEST(RestoreFaultMatrix, EveryCellHoldsTheInvariants) {
  std::string table = fmt::format("\n{:<16} {:<32} {:<5} {}\n", "STEP", "FAULT", "HELD", "OUTCOME");
  int held = 0, total = 0;
  for (const auto& c : cells()) {
    SCOPED_TRACE(c.step + " / " + c.fault);
    int before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    std::string outcome = run_cell(c);
    bool ok = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() == before;
    ++total;
    held += ok;
    table += fmt::format("{:<16} {:<32} {:<5} {}\n", c.step, c.fault, ok ? "yes" : "NO", outcome);
  }
  table += fmt::format("{} cells run, {} held\n", total, held);
  std::printf("%s", table.c_str());
  EXPECT_EQ(held, total);
}

}  // namespace
}  // namespace kvb::testing
