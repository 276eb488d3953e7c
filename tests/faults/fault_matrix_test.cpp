// The fault matrix: every phase of a backup x the faults that can hit it,
// injected through the test cluster's fault API. Every cell must hold the
// same invariants:
//   - no VM is frozen at the end;
//   - no VM is recorded FileSystemConsistent unless the timeline shows each of
//     its cuts while it was frozen;
//   - the record on disk is complete (not InProgress) and parses; when the
//     location itself fails (the "record write" cells), the record is absent
//     or the whole InProgress one written at the start, and the error says so;
//   - a VM that did not end as promised says why.
//   - the cell ends with one of the outcomes it lists (phase, FSC and failed
//     counts): a regression that failed every VM would not hold.
// Process deaths (SIGTERM, SIGKILL + recover) are cells of
// tests/cli/backup_cli_test.cpp. The test prints the matrix.
#include "tests/backup/backup_fixture.h"
#include "tests/support/failing_location.h"

#include <boost/json.hpp>
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <functional>

namespace kvb::testing {
namespace {
using namespace std::chrono_literals;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, count: 2, volumes: [{name: root, type: dataVolume, storageClass: fast},
                                       {name: data, type: persistentVolumeClaim, storageClass: fast}]}
)";

struct Cell {
  std::string phase;
  std::string fault;
  std::vector<std::string> faults;  // posted before the backup
  std::string trigger;              // progress text after which `late` is posted
  std::string late;                 // a fault posted mid-backup
  StorageFault storage = StorageFault::kNone;
  // The outcomes this cell may end with ("Completed: 2 FSC, 0 failed", "refused", "failed"):
  // holding the invariants is not enough, a cell must also end the way it should.
  std::vector<std::string> expect = {};
};

std::vector<Cell> cells() {
  const std::string err500 = R"("type":"api-error","code":500)";
  const std::string kOk2 = "Completed: 2 FSC, 0 failed";
  const std::string kHalf = "PartiallyFailed: 1 FSC, 1 failed";
  return {
      {"inventory", "API 500 (twice)", {"{" + err500 + R"(,"verb":"list","resource":"virtualmachines","count":2})"}, "", "", StorageFault::kNone, {kOk2}},
      {"inventory", "API 500 (always)", {"{" + err500 + R"(,"verb":"list","resource":"virtualmachines"})"}, "", "", StorageFault::kNone, {"refused"}},
      {"inventory", "429 storm, Retry-After",
       {R"({"type":"api-error","code":429,"verb":"list","retryAfter":1,"count":6})"}, "", "", StorageFault::kNone, {"refused"}},
      {"inventory", "latency spike", {R"({"type":"latency","verb":"list","resource":"pods","delay":"1500ms"})"}, "", "", StorageFault::kNone, {kOk2}},
      {"freeze", "exec fails", {R"({"type":"exec-fail","vm":"db-0","command":"--freeze","exitCode":1,"message":"boom"})"}, "", "", StorageFault::kNone, {kHalf}},
      {"freeze", "exec stream dropped", {R"({"type":"exec-drop","vm":"db-0","command":"--freeze"})"}, "", "", StorageFault::kNone, {kHalf}},
      {"freeze", "exec hangs", {R"({"type":"exec-hang","vm":"db-0","command":"--freeze"})"}, "", "", StorageFault::kNone, {kHalf}},
      {"freeze", "API 500 on exec", {"{" + err500 + R"(,"resource":"pods/exec","count":1})"}, "", "", StorageFault::kNone, {kOk2}},
      {"freeze", "agent disconnects while frozen", {R"({"type":"agent-disconnect","vm":"db-0","duration":"3s"})"}, "", "", StorageFault::kNone, {"Completed: 1 FSC, 0 failed"}},
      {"snapshot create", "API 500 (twice)", {"{" + err500 + R"(,"verb":"create","resource":"volumesnapshots","count":2})"}, "", "", StorageFault::kNone, {kOk2}},
      {"snapshot create", "API 500 (always)", {"{" + err500 + R"(,"verb":"create","resource":"volumesnapshots"})"}, "", "", StorageFault::kNone, {"Failed: 0 FSC, 2 failed"}},
      {"snapshot create", "429 storm, Retry-After",
       {R"({"type":"api-error","code":429,"verb":"create","resource":"volumesnapshots","retryAfter":1,"count":3})"}, "", "", StorageFault::kNone, {kOk2, kHalf}},
      {"snapshot create", "latency spike",
       {R"({"type":"latency","verb":"create","resource":"volumesnapshots","delay":"800ms","count":1})"}, "", "", StorageFault::kNone, {kOk2}},
      {"wait for cut", "watch disconnect", {}, ": frozen", R"({"type":"watch-disconnect","resource":"volumesnapshots"})", StorageFault::kNone, {kOk2}},
      {"wait for cut", "snapshot fails", {R"({"type":"snapshot-fail","vm":"db-1","message":"backend exploded"})"}, "", "", StorageFault::kNone, {kHalf}},
      {"wait for cut", "cut delayed past --freeze-deadline", {R"({"type":"snapshot-cut-delay","vm":"db-0","delay":"4s"})"}, "", "", StorageFault::kNone, {kHalf}},
      {"thaw", "exec fails", {R"({"type":"exec-fail","vm":"db-0","command":"virt-freezer --unfreeze","exitCode":1,"message":"x"})"},
       "", "", StorageFault::kNone, {kOk2}},
      {"thaw", "exec stream dropped", {R"({"type":"exec-drop","vm":"db-0","command":"virt-freezer --unfreeze","count":1})"}, "", "", StorageFault::kNone, {kOk2}},
      {"thaw", "exec hangs", {R"({"type":"exec-hang","vm":"db-0","command":"virt-freezer --unfreeze"})"}, "", "", StorageFault::kNone, {kOk2}},
      {"thaw", "API 503 on exec", {}, ": frozen", R"({"type":"api-error","code":503,"resource":"pods/exec","count":2})", StorageFault::kNone, {kOk2}},
      {"wait for ready", "watch disconnect", {}, ": thawed", R"({"type":"watch-disconnect","resource":"volumesnapshots"})", StorageFault::kNone, {kOk2}},
      {"wait for ready", "latency spike", {}, ": thawed",
       R"({"type":"latency","verb":"watch","resource":"volumesnapshots","delay":"500ms","count":2})", StorageFault::kNone, {kOk2}},
      {"resources", "API 500 on contents", {"{" + err500 + R"(,"verb":"get","resource":"volumesnapshotcontents"})"}, "", "", StorageFault::kNone, {kOk2}},
      {"resources", "API 500 on DataVolumes", {"{" + err500 + R"(,"verb":"list","resource":"datavolumes"})"}, "", "", StorageFault::kNone, {kOk2}},
      {"record write", "first write fails (disk full)", {}, "", "", StorageFault::kFirstRecordWrite, {"failed"}},
      {"record write", "final write fails (disk full)", {}, "", "", StorageFault::kFinalRecordWrite, {"failed"}},
      {"record write", "sync fails (I/O error)", {}, "", "", StorageFault::kSync, {"failed"}},
  };
}

struct Outcome {
  bool held = false;
  std::string summary;
  std::string outcome;  // what is compared with Cell::expect
};

Outcome run_cell(const Cell& c) {
  BackupFixture f(kScenario);
  for (const auto& fault : c.faults) f.tc.add_fault(fault);
  auto spec = f.spec("cell");
  spec.freeze_deadline = 2s;
  spec.thaw_attempt_timeout = 1s;
  spec.ready_timeout = 20s;
  std::atomic<bool> posted{false};
  backup::ProgressFn progress = [&](const std::string& line) {
    if (!c.trigger.empty() && line.find(c.trigger) != std::string::npos && !posted.exchange(true)) f.tc.add_fault(c.late);
  };
  int failures_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  // A client that gives up on a failing API in 3 s (the default is 60 s), so persistent faults end quickly.
  kube::ClientOptions co;
  co.retry_budget = 3s;
  auto client = kube::Client::create(f.tc.rest_config(), co);
  if (!client) throw std::runtime_error(client.error().message);
  FailingLocation storage(*f.location, c.storage);
  backup::BackupRunner runner(*client, storage, spec, progress);
  auto rec = runner.run({});
  Outcome out;
  if (!rec && c.storage != StorageFault::kNone) {
    // The location failed: nothing is left frozen, the error says what failed, and the record on
    // disk is absent or whole (the InProgress one from the start: `backup list` shows it unfinished).
    f.expect_nothing_frozen();
    EXPECT_THAT(rec.error().message, ::testing::AnyOf(::testing::HasSubstr("No space left"), ::testing::HasSubstr("Input/output")));
    if (auto text = f.location->get("backups/cell/backup.json")) {
      auto stored = record::BackupRecord::from_json(boost::json::parse(*text), "backup.json");
      EXPECT_TRUE(stored) << "the record on disk parses";
      if (stored) {
        EXPECT_EQ(stored->phase, record::BackupPhase::kInProgress) << "never a final record the disk did not take";
      }
    }
    out.summary = "failed: " + rec.error().message.substr(0, 60);
    out.outcome = "failed";
  } else if (!rec) {
    // Refused before anything happened: no record, nothing frozen.
    f.expect_nothing_frozen();
    EXPECT_FALSE(f.location->exists("backups/cell/backup.json") &&
                 f.location->get("backups/cell/backup.json")->find("\"InProgress\"") != std::string::npos)
        << c.phase << " / " << c.fault;
    EXPECT_FALSE(rec.error().message.empty());
    out.summary = "refused: " + rec.error().message.substr(0, 60);
    out.outcome = "refused";
  } else {
    f.expect_truthful(*rec);
    auto text = f.location->get("backups/cell/backup.json");
    EXPECT_TRUE(text) << c.fault;
    if (text) {
      auto stored = record::BackupRecord::from_json(boost::json::parse(*text), "backup.json");
      EXPECT_TRUE(stored && stored->phase != record::BackupPhase::kInProgress) << c.fault;
    }
    int fsc = 0, failed = 0;
    for (const auto& v : rec->vms) {
      fsc += v.consistency == record::Consistency::kFileSystemConsistent;
      failed += v.phase == record::VmPhase::kFailed;
      if (v.consistency != v.promised) {
        EXPECT_FALSE(v.reason.empty()) << c.fault << ": " << v.name;
      }
    }
    out.summary = fmt::format("{}: {} FSC, {} failed", to_string(rec->phase), fsc, failed);
    out.outcome = out.summary;
  }
  EXPECT_THAT(c.expect, ::testing::Contains(out.outcome)) << c.phase << " / " << c.fault << " ended " << out.summary;
  out.held = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() == failures_before;
  return out;
}

TEST(FaultMatrix, EveryCellHoldsTheInvariants) {
  std::string table = fmt::format("\n{:<16} {:<36} {:<5} {}\n", "PHASE", "FAULT", "HELD", "OUTCOME");
  int held = 0, total = 0;
  for (const auto& c : cells()) {
    SCOPED_TRACE(c.phase + " / " + c.fault);
    auto t0 = std::chrono::steady_clock::now();
    Outcome o = run_cell(c);
    o.summary += fmt::format(" ({:.1f} s)", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ++total;
    held += o.held;
    table += fmt::format("{:<16} {:<36} {:<5} {}\n", c.phase, c.fault, o.held ? "yes" : "NO", o.summary);
  }
  table += fmt::format("{} cells run, {} held\n", total, held);
  std::printf("%s", table.c_str());
  EXPECT_EQ(held, total);
}

}  // namespace
}  // namespace kvb::testing
