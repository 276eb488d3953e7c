// The fault matrix's copy-data cells (issue 17 item 7): `backup create
// --copy-data` against faults of the data path, each injected the way a user
// meets it:
//   - an unreachable export (links.external at a port where nothing listens),
//   - a 401 from the exporter (it expects a token other than the Secret's),
//   - a temporary claim that never binds (the CSI driver fails every restore
//     from a snapshot: the claim stays Pending),
//   - a full repository disk (FullDiskLocation under the repository: a tmpfs
//     needs root to mount, RLIMIT_FSIZE gives EFBIG and SIGXFSZ instead of
//     ENOSPC; the location layer is where every repository write goes),
//   - a wrong repository password (through the CLI, which opens the
//     repository before anything is frozen).
// Every cell holds: each failed copy's error names the VM and the volume and
// says what failed; a VM with a failed copy is PartiallyFailed with the reason
// (its snapshots stay FileSystemConsistent); nothing is frozen and the journal
// is cleared; no temporary claim, export or token Secret is left; the
// repository passes `kvbackup repo check --read-data`; and the cell ends with
// the outcome it lists. The test prints the matrix.
#include "tests/backup/backup_fixture.h"
#include "tests/support/failing_location.h"

#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "record/naming.h"

#include <boost/json.hpp>
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <algorithm>
#include <cctype>

namespace kvb::testing {
namespace {
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 20ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, count: 2, volumes: [{name: root, type: dataVolume, size: 8Mi, storageClass: fast},
                                       {name: data, type: persistentVolumeClaim, size: 8Mi, storageClass: fast}]}
)";
constexpr const char* kPassword = "correct horse battery staple";

struct CopyCell {
  std::string fault;
  std::vector<std::string> faults;                 // posted before the backup
  std::function<void(BackupFixture&)> prepare;     // anything else before the backup
  uint64_t disk_capacity = 0;                      // > 0: the repository's disk holds this many bytes
  bool wrong_password = false;                     // through the CLI
  std::string says;                                // every failed copy's error says this (case-insensitive)
  std::vector<std::string> expect;                 // outcomes: "N of 4 copies failed", "refused"
};

std::vector<CopyCell> cells() {
  auto failed = [](int n) { return fmt::format("{} of 4 copies failed", n); };
  return {
      {"export unreachable (closed port)", {R"({"type":"export-unreachable","namespace":"prod","count":1})"}, {}, 0, false,
       "connection refused", {failed(1)}},
      {"exporter answers 401 (wrong token)", {R"({"type":"export-wrong-token","namespace":"prod","count":1})"}, {}, 0, false,
       "the exporter refused the export token (401 Unauthorized)", {failed(1)}},
      {"temporary claim never binds",
       {R"({"type":"restore-pending","namespace":"prod","message":"csi.example.com: restore from snapshot failed: quota exceeded"})"},
       {}, 0, false, "is not Bound", {failed(4)}},
      // Each volume's data is four written 4 KiB blocks (16 KiB stored; the rest is zero runs): room for one.
      {"repository disk full", {}, {}, 24u << 10, false, "No space left on device", {failed(1), failed(2), failed(3), failed(4)}},
      {"wrong repository password", {}, {}, 0, true, "", {"refused"}},
  };
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Temporary claims, exports and token Secrets of copies, as the cluster holds them.
std::vector<std::string> temporaries(TestCluster& tc) {
  kube::ListOptions lo;
  lo.label_selector = std::string(record::kRoleLabel) + "=" + record::kDataCopyRole;
  std::vector<std::string> left;
  for (const auto* ref : {&kube::resources::kPersistentVolumeClaims, &kubevirt::kVirtualMachineExports, &kube::resources::kSecrets}) {
    auto list = tc.client()->list(*ref, "prod", lo);
    EXPECT_TRUE(list) << list.error().message;
    if (!list) continue;
    for (const auto& i : list->items) left.push_back(ref->resource + "/" + std::string(kube::name_of(i.as_object())));
  }
  return left;
}

void expect_repository_checks(BackupFixture& f, const std::filesystem::path& password_file) {
  auto r = run_kvbackup(f.tc, {"repo", "check", "--read-data", "--repo", (f.location_dir / "repository").string(), "--password-file",
                               password_file.string()});
  EXPECT_EQ(r.exit_code, 0) << "repo check --read-data: " << r.out << r.err;
}

struct Outcome {
  bool held = false;
  std::string summary;
};

Outcome run_cell(const CopyCell& c) {
  int failures_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  BackupFixture f(kScenario);
  f.tc.dir().write("password", std::string(kPassword) + "\n", 0600);
  f.tc.dir().write("wrong-password", "tr0ub4dor&3\n", 0600);
  const auto password_file = f.tc.dir() / "password";
  auto repo_dir = f.location_dir / "repository";
  std::filesystem::create_directories(repo_dir);
  auto inner = location::open_local(repo_dir);
  if (!inner) throw std::runtime_error(inner.error().message);
  std::shared_ptr<location::Location> repo_loc(std::move(*inner));
  if (auto st = repo::Repository::init(*repo_loc, Secret(kPassword)); !st) throw std::runtime_error(st.error().message);
  for (const auto& fault : c.faults) f.tc.add_fault(fault);
  if (c.prepare) c.prepare(f);
  Outcome out;

  if (c.wrong_password) {
    size_t freezes = f.tc.events("Freeze").size();
    auto r = run_kvbackup(f.tc, {"backup", "create", "cell", "-n", "prod", "--location", f.location_dir.string(), "--copy-data",
                                 "--password-file", (f.tc.dir() / "wrong-password").string(), "-o", "json"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.err, HasSubstr("repository"));
    EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("password"), HasSubstr("key")));
    EXPECT_THAT(r.err, ::testing::Not(HasSubstr("tr0ub4dor"))) << "the password is never shown";
    EXPECT_EQ(f.tc.events("Freeze").size(), freezes) << "no freeze for a backup that cannot copy";
    EXPECT_FALSE(f.location->exists("backups/cell/backup.json"));
    f.expect_nothing_frozen();
    out.summary = "refused: " + r.err.substr(0, std::min<size_t>(r.err.find('\n'), 60));
    EXPECT_THAT(c.expect, ::testing::Contains("refused"));
  } else {
    std::shared_ptr<location::Location> where = repo_loc;
    std::shared_ptr<FullDiskLocation> disk;
    if (c.disk_capacity > 0) where = disk = std::make_shared<FullDiskLocation>(repo_loc, c.disk_capacity);
    auto repo = repo::Repository::open(where, Secret(kPassword));
    if (!repo) throw std::runtime_error(repo.error().message);
    auto spec = f.spec("cell");
    spec.copy_data = true;
    spec.data_concurrency = 4;
    spec.ready_timeout = 5s;         // also how long a copy waits for its export
    spec.data_retry_budget = 2s;     // an unreachable exporter is given up on after this
    backup::BackupRunner runner(f.tc.client(), *f.location, spec, {}, repo->get());
    auto rec = runner.run({});
    EXPECT_TRUE(rec) << rec.error().message;
    if (!rec) {
      return out;
    }
    f.expect_truthful(*rec);
    int failed = 0;
    std::string first_error;
    for (const auto& vm : rec->vms) {
      EXPECT_EQ(vm.consistency, record::Consistency::kFileSystemConsistent) << vm.name << ": " << vm.reason;
      bool vm_failed = false;
      for (const auto& vol : vm.volumes) {
        EXPECT_TRUE(vol.copy) << vm.name << " " << vol.name << ": no copy was recorded";
        if (!vol.copy) continue;
        if (vol.copy->ok()) {
          EXPECT_FALSE(vol.copy->repository_snapshot.empty());
          continue;
        }
        ++failed;
        vm_failed = true;
        if (first_error.empty()) first_error = vol.copy->error;
        EXPECT_THAT(vol.copy->error, HasSubstr("copy of VM prod/" + vm.name + " volume " + vol.name + ": "));
        EXPECT_THAT(lower(vol.copy->error), HasSubstr(lower(c.says)));
        EXPECT_TRUE(vol.copy->repository_snapshot.empty());
      }
      if (vm_failed) {
        EXPECT_EQ(vm.phase, record::VmPhase::kPartiallyFailed) << vm.name;
        EXPECT_THAT(vm.reason, HasSubstr("was not copied into the repository")) << vm.name;
      } else {
        EXPECT_EQ(vm.phase, record::VmPhase::kCompleted) << vm.name << ": " << vm.reason;
      }
    }
    EXPECT_EQ(rec->phase, failed ? record::BackupPhase::kPartiallyFailed : record::BackupPhase::kCompleted);
    if (disk) {
      EXPECT_GT(disk->refused(), 0u) << "the disk was never full";
    }
    repo->reset();  // `repo check` below takes the repository's lock
    out.summary = fmt::format("{} of 4 copies failed", failed);
    EXPECT_THAT(c.expect, ::testing::Contains(out.summary)) << c.fault;
    if (!first_error.empty()) out.summary += ": " + first_error.substr(0, 90);
  }
  EXPECT_THAT(temporaries(f.tc), ::testing::IsEmpty()) << "temporary copy objects left";
  expect_repository_checks(f, password_file);
  out.held = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() == failures_before;
  return out;
}

TEST(FaultMatrix, EveryCopyDataCellHoldsTheInvariants) {
  std::string table = fmt::format("\n{:<36} {:<5} {}\n", "COPY-DATA FAULT", "HELD", "OUTCOME");
  int held = 0, total = 0;
  for (const auto& c : cells()) {
    SCOPED_TRACE(c.fault);
    auto t0 = std::chrono::steady_clock::now();
    Outcome o = run_cell(c);
    o.summary += fmt::format(" ({:.1f} s)", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ++total;
    held += o.held;
    table += fmt::format("{:<36} {:<5} {}\n", c.fault, o.held ? "yes" : "NO", o.summary);
  }
  table += fmt::format("{} cells run, {} held\n", total, held);
  std::printf("%s", table.c_str());
  EXPECT_EQ(held, total);
}

}  // namespace
}  // namespace kvb::testing
