// Changed-block tracking for `backup create --copy-data` (docs/backup.md,
// "Changed-block tracking") against the test cluster's SnapshotMetadata
// service, which computes deltas from the snapshots' real bytes: a second
// copy downloads only the changed regions (the exporter's own count of bytes
// served says so) and `repo get` of it gives the oracle's bytes; every
// missing piece (a bad token, a deleted base snapshot, no
// SnapshotMetadataService) falls back to the fingerprint map with the reason
// in the record, and the copy is still exact.
#include "common/subprocess.h"
#include "kube/object.h"
#include "testcluster/csi.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;

// One running VM with one Block volume (persistentVolumeClaim) of 64 MiB; the
// guest writes 4 KiB blocks at a few offsets as it runs, so every backup differs.
const char* kCbt = R"(
snapshotClasses:
  - {name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 20ms, snapshotMetadata: true}
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: data, type: persistentVolumeClaim, size: 64Mi, storageClass: fast}
)";
constexpr uint64_t kSize = 64 << 20;

class ChangeTracking {
 public:
  ChangeTracking() : tc(kCbt), loc((tc.dir() / "location").string()), pw((tc.dir() / "password").string()) {
    tc.dir().write("password", "correct horse battery staple\n", 0600);
    // The ServiceAccount whose token kvbackup asks for (the serviceaccount controller made it).
    ::setenv("KVBACKUP_SERVICE_ACCOUNT", "prod/default", 1);
  }

  // Runs a backup and returns the volume's record; checks the copy against the oracle with `repo get`.
  json::object backup(const std::string& name) {
    tc.clear_exports();
    auto r = run_kvbackup(tc, {"backup", "create", name, "-n", "prod", "--location", loc, "--copy-data", "--password-file", pw, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    if (r.exit_code != 0) return {};
    auto rec = json::parse(r.out).as_object();
    const auto& vm = rec.at("vms").as_array().at(0).as_object();
    EXPECT_EQ(kube::str_at(vm, {"phase"}), "Completed") << r.err;
    json::object vol = vm.at("volumes").as_array().at(0).as_object();
    const auto* copy = kube::object_at(vol, {"copy"});
    EXPECT_TRUE(copy);
    if (!copy) return vol;
    EXPECT_EQ(kube::str_at(*copy, {"error"}), "");
    std::string oracle = tc.snapshot_sha256("prod", std::string(kube::str_at(vol, {"volumeSnapshot"})));
    std::string out = (tc.dir() / ("restored-" + name)).string();
    auto g = run_kvbackup(tc, {"repo", "get", "--repo", loc + "/repository", "--password-file", pw,
                               std::string(kube::str_at(*copy, {"repositorySnapshot"})), out});
    EXPECT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(sha256_file(out), oracle) << name << ": the repository must give back the snapshot's bytes";
    return vol;
  }

  // Body bytes the exporter served for GETs since the last clear.
  int64_t served() {
    int64_t sum = 0;
    const json::object ex = tc.exports();
    for (const auto& q : ex.at("requests").as_array()) {
      if (kube::str_at(q, {"method"}) == "GET") sum += q.at("bytes").to_number<int64_t>();
    }
    return sum;
  }

  void kubectl(const std::vector<std::string>& args) {
    auto k = run_kubectl(tc.kubeconfig(), args);
    ASSERT_TRUE(k) << "kubectl is required";
    ASSERT_EQ(k->exit_code, 0) << k->err;
  }

  static std::string sha256_file(const std::string& path) {
    ProcessSpec s;
    s.argv = {"sha256sum", path};
    auto r = run_process(s);
    return r ? r->out.substr(0, 64) : "";
  }

  TestCluster tc;
  std::string loc, pw;
};

std::string copy_str(const json::object& vol, const char* field) {
  const auto* c = kube::object_at(vol, {"copy"});
  return c ? std::string(kube::str_at(*c, {field})) : "";
}
int64_t copy_int(const json::object& vol, const char* field) {
  const auto* c = kube::object_at(vol, {"copy"});
  return c && c->contains(field) ? c->at(field).to_number<int64_t>() : -1;
}

TEST(ChangeTracking, ASecondCopyDownloadsOnlyTheChangedRegions) {
  ChangeTracking t;
  auto v1 = t.backup("b1");
  EXPECT_EQ(copy_str(v1, "changeTracking"), "full");
  EXPECT_THAT(copy_str(v1, "changeTrackingReason"), HasSubstr("no earlier copy"));
  // The first copy reads only what the driver says is allocated (the guest's
  // few written blocks of a sparse volume), yet its digest is the image's.
  const int64_t first = copy_int(v1, "downloadedBytes");
  EXPECT_TRUE(kube::object_at(v1, {"copy"})->contains("allocatedOnly"));
  EXPECT_GT(first, 0);
  EXPECT_LE(first, static_cast<int64_t>(kSize / 8));
  EXPECT_EQ(t.served(), first) << "the exporter served only the allocated ranges";
  EXPECT_EQ(copy_str(v1, "sha256"), t.tc.snapshot_sha256("prod", std::string(kube::str_at(v1, {"volumeSnapshot"}))));

  auto v2 = t.backup("b2");
  EXPECT_EQ(copy_str(v2, "changeTracking"), "snapshot-metadata") << copy_str(v2, "changeTrackingReason");
  EXPECT_EQ(copy_str(v2, "changeTrackingReason"), "");
  EXPECT_EQ(copy_int(v2, "bytes"), static_cast<int64_t>(kSize));
  // The guest wrote 4 KiB blocks at 4 places: at most 4 map regions of 1 MiB, and at least one.
  const int64_t downloaded = copy_int(v2, "downloadedBytes");
  EXPECT_GE(downloaded, 1 << 20);
  EXPECT_LE(downloaded, 4 << 20);
  EXPECT_EQ(t.served(), downloaded) << "the exporter served only the changed regions";
  EXPECT_EQ(copy_str(v2, "sha256"), "") << "no digest of bytes that were not read";

  // describe says which method each volume used.
  auto d = run_kvbackup(t.tc, {"backup", "describe", "b2", "--location", t.loc});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_THAT(d.out, HasSubstr("change tracking: snapshot-metadata, " + std::to_string(downloaded) + " bytes downloaded"));
  d = run_kvbackup(t.tc, {"backup", "describe", "b1", "--location", t.loc});
  EXPECT_THAT(d.out, HasSubstr("change tracking: full, " + std::to_string(first) + " bytes downloaded, only the allocated ranges"));
}

// A volume that is mostly data: the allocated ranges are most of it, the
// unallocated rest is stored as holes, and the copy gives back every byte.
TEST(ChangeTracking, AFirstCopyOfAFilledVolumeReadsItsAllocatedRangesAndIsExact) {
  ChangeTracking t;
  // Random data from 1 MiB to 40 MiB, written into the claim's file (the oracle hashes the file).
  std::filesystem::path claim;
  t.tc.cluster().loop().run_sync([&] {
    auto w = t.tc.cluster().csi().volume_store().writable_claim_path("prod", "db-data");
    if (w) claim = *w;
  });
  ASSERT_FALSE(claim.empty()) << "the claim has no file";
  {
    std::string bytes(39 << 20, '\0');
    std::mt19937_64 rng(7);
    for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      const uint64_t v = rng();
      std::memcpy(bytes.data() + i, &v, 8);
    }
    std::fstream f(claim, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << claim;
    f.seekp(1 << 20);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(f.good());
  }
  t.tc.cluster().loop().run_sync([&] { t.tc.cluster().csi().volume_store().claim_written("prod", "db-data"); });
  auto v1 = t.backup("b1");
  EXPECT_TRUE(kube::object_at(v1, {"copy"})->contains("allocatedOnly"));
  const int64_t first = copy_int(v1, "downloadedBytes");
  EXPECT_GE(first, 39 << 20);
  EXPECT_LT(first, 42 << 20);
  EXPECT_EQ(copy_str(v1, "sha256"), t.tc.snapshot_sha256("prod", std::string(kube::str_at(v1, {"volumeSnapshot"}))));
}

TEST(ChangeTracking, WithoutAUsableDeltaTheCopyFallsBackToTheFingerprintMapAndSaysWhy) {
  ChangeTracking t;
  auto v1 = t.backup("b1");
  ASSERT_EQ(copy_str(v1, "changeTracking"), "full");

  // A SnapshotMetadataService whose audience is not the server's: the token is refused.
  t.kubectl({"patch", "snapshotmetadataservices.cbt.storage.k8s.io", "csi.example.com", "--type", "merge", "-p",
             R"({"spec": {"audience": "somebody-else"}})"});
  auto v2 = t.backup("b2");
  EXPECT_EQ(copy_str(v2, "changeTracking"), "fingerprint");
  EXPECT_THAT(copy_str(v2, "changeTrackingReason"), HasSubstr("not a valid token for audience"));
  EXPECT_THAT(copy_str(v2, "allocatedOnlyReason"), HasSubstr("not a valid token for audience"));
  EXPECT_EQ(copy_int(v2, "downloadedBytes"), static_cast<int64_t>(kSize));
  EXPECT_GE(t.served(), static_cast<int64_t>(kSize));
  t.kubectl({"patch", "snapshotmetadataservices.cbt.storage.k8s.io", "csi.example.com", "--type", "merge", "-p",
             R"({"spec": {"audience": "snapshot-metadata.csi.example.com"}})"});

  // The previous copy's VolumeSnapshot deleted: nothing to take a delta from.
  t.kubectl({"delete", "volumesnapshot", "-n", "prod", std::string(kube::str_at(v2, {"volumeSnapshot"}))});
  auto v3 = t.backup("b3");
  EXPECT_EQ(copy_str(v3, "changeTracking"), "fingerprint");
  EXPECT_THAT(copy_str(v3, "changeTrackingReason"), HasSubstr("no longer exists"));
  // No delta, but the service still names the allocated ranges: the fingerprint map works on those.
  EXPECT_TRUE(kube::object_at(v3, {"copy"})->contains("allocatedOnly"));
  EXPECT_LT(copy_int(v3, "downloadedBytes"), static_cast<int64_t>(kSize / 8));

  // The delta works again from b3's snapshot...
  auto v4 = t.backup("b4");
  EXPECT_EQ(copy_str(v4, "changeTracking"), "snapshot-metadata") << copy_str(v4, "changeTrackingReason");
  EXPECT_LT(copy_int(v4, "downloadedBytes"), static_cast<int64_t>(kSize / 8));

  // ...until the driver offers no SnapshotMetadataService.
  t.kubectl({"delete", "snapshotmetadataservices.cbt.storage.k8s.io", "csi.example.com"});
  auto v5 = t.backup("b5");
  EXPECT_EQ(copy_str(v5, "changeTracking"), "fingerprint");
  EXPECT_THAT(copy_str(v5, "changeTrackingReason"), HasSubstr("csi.example.com has no SnapshotMetadataService"));
  EXPECT_THAT(copy_str(v5, "allocatedOnlyReason"), HasSubstr("csi.example.com has no SnapshotMetadataService"));
  EXPECT_EQ(copy_int(v5, "downloadedBytes"), static_cast<int64_t>(kSize));
}

}  // namespace
}  // namespace kvb::testing
