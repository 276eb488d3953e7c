// Disaster recovery (docs/restore.md "Disaster recovery"): a backup with
// --copy-data made in one test cluster (its snapshots' bytes exported into
// <location>/repository), that cluster deleted, and the VMs restored into a
// second cluster sharing only the backup location, their bytes coming from
// the repository through CDI upload (`--data-source repository`, or auto when
// the snapshots are not there). The oracle: every restored claim's SHA-256
// (the second cluster's /testcluster/v1/volumes) equals the backup's
// DataCopyRecord.sha256, which the first cluster's oracle vouched for.
#include "common/secret.h"
#include "common/subprocess.h"
#include "kube/object.h"
#include "testcluster/cdi_upload.h"
#include "tests/support/test_cluster.h"
#include "tests/support/volume_bytes.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
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
      - {name: db, volumes: [{name: root, type: dataVolume, size: 8Mi, storageClass: fast},
                             {name: data, type: persistentVolumeClaim, size: 4Mi, storageClass: fast}]}
)";

// The DR site: same storage class name, nothing else of the source.
const char* kTarget = R"(
storageClasses: [{name: fast, provisioner: csi.other.com}]
namespaces:
  - name: other
)";

const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
constexpr const char* kPassword = "correct horse battery staple";

struct Copied {
  std::string volume, sha256, volume_mode;
};

// backup create --copy-data in `a`; the copies' SHA-256, each checked against a's oracle.
std::vector<Copied> backup_with_copies(TestCluster& a, const std::filesystem::path& loc, const std::filesystem::path& pw,
                                       const std::string& name) {
  auto b = run_kvbackup(a, {"backup", "create", name, "-n", "prod", "--location", loc.string(), "--copy-data", "--password-file",
                            pw.string(), "-o", "json"});
  EXPECT_EQ(b.exit_code, 0) << b.out << b.err;
  std::vector<Copied> out;
  if (b.exit_code != 0) return out;
  auto rec = json::parse(b.out);
  for (const auto& v : rec.at("vms").at(0).at("volumes").as_array()) {
    const auto* copy = kube::object_at(v, {"copy"});
    EXPECT_TRUE(copy);
    if (!copy) continue;
    std::string sha(kube::str_at(*copy, {"sha256"}));
    EXPECT_EQ(sha, a.snapshot_sha256("prod", std::string(kube::str_at(v, {"volumeSnapshot"}))));
    out.push_back({std::string(kube::str_at(v, {"name"})), sha, std::string(kube::str_at(*copy, {"volumeMode"}))});
  }
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
    copied = backup_with_copies(a, loc, scratch / "pw", "nightly");
    ASSERT_EQ(copied.size(), 2u);
    ASSERT_NE(copied[0].sha256, copied[1].sha256);
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
  testcluster::cdi_upload(b.cluster()).break_uploads(1, 1 << 20);
  // Halted: a running guest would write into the restored claims before the oracle reads them.
  auto r = with({"restore", "create", "r1", "--from-backup", "nightly", "--password-file", (scratch / "pw").string(),
                 "--run-strategy", "Halted", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = json::parse(r.out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Completed");
  const auto& vm = rec.at("vms").as_array().at(0);
  int attempts = 0;
  for (const auto& c : vm.at("claims").as_array()) {
    std::string volume(kube::str_at(c, {"volume"})), claim(kube::str_at(c, {"claim"}));
    EXPECT_EQ(kube::str_at(c, {"dataSource"}), "repository");
    attempts += static_cast<int>(c.at("uploadAttempts").as_int64());
    std::string want, mode;
    for (const auto& cp : copied) {
      if (cp.volume != volume) continue;
      want = cp.sha256;
      mode = cp.volume_mode;
    }
    EXPECT_EQ(kube::str_at(c, {"sha256"}), want) << volume;
    // The oracle: the bytes in the restored claim.
    EXPECT_EQ(b.claim_sha256("other", claim), want) << volume;
    auto dv = b.client()->get(kDataVolumes, "other", claim);
    ASSERT_TRUE(dv);
    EXPECT_EQ(kube::str_at(*dv, {"status", "phase"}), "Succeeded");
    auto pvc = b.client()->get(kube::resources::kPersistentVolumeClaims, "other", claim);
    ASSERT_TRUE(pvc);
    EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound");
    if (!mode.empty()) {
      EXPECT_EQ(kube::str_at(*pvc, {"spec", "volumeMode"}), mode) << volume;  // as recorded
    }
  }
  EXPECT_EQ(attempts, 3);  // two volumes, one sent twice
  // Where the time went, stage by stage (docs/restore.md "Where the time goes").
  auto has_stages = [](const json::value& v, std::vector<const char*> stages) {
    const auto* m = kube::object_at(v, {"millis"});
    ASSERT_TRUE(m) << json::serialize(v);
    for (const char* s : stages) {
      ASSERT_TRUE(m->contains(s)) << s << " in " << json::serialize(*m);
      EXPECT_GE(m->at(s).to_number<int64_t>(), 0) << s;
    }
  };
  has_stages(json::value(rec), {"plan", "namespaces", "vms"});
  has_stages(vm, {"configs", "snapshots", "claims", "uploads", "bound", "vm", "running"});
  for (const auto& c : vm.at("claims").as_array()) has_stages(c, {"uploadReady", "token", "transfer", "succeeded"});
  auto restored = b.client()->get(kube::ResourceRef{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true}, "other", "db");
  ASSERT_TRUE(restored);
  std::string vols = json::serialize(*kube::value_at(*restored, {"spec", "template", "spec", "volumes"}));
  EXPECT_THAT(vols, HasSubstr("persistentVolumeClaim"));
  EXPECT_THAT(vols, HasSubstr(std::string(kube::str_at(vm.at("claims").as_array().at(0), {"claim"}))));

  // Every upload of a volume failing twice: the VM fails, what was made for it is removed, no VM.
  testcluster::cdi_upload(b.cluster()).break_uploads(2, 1 << 20);
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
  {
    std::ifstream in(loc / "restores" / "r2" / "restore.json");
    std::stringstream text;
    text << in.rdbuf();
    const auto r2 = json::parse(text.str());
    has_stages(r2.at("vms").at(0), {"claims", "uploads", "cleanup"});  // the failure's undo is timed too
  }

  // A rehearsal at the DR site: backup verify restores from the repository into a
  // temporary namespace, boots, reports, and keeps nothing.
  testcluster::cdi_upload(b.cluster()).break_uploads(0, 0);
  size_t dvs_before = datavolumes(b, "other");
  auto v = run_kvbackup(b, {"backup", "verify", "nightly", "--location", loc.string(), "--password-file", (scratch / "pw").string(),
                            "--upload-proxy-ca", (scratch / "cdi-ca.pem").string(), "-o", "json"});
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  auto ver = json::parse(v.out);
  EXPECT_EQ(kube::str_at(ver.at("vms").at(0), {"result"}), "Passed") << v.out;
  EXPECT_THAT(v.err, HasSubstr("restoring 2 volume(s) from the repository"));
  kube::ListOptions verify_ns;
  verify_ns.label_selector = "kvbackup.io/verify";
  auto namespaces = b.client()->list(kube::resources::kNamespaces, "", verify_ns);
  ASSERT_TRUE(namespaces);
  EXPECT_EQ(namespaces->items.size(), 0u);
  EXPECT_EQ(datavolumes(b, "other"), dvs_before);
  for (const auto& e : std::filesystem::directory_iterator(loc / "restores")) {
    EXPECT_EQ(e.path().filename().string().rfind("verify-", 0), std::string::npos) << e.path();
  }
}

// Killed while a volume is being uploaded: `kvbackup recover` removes the
// half-made DataVolumes (and with them their claims); no VM is left.
TEST(DisasterRecovery, KilledMidUploadRecoverRemovesTheHalfMadeDataVolumes) {
  TempDir scratch;
  auto loc = scratch.path() / "location";
  scratch.write("pw", kPassword, 0600);
  {
    TestCluster a(kSource);
    ASSERT_EQ(backup_with_copies(a, loc, scratch / "pw", "nightly").size(), 2u);
  }
  TestCluster b(kTarget);
  scratch.write("cdi-ca.pem", b.cluster().ca().cert_pem);
  testcluster::cdi_upload(b.cluster()).hold_uploads(true);
  std::vector<std::string> argv{kvbackup_binary(), "--kubeconfig", b.kubeconfig().string(), "restore", "create", "r1",
                                "--from-backup", "nightly", "--location", loc.string(), "--namespace-mapping", "prod:other",
                                "--data-source", "repository", "--upload-proxy-ca", (scratch / "cdi-ca.pem").string(),
                                "--password-file", (scratch / "pw").string()};
  auto child = spawn_process(argv, environment_with({}), {});
  ASSERT_TRUE(child) << child.error().message;
  ::close(child->stdin_fd);
  // The proxy counts an upload once it accepted it; then it holds it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (testcluster::cdi_upload(b.cluster()).uploads_started() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition, with a deadline
  }
  bool uploading = testcluster::cdi_upload(b.cluster()).uploads_started() >= 1;
  ::kill(child->pid, SIGKILL);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  for (int fd : {child->stdout_fd, child->stderr_fd}) ::close(fd);
  testcluster::cdi_upload(b.cluster()).hold_uploads(false);
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

// What else a DR site gets wrong (issue 18 "Bad input"): no upload proxy known,
// a storage class the target cluster does not have, a repository with a
// damaged pack. Each is a clear error, a non-zero exit, and no DataVolume,
// claim or VM is left. (No copies and a wrong password: the test above.)
TEST(DisasterRecovery, BadInputIsAClearErrorAndLeavesNothing) {
  TempDir scratch;
  auto loc = scratch.path() / "location";
  scratch.write("pw", kPassword, 0600);
  {
    TestCluster a(kSource);
    ASSERT_EQ(backup_with_copies(a, loc, scratch / "pw", "nightly").size(), 2u);
  }
  TestCluster b(kTarget);
  scratch.write("cdi-ca.pem", b.cluster().ca().cert_pem);
  const std::string proxy = testcluster::cdi_upload(b.cluster()).proxy_url();
  auto restore = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args{"restore", "create", name, "--from-backup", "nightly", "--location", loc.string(),
                                  "--namespace-mapping", "prod:other", "--data-source", "repository", "--password-file",
                                  (scratch / "pw").string(), "--upload-proxy-ca", (scratch / "cdi-ca.pem").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_kvbackup(b, args);
  };
  const kube::ResourceRef vms{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
  auto expect_nothing = [&](const std::string& name) {
    kube::ListOptions by_restore;
    by_restore.label_selector = "kvbackup.io/restore=" + name;
    for (const auto* ref : {&kDataVolumes, &kube::resources::kPersistentVolumeClaims, &vms}) {
      auto l = b.client()->list(*ref, "other", by_restore);
      ASSERT_TRUE(l);
      EXPECT_EQ(l->items.size(), 0u) << name << ": " << ref->resource << " left";
    }
    EXPECT_EQ(datavolumes(b, "other"), 0u) << name;
  };

  // No upload proxy: CDIConfig without status.uploadProxyURL and no --upload-proxy-url.
  const kube::ResourceRef cdi_configs{"cdi.kubevirt.io", "v1beta1", "cdiconfigs", "CDIConfig", false};
  ASSERT_TRUE(b.client()->patch(cdi_configs, "", "config", kube::PatchType::kMerge,
                                json::parse(R"({"status":{"uploadProxyURL":null}})"), {}, "status"));
  auto no_proxy = restore("r1", {});
  EXPECT_EQ(no_proxy.exit_code, 1) << no_proxy.out << no_proxy.err;
  EXPECT_THAT(no_proxy.err, HasSubstr("CDIConfig \"config\" has no status.uploadProxyURL"));
  EXPECT_THAT(no_proxy.err, HasSubstr("give --upload-proxy-url"));
  EXPECT_FALSE(std::filesystem::exists(loc / "restores" / "r1"));
  expect_nothing("r1");

  // A storage class the target cluster does not have.
  auto no_class = restore("r2", {"--upload-proxy-url", proxy, "--storage-class-mapping", "fast:gold"});
  EXPECT_NE(no_class.exit_code, 0) << no_class.out << no_class.err;
  EXPECT_THAT(no_class.err, HasSubstr("StorageClass \"gold\" not found"));
  EXPECT_FALSE(std::filesystem::exists(loc / "restores" / "r2"));
  expect_nothing("r2");

  // A damaged pack: every pack file has bytes flipped in its middle. The VM fails, naming
  // the volume and the byte range it could not read; what was made for it is removed.
  int damaged = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(loc / "repository" / "data")) {
    if (!e.is_regular_file()) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    auto size = static_cast<std::streamoff>(e.file_size());
    for (std::streamoff at = size / 2; at < size / 2 + 64 && at < size; ++at) {
      f.seekg(at);
      char c = 0;
      f.get(c);
      f.seekp(at);
      f.put(static_cast<char>(c ^ 0x5a));
    }
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  auto bad_pack = restore("r3", {"--upload-proxy-url", proxy});
  EXPECT_EQ(bad_pack.exit_code, 1) << bad_pack.out << bad_pack.err;
  std::string all = bad_pack.out + bad_pack.err;
  EXPECT_THAT(all, HasSubstr("prod/db"));
  EXPECT_THAT(all, ::testing::ContainsRegex("volume (root|data) \\(claim other/"));
  EXPECT_THAT(all, ::testing::ContainsRegex("bytes [0-9]+\\.\\.[0-9]+ of the image"));  // the byte range
  auto rec = run_kvbackup(b, {"restore", "describe", "r3", "--location", loc.string(), "-o", "json"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  auto doc = json::parse(rec.out);
  EXPECT_EQ(kube::str_at(doc, {"phase"}), "Failed");
  EXPECT_THAT(std::string(kube::str_at(doc.at("vms").at(0), {"reason"})), HasSubstr("repository snapshot"));
  expect_nothing("r3");
}

}  // namespace
}  // namespace kvb::testing
