// Disaster recovery (docs/restore.md "Disaster recovery"): a backup made in
// one test cluster, that cluster deleted, and the VMs restored into a second
// cluster sharing only the backup location, their bytes coming from the
// repository through CDI upload (`--data-source repository`, or auto when the
// snapshots are not there).
//
// The backup side copies no bytes here: the test cluster's
// VirtualMachineExport is not merged yet, so each volume's image is put into
// <location>/repository directly and its DataCopyRecord written into the
// backup record by hand, exactly as `backup create --copy-data` records it.
#include "common/secret.h"
#include "common/subprocess.h"
#include "kube/object.h"
#include "record/backup_record.h"
#include "record/naming.h"
#include "repo/repository.h"
#include "testcluster/cdi_upload.h"
#include "tests/support/test_cluster.h"
#include "tests/support/volume_bytes.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;

const char* kSource = R"(
storageClasses: [{name: fast, provisioner: csi.example.com}]
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 10ms, readyLatency: 10ms}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, size: 4Mi, storageClass: fast},
                             {name: data, type: persistentVolumeClaim, size: 4Mi, storageClass: fast}]}
)";

// The DR site: same storage class name, nothing else of the source.
const char* kTarget = R"(
storageClasses: [{name: fast, provisioner: csi.other.com}]
namespaces:
  - name: other
)";

const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
constexpr size_t kImage = 4 << 20;
constexpr const char* kPassword = "correct horse battery staple";

struct Copied {
  std::string volume, sha256;
};

// Puts an image per volume of every VM into <loc>/repository and records it
// as backup `name`'s copy (what --copy-data records).
std::vector<Copied> copy_by_hand(const std::filesystem::path& loc, const std::string& name, const TempDir& scratch) {
  auto repo_dir = loc / "repository";
  repo::InitOptions io;
  io.scrypt_n = 1 << 10;
  EXPECT_TRUE(repo::Repository::init(repo_dir, Secret(kPassword), io));
  auto repo = repo::Repository::open(repo_dir, Secret(kPassword));
  EXPECT_TRUE(repo);
  auto path = loc / record::backup_record_path(name);
  auto rec = record::parse_backup_record(read_whole(path), path.string());
  EXPECT_TRUE(rec) << rec.error().describe();
  std::vector<Copied> out;
  uint32_t seed = 1;
  for (auto& vm : rec->vms) {
    for (auto& vol : vm.volumes) {
      std::string image = disk_image(kImage, seed++);
      std::string file = vol.name + ".img";
      scratch.write(file, image);
      std::string series = "cluster-a/" + vm.ns + "/" + vm.name + "/" + vol.name;
      auto put = (*repo)->put(series, scratch / file);
      EXPECT_TRUE(put) << put.error().describe();
      record::DataCopyRecord c;
      c.series = series;
      c.repository_snapshot = put->snapshot;
      c.volume_mode = "Block";
      c.bytes = kImage;
      c.new_bytes = put->new_bytes;
      c.stored_bytes = put->stored_bytes;
      c.sha256 = sha256_hex(image);
      vol.copy = c;
      out.push_back({vol.name, c.sha256});
    }
  }
  std::ofstream(path) << json::serialize(rec->to_json());
  return out;
}

size_t datavolumes(TestCluster& tc, const std::string& ns) {
  auto l = tc.client()->list(kDataVolumes, ns);
  return l ? l->items.size() : 999;
}

TEST(DisasterRecovery, RestoreIntoAnotherClusterFromTheRepositoryAfterTheFirstIsGone) {
  TempDir scratch;
  auto loc = scratch.path() / "location";
  scratch.write("pw", kPassword, 0600);
  scratch.write("wrong-pw", "not the password", 0600);
  std::vector<Copied> copied;
  {
    TestCluster a(kSource);
    auto plain = run_kvbackup(a, {"backup", "create", "plain", "-n", "prod", "--location", loc.string()});
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    auto b = run_kvbackup(a, {"backup", "create", "nightly", "-n", "prod", "--location", loc.string()});
    ASSERT_EQ(b.exit_code, 0) << b.err;
    copied = copy_by_hand(loc, "nightly", scratch);
    ASSERT_EQ(copied.size(), 2u);
  }  // cluster A is gone: its API server, snapshots and volumes

  TestCluster b(kTarget);
  scratch.write("cdi-ca.pem", b.cluster().ca().cert_pem);
  std::vector<std::string> common{"--location", loc.string(), "--namespace-mapping", "prod:other", "--upload-proxy-ca",
                                  (scratch / "cdi-ca.pem").string()};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return run_kvbackup(b, args);
  };

  // Bad input: nothing is created.
  auto no_copies = with({"restore", "create", "r0", "--from-backup", "plain", "--data-source", "repository", "--password-file",
                         (scratch / "pw").string()});
  EXPECT_NE(no_copies.exit_code, 0);
  EXPECT_THAT(no_copies.err, HasSubstr("has no copy of this volume in the repository (the backup was made without --copy-data)"));
  auto snapshots_gone = with({"restore", "create", "r0", "--from-backup", "nightly", "--data-source", "snapshot"});
  EXPECT_NE(snapshots_gone.exit_code, 0);
  EXPECT_THAT(snapshots_gone.err, HasSubstr("no longer exists"));
  auto wrong = with({"restore", "create", "r0", "--from-backup", "nightly", "--password-file", (scratch / "wrong-pw").string()});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, HasSubstr("wrong password"));
  EXPECT_EQ(datavolumes(b, "other"), 0u);
  EXPECT_FALSE(std::filesystem::exists(loc / "restores" / "r0"));

  // The restore: auto picks the repository (the snapshots are not in this cluster). One upload
  // pod restarts mid-body: that volume is sent again from byte 0.
  b.cluster().cdi_upload().break_uploads(1, 1 << 20);
  auto r = with({"restore", "create", "r1", "--from-backup", "nightly", "--password-file", (scratch / "pw").string(), "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = json::parse(r.out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Completed");
  const auto& vm = rec.at("vms").as_array().at(0);
  int attempts = 0;
  for (const auto& c : vm.at("claims").as_array()) {
    std::string volume(kube::str_at(c, {"volume"})), claim(kube::str_at(c, {"claim"}));
    EXPECT_EQ(kube::str_at(c, {"dataSource"}), "repository");
    attempts += static_cast<int>(c.at("uploadAttempts").as_int64());
    std::string want;
    for (const auto& cp : copied) {
      if (cp.volume == volume) want = cp.sha256;
    }
    EXPECT_EQ(kube::str_at(c, {"sha256"}), want) << volume;
    // The oracle: the bytes in the restored claim.
    EXPECT_EQ(sha256_hex(read_whole(upload_claim_file(b, "other", claim))), want) << volume;
    auto dv = b.client()->get(kDataVolumes, "other", claim);
    ASSERT_TRUE(dv);
    EXPECT_EQ(kube::str_at(*dv, {"status", "phase"}), "Succeeded");
    auto pvc = b.client()->get(kube::resources::kPersistentVolumeClaims, "other", claim);
    ASSERT_TRUE(pvc);
    EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound");
    EXPECT_EQ(kube::str_at(*pvc, {"spec", "volumeMode"}), "Block");
  }
  EXPECT_EQ(attempts, 3);  // two volumes, one sent twice
  auto restored = b.client()->get(kube::ResourceRef{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true}, "other", "db");
  ASSERT_TRUE(restored);
  std::string vols = json::serialize(*kube::value_at(*restored, {"spec", "template", "spec", "volumes"}));
  EXPECT_THAT(vols, HasSubstr("persistentVolumeClaim"));
  EXPECT_THAT(vols, HasSubstr(std::string(kube::str_at(vm.at("claims").as_array().at(0), {"claim"}))));

  // Every upload of a volume failing twice: the VM fails, what was made for it is removed, no VM.
  b.cluster().cdi_upload().break_uploads(2, 1 << 20);
  auto f = with({"restore", "create", "r2", "--from-backup", "nightly", "--rename", "db:db2", "--parallel-uploads", "1",
                 "--password-file", (scratch / "pw").string()});
  EXPECT_EQ(f.exit_code, 1) << f.out << f.err;
  EXPECT_THAT(f.out + f.err, HasSubstr("sent twice from the start"));
  kube::ListOptions by_restore;
  by_restore.label_selector = "kvbackup.io/restore=r2";
  auto left = b.client()->list(kDataVolumes, "other", by_restore);
  ASSERT_TRUE(left);
  EXPECT_EQ(left->items.size(), 0u);
  EXPECT_FALSE(b.client()->get(kube::ResourceRef{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true}, "other", "db2"));
}

// Killed while a volume is being uploaded: `kvbackup recover` removes the
// half-made DataVolumes (and with them their claims); no VM is left.
TEST(DisasterRecovery, KilledMidUploadRecoverRemovesTheHalfMadeDataVolumes) {
  TempDir scratch;
  auto loc = scratch.path() / "location";
  scratch.write("pw", kPassword, 0600);
  {
    TestCluster a(kSource);
    auto b = run_kvbackup(a, {"backup", "create", "nightly", "-n", "prod", "--location", loc.string()});
    ASSERT_EQ(b.exit_code, 0) << b.err;
    ASSERT_EQ(copy_by_hand(loc, "nightly", scratch).size(), 2u);
  }
  TestCluster b(kTarget);
  scratch.write("cdi-ca.pem", b.cluster().ca().cert_pem);
  b.cluster().cdi_upload().hold_uploads(true);
  std::vector<std::string> argv{kvbackup_binary(), "--kubeconfig", b.kubeconfig().string(), "restore", "create", "r1",
                                "--from-backup", "nightly", "--location", loc.string(), "--namespace-mapping", "prod:other",
                                "--data-source", "repository", "--upload-proxy-ca", (scratch / "cdi-ca.pem").string(),
                                "--password-file", (scratch / "pw").string()};
  auto child = spawn_process(argv, environment_with({}), {});
  ASSERT_TRUE(child) << child.error().message;
  ::close(child->stdin_fd);
  // The proxy counts an upload once it accepted it; then it holds it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (b.cluster().cdi_upload().uploads_started() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition, with a deadline
  }
  bool uploading = b.cluster().cdi_upload().uploads_started() >= 1;
  ::kill(child->pid, SIGKILL);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  for (int fd : {child->stdout_fd, child->stderr_fd}) ::close(fd);
  b.cluster().cdi_upload().hold_uploads(false);
  ASSERT_TRUE(uploading) << "no upload began within 60 s";
  EXPECT_GT(datavolumes(b, "other"), 0u);

  auto r = run_kvbackup(b, {"recover", "--location", loc.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("restore r1: rolled back other/db"));
  EXPECT_EQ(datavolumes(b, "other"), 0u);
  kube::ListOptions by_restore;
  by_restore.label_selector = "kvbackup.io/restore=r1";
  auto claims = b.client()->list(kube::resources::kPersistentVolumeClaims, "other", by_restore);
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->items.size(), 0u);
  EXPECT_FALSE(b.client()->get(kube::ResourceRef{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true}, "other", "db"));
}

}  // namespace
}  // namespace kvb::testing
