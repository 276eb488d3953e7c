// The test cluster's bytes and VirtualMachineExports, checked with real
// clients (curl, gzip, kubectl): volumes are sparse files whose snapshots are
// point-in-time copies, restored claims hold the snapshot's bytes, and an
// export serves exactly those bytes (raw with ranges, gzip) behind a token.
#include "common/base64.h"
#include "common/subprocess.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "testcluster/export/http_ranges.h"
#include "testcluster/storage/volume_store.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sys/stat.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const kube::ResourceRef kVme{"export.kubevirt.io", "v1beta1", "virtualmachineexports", "VirtualMachineExport", true};

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: rootdisk, type: dataVolume, size: 64Mi, storageClass: fast}]
      - name: big
        running: false
        volumes: [{name: rootdisk, type: dataVolume, size: 50Gi, storageClass: fast}]
)";

ProcessResult run(std::vector<std::string> argv, const std::string& stdin_data = {}) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.stdin_data = stdin_data;
  spec.timeout = 60s;
  spec.output_cap = 256 << 20;
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

std::string sha256_of(const std::string& bytes) {
  auto r = run({"sha256sum"}, bytes);
  return r.out.substr(0, 64);
}

json::object create(TestCluster& tc, const kube::ResourceRef& ref, json::object obj) {
  auto r = tc.client()->create(ref, "prod", obj);
  EXPECT_TRUE(r) << r.error().describe();
  return r ? *r : json::object();
}

json::object wait_for(TestCluster& tc, const kube::ResourceRef& ref, const std::string& name,
                      const std::function<bool(const json::object*)>& pred) {
  auto r = kube::wait_for_object(tc.client(), ref, "prod", name, pred, 20s);
  EXPECT_TRUE(r) << r.error().describe();
  return r ? *r : json::object();
}

json::object export_of(const std::string& name, const std::string& kind, const std::string& source) {
  return json::object{{"apiVersion", "export.kubevirt.io/v1beta1"},
                      {"kind", "VirtualMachineExport"},
                      {"metadata", json::object{{"name", name}}},
                      {"spec", json::object{{"source", json::object{{"apiGroup", kind == "VolumeSnapshot" ? "snapshot.storage.k8s.io" : ""},
                                                                    {"kind", kind},
                                                                    {"name", source}}}}}};
}

std::string phase_of(const json::object* o) { return o ? std::string(kube::str_at(*o, {"status", "phase"})) : ""; }

std::string ready_reason(const json::object& o) {
  if (const auto* conds = kube::array_at(o, {"status", "conditions"})) {
    for (const auto& c : *conds) {
      if (kube::str_at(c, {"type"}) == "Ready") return std::string(kube::str_at(c, {"reason"}));
    }
  }
  return {};
}

TEST(SimExport, RestoredClaimExportedAndDownloadedWithCurlHasTheSnapshotsBytes) {
  TestCluster tc(kScenario);
  // A snapshot of the running VM's disk, a claim restored from it, and an export of that claim.
  create(tc, kube::resources::kVolumeSnapshots,
         {{"apiVersion", "snapshot.storage.k8s.io/v1"},
          {"kind", "VolumeSnapshot"},
          {"metadata", json::object{{"name", "snap1"}}},
          {"spec", json::object{{"source", json::object{{"persistentVolumeClaimName", "db-rootdisk"}}}}}});
  wait_for(tc, kube::resources::kVolumeSnapshots, "snap1",
           [](const json::object* o) { return o && kube::bool_at(*o, {"status", "readyToUse"}).value_or(false); });
  create(tc, kube::resources::kPersistentVolumeClaims,
         {{"apiVersion", "v1"},
          {"kind", "PersistentVolumeClaim"},
          // A VM disk on a file-system claim (CDI's content type says so): the export offers it raw.
          // Filesystem like its source: a snapshot does not restore into another volume mode.
          {"metadata", json::object{{"name", "restored"},
                                    {"annotations", json::object{{"cdi.kubevirt.io/storage.contentType", "kubevirt"}}}}},
          {"spec", json::object{{"storageClassName", "fast"},
                                {"volumeMode", "Filesystem"},
                                {"accessModes", json::array{"ReadWriteOnce"}},
                                {"resources", json::object{{"requests", json::object{{"storage", "64Mi"}}}}},
                                {"dataSourceRef", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                               {"kind", "VolumeSnapshot"},
                                                               {"name", "snap1"}}}}}});
  create(tc, kVme, export_of("exp1", "PersistentVolumeClaim", "restored"));
  auto vme = wait_for(tc, kVme, "exp1", [](const json::object* o) { return phase_of(o) == "Ready"; });

  // The oracle: the snapshot's bytes, the restored claim's, and the running disk's (newer) differ as they should.
  std::string snap_sha = tc.snapshot_sha256("prod", "snap1");
  ASSERT_EQ(snap_sha.size(), 64u) << snap_sha;
  EXPECT_EQ(tc.claim_sha256("prod", "restored"), snap_sha);
  EXPECT_NE(tc.claim_sha256("prod", "db-rootdisk"), snap_sha) << "the guest kept writing after the cut";
  EXPECT_NE(snap_sha, sha256_of(std::string(64 << 20, '\0'))) << "the guest wrote something before the cut";

  // The generated token Secret, the links, the CA.
  EXPECT_EQ(kube::str_at(vme, {"status", "tokenSecretRef"}), "export-token-exp1");
  EXPECT_EQ(kube::str_at(vme, {"status", "serviceName"}), "virt-export-exp1");
  EXPECT_FALSE(kube::str_at(vme, {"status", "ttlExpirationTime"}).empty());
  auto secret = tc.client()->get(kube::resources::kSecrets, "prod", "export-token-exp1");
  ASSERT_TRUE(secret) << secret.error().describe();
  auto token = base64_decode(kube::str_at(*secret, {"data", "token"}));
  ASSERT_TRUE(token);
  EXPECT_EQ(token->size(), 20u);
  std::string raw_url, gz_url;
  const auto* ext = kube::array_at(vme, {"status", "links", "external", "volumes"});
  const auto* internal = kube::array_at(vme, {"status", "links", "internal", "volumes"});
  ASSERT_TRUE(ext && internal && ext->size() == 1 && internal->size() == 1);
  for (const auto& f : *kube::array_at(ext->at(0), {"formats"})) {
    if (kube::str_at(f, {"format"}) == "raw") raw_url = std::string(kube::str_at(f, {"url"}));
    if (kube::str_at(f, {"format"}) == "gzip") gz_url = std::string(kube::str_at(f, {"url"}));
  }
  ASSERT_THAT(raw_url, HasSubstr("/api/export.kubevirt.io/v1beta1/namespaces/prod/virtualmachineexports/exp1/volumes/restored/disk.img"));
  EXPECT_THAT(std::string(kube::str_at(kube::array_at(internal->at(0), {"formats"})->at(0), {"url"})),
              HasSubstr("https://virt-export-exp1.prod.svc/volumes/restored/disk.img"));
  tc.dir().write("export-ca.pem", std::string(kube::str_at(vme, {"status", "links", "external", "cert"})));
  const std::string ca = (tc.dir() / "export-ca.pem").string();
  const std::string hdr = "x-kubevirt-export-token: " + *token;

  // Whole image with the header; gzip with the query parameter.
  auto whole = run({"curl", "-sS", "--fail", "--cacert", ca, "-H", hdr, raw_url});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  ASSERT_EQ(whole.out.size(), size_t{64} << 20);
  EXPECT_EQ(sha256_of(whole.out), snap_sha);
  auto gz = run({"curl", "-sS", "--fail", "--cacert", ca, gz_url + "?x-kubevirt-export-token=" + *token});
  ASSERT_EQ(gz.exit_code, 0) << gz.err;
  EXPECT_LT(gz.out.size(), whole.out.size() / 100) << "mostly holes compress well";
  EXPECT_EQ(sha256_of(run({"gzip", "-dc"}, gz.out).out), snap_sha);

  // Wrong and missing tokens: 401.
  for (const std::vector<std::string>& auth : {std::vector<std::string>{"-H", "x-kubevirt-export-token: wrong"},
                                              std::vector<std::string>{}}) {
    std::vector<std::string> argv{"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca};
    argv.insert(argv.end(), auth.begin(), auth.end());
    argv.push_back(raw_url);
    EXPECT_EQ(run(argv).out, "401");
  }

  // Ranges: single (206 with the right bytes), multi (multipart/byteranges), past the end (416), HEAD.
  auto part = run({"curl", "-sS", "-D", "-", "--cacert", ca, "-H", hdr, "-r", "1048576-1052671", raw_url});
  EXPECT_THAT(part.out, HasSubstr("HTTP/1.1 206"));
  EXPECT_THAT(part.out, HasSubstr("Content-Range: bytes 1048576-1052671/67108864"));
  auto body_at = part.out.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  EXPECT_EQ(part.out.substr(body_at + 4), whole.out.substr(1048576, 4096));
  auto multi = run({"curl", "-sS", "-D", "-", "--cacert", ca, "-H", hdr, "-r", "0-9,100-109", raw_url});
  EXPECT_THAT(multi.out, HasSubstr("multipart/byteranges; boundary="));
  EXPECT_THAT(multi.out, HasSubstr("Content-Range: bytes 100-109/67108864"));
  EXPECT_THAT(multi.out, HasSubstr(whole.out.substr(100, 10)));
  auto past = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, "-H", hdr, "-r", "67108864-", raw_url});
  EXPECT_EQ(past.out, "416");
  auto head = run({"curl", "-sS", "-I", "--cacert", ca, "-H", hdr, raw_url});
  EXPECT_THAT(head.out, HasSubstr("Content-Length: 67108864"));
  EXPECT_THAT(head.out, HasSubstr("Accept-Ranges: bytes"));

  // kubectl sees the kind; deleting the export withdraws it and its generated Secret goes with it.
  if (auto k = run_kubectl(tc.kubeconfig(), {"get", "vmexport", "-n", "prod", "exp1", "-o", "jsonpath={.status.phase}"})) {
    EXPECT_EQ(k->out, "Ready") << k->err;
  } else {
    FAIL() << "kubectl is required";
  }
  ASSERT_TRUE(tc.client()->remove(kVme, "prod", "exp1"));
  EXPECT_EQ(run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, "-H", hdr, raw_url}).out, "401");
  EXPECT_FALSE(tc.client()->get(kube::resources::kSecrets, "prod", "export-token-exp1"));
  // Deleting the claim deletes its file.
  ASSERT_TRUE(tc.client()->remove(kube::resources::kPersistentVolumeClaims, "prod", "restored"));
  EXPECT_FALSE(std::filesystem::exists(tc.dir() / "state" / "volumes" / "prod" / "restored.img"));
}

TEST(SimExport, ExportsThatCannotBeReadyTellWhy) {
  TestCluster tc(kScenario);
  create(tc, kVme, export_of("inuse", "PersistentVolumeClaim", "db-rootdisk"));
  auto a = wait_for(tc, kVme, "inuse", [](const json::object* o) { return !phase_of(o).empty(); });
  EXPECT_EQ(phase_of(&a), "Pending");
  EXPECT_EQ(ready_reason(a), "inUse") << "the running VM's launcher pod mounts the claim";
  create(tc, kVme, export_of("snap", "VolumeSnapshot", "whatever"));
  auto b = wait_for(tc, kVme, "snap", [](const json::object* o) { return !phase_of(o).empty(); });
  EXPECT_EQ(phase_of(&b), "Pending");
  EXPECT_EQ(ready_reason(b), "InvalidSource");
  create(tc, kVme, export_of("vm", "VirtualMachine", "db"));
  auto c = wait_for(tc, kVme, "vm", [](const json::object* o) { return !phase_of(o).empty(); });
  EXPECT_EQ(ready_reason(c), "inUse") << "a VM export needs the VM stopped";
  // A stopped VM's volumes export at once, with a 50 Gi sparse file behind it.
  create(tc, kVme, export_of("big", "VirtualMachine", "big"));
  auto d = wait_for(tc, kVme, "big", [](const json::object* o) { return phase_of(o) == "Ready"; });
  struct stat st {};
  ASSERT_EQ(::stat((tc.dir() / "state" / "volumes" / "prod" / "big-rootdisk.img").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, int64_t{50} << 30);
  EXPECT_LT(st.st_blocks * 512, int64_t{1} << 20) << "a volume's file stays sparse";
}

TEST(SimBytes, SparseCopiesAndHashesReadOnlyTheData) {
  TempDir d;
  testcluster::VolumeStore vs(d.path());
  ASSERT_TRUE(vs.create_claim("ns", "a", int64_t{64} << 20, 0));
  ASSERT_TRUE(vs.write_generation("ns", "a", "vm", 7));
  ASSERT_TRUE(vs.cut("ns", "a", "h1"));
  ASSERT_TRUE(vs.write_generation("ns", "a", "vm", 8));
  auto h1 = vs.snapshot_sha256("h1");
  auto a8 = vs.claim_sha256("ns", "a");
  ASSERT_TRUE(h1 && a8);
  EXPECT_NE(*h1, *a8);
  ASSERT_TRUE(vs.restore_claim("ns", "b", "h1", int64_t{64} << 20, 7));
  EXPECT_EQ(*vs.claim_sha256("ns", "b"), *h1);
  struct stat st {};
  ASSERT_EQ(::stat(vs.snapshot_path("h1").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, int64_t{1} << 20) << "holes stay holes";
  // A caller-supplied copier cuts the snapshot (the real-guest hook).
  bool called = false;
  ASSERT_TRUE(vs.cut("ns", "a", "h2", [&](const auto& from, const auto& to) {
    called = true;
    return testcluster::copy_sparse(from, to);
  }));
  EXPECT_TRUE(called);
  EXPECT_EQ(*vs.snapshot_sha256("h2"), *a8);
  // A claim another writer owns gets no synthetic writes.
  vs.set_external_writer("ns", "a", true);
  ASSERT_TRUE(vs.write_generation("ns", "a", "vm", 9));
  EXPECT_EQ(*vs.claim_sha256("ns", "a"), *a8);
  vs.remove_snapshot("h1");
  EXPECT_FALSE(std::filesystem::exists(vs.snapshot_path("h1")));
}

// A claim restored from a snapshot shares the snapshot's file (as an array
// clones in place) until it is written: every write path gives it its own
// copy first, and the snapshot's bytes never change.
TEST(SimBytes, ARestoredClaimSharesItsSnapshotUntilItIsWritten) {
  TempDir d;
  testcluster::VolumeStore vs(d.path());
  const int64_t size = int64_t{64} << 20;
  ASSERT_TRUE(vs.create_claim("ns", "a", size, 0));
  ASSERT_TRUE(vs.write_generation("ns", "a", "vm", 7));
  ASSERT_TRUE(vs.cut("ns", "a", "h1"));
  auto snap = testcluster::sparse_sha256(vs.snapshot_path("h1"));
  ASSERT_TRUE(snap);
  auto inode = [](const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : ino_t{0};
  };
  auto snapshot_unchanged = [&] {
    auto now = testcluster::sparse_sha256(vs.snapshot_path("h1"));
    return now && *now == *snap;
  };

  // Restored at the snapshot's size: the same file, no byte copied.
  ASSERT_TRUE(vs.restore_claim("ns", "b", "h1", size, 7));
  EXPECT_EQ(inode(vs.claim_path("ns", "b")), inode(vs.snapshot_path("h1")));
  EXPECT_EQ(*vs.claim_sha256("ns", "b"), *snap);
  // The store's own write (a guest's generation) copies first.
  ASSERT_TRUE(vs.write_generation("ns", "b", "vm", 8));
  EXPECT_NE(inode(vs.claim_path("ns", "b")), inode(vs.snapshot_path("h1")));
  EXPECT_NE(*vs.claim_sha256("ns", "b"), *snap);
  EXPECT_TRUE(snapshot_unchanged());
  // An import's write too.
  ASSERT_TRUE(vs.restore_claim("ns", "i", "h1", size, 7));
  ASSERT_TRUE(vs.write_import("ns", "i", "http://example/disk.img"));
  EXPECT_NE(*vs.claim_sha256("ns", "i"), *snap);
  EXPECT_TRUE(snapshot_unchanged());
  // An outside writer (CDI upload, QEMU) asks for the writable path: its own file, same bytes.
  ASSERT_TRUE(vs.restore_claim("ns", "c", "h1", size, 7));
  auto w = vs.writable_claim_path("ns", "c");
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_NE(inode(*w), inode(vs.snapshot_path("h1")));
  auto copied = testcluster::sparse_sha256(*w);
  ASSERT_TRUE(copied);
  EXPECT_EQ(*copied, *snap);
  {
    std::ofstream out(*w, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(4096);
    out << "written by the guest";
  }
  vs.claim_written("ns", "c");
  EXPECT_NE(*vs.claim_sha256("ns", "c"), *snap);
  EXPECT_TRUE(snapshot_unchanged());
  // Larger than the snapshot: a copy, grown (the snapshot's file keeps its size).
  ASSERT_TRUE(vs.restore_claim("ns", "big", "h1", 2 * size, 7));
  EXPECT_NE(inode(vs.claim_path("ns", "big")), inode(vs.snapshot_path("h1")));
  EXPECT_EQ(vs.claim_size("ns", "big"), 2 * size);
  EXPECT_EQ(std::filesystem::file_size(vs.snapshot_path("h1")), static_cast<uintmax_t>(size));
  // A claim made again over one that shared the snapshot does not truncate the snapshot.
  ASSERT_TRUE(vs.restore_claim("ns", "e", "h1", size, 7));
  vs.remove_claim("ns", "e");
  ASSERT_TRUE(vs.restore_claim("ns", "e", "h1", size, 7));
  ASSERT_TRUE(vs.create_claim("ns", "e", size, 0));
  EXPECT_TRUE(snapshot_unchanged());
  // A cut shares the claim's file too, until the claim is next written.
  ASSERT_TRUE(vs.cut("ns", "a", "h3"));
  EXPECT_EQ(inode(vs.claim_path("ns", "a")), inode(vs.snapshot_path("h3")));
  const std::string h3 = *testcluster::sparse_sha256(vs.snapshot_path("h3"));
  ASSERT_TRUE(vs.write_generation("ns", "a", "vm", 9));
  EXPECT_NE(inode(vs.claim_path("ns", "a")), inode(vs.snapshot_path("h3")));
  EXPECT_EQ(*testcluster::sparse_sha256(vs.snapshot_path("h3")), h3);
  EXPECT_NE(*vs.claim_sha256("ns", "a"), h3);
  // With a writer out (writable_claim_path, no claim_written yet) a cut copies: the writer may still write.
  auto out = vs.writable_claim_path("ns", "a");
  ASSERT_TRUE(out);
  ASSERT_TRUE(vs.cut("ns", "a", "h4"));
  EXPECT_NE(inode(*out), inode(vs.snapshot_path("h4")));
  vs.claim_written("ns", "a");
  ASSERT_TRUE(vs.cut("ns", "a", "h5"));
  EXPECT_EQ(inode(vs.claim_path("ns", "a")), inode(vs.snapshot_path("h5")));
  // The writer asks again before writing: its own file, the snapshot untouched.
  const std::string h5 = *testcluster::sparse_sha256(vs.snapshot_path("h5"));
  auto again = vs.writable_claim_path("ns", "a");
  ASSERT_TRUE(again);
  {
    std::ofstream o(*again, std::ios::in | std::ios::out | std::ios::binary);
    o.seekp(8192);
    o << "a later write";
  }
  vs.claim_written("ns", "a");
  EXPECT_EQ(*testcluster::sparse_sha256(vs.snapshot_path("h5")), h5);
  EXPECT_NE(*vs.claim_sha256("ns", "a"), h5);
  // An external writer's claim (a running QEMU guest) is always copied at a cut.
  vs.set_external_writer("ns", "a", true);
  ASSERT_TRUE(vs.cut("ns", "a", "h6"));
  EXPECT_NE(inode(vs.claim_path("ns", "a")), inode(vs.snapshot_path("h6")));
  // The snapshot deleted while a claim shares it: the claim keeps its bytes.
  ASSERT_TRUE(vs.restore_claim("ns", "f", "h1", size, 7));
  vs.remove_snapshot("h1");
  EXPECT_FALSE(std::filesystem::exists(vs.snapshot_path("h1")));
  EXPECT_EQ(*vs.claim_sha256("ns", "f"), *snap);
}

TEST(SimBytes, RangesFollowGosServeContent) {
  using testcluster::plan_ranges;
  EXPECT_EQ(plan_ranges("", "", 100, 0).status, 200);
  auto one = plan_ranges("bytes=10-19", "", 100, 0);
  ASSERT_EQ(one.status, 206);
  EXPECT_EQ(one.ranges.at(0).content_range(100), "bytes 10-19/100");
  EXPECT_EQ(plan_ranges("bytes=-10", "", 100, 0).ranges.at(0).start, 90u);
  EXPECT_EQ(plan_ranges("bytes=90-500", "", 100, 0).ranges.at(0).length, 10u);
  EXPECT_EQ(plan_ranges("bytes=100-", "", 100, 0).status, 416);
  EXPECT_EQ(plan_ranges("bytes=x-1", "", 100, 0).status, 416);
  EXPECT_EQ(plan_ranges("items=1-2", "", 100, 0).status, 416);
  EXPECT_EQ(plan_ranges("bytes=0-99,0-99", "", 100, 0).status, 200) << "more than the content: whole";
  EXPECT_EQ(plan_ranges("bytes=0-1,5-6", "", 100, 0).ranges.size(), 2u);
  // If-Range: the Last-Modified date keeps the range, any other value or an entity tag drops it.
  const int64_t t = 1700000000;
  EXPECT_EQ(plan_ranges("bytes=0-1", testcluster::http_date(t), 100, t).status, 206);
  EXPECT_EQ(plan_ranges("bytes=0-1", testcluster::http_date(t - 1), 100, t).status, 200);
  EXPECT_EQ(plan_ranges("bytes=0-1", "\"etag\"", 100, t).status, 200);
  EXPECT_EQ(testcluster::parse_http_date(testcluster::http_date(t)), t);
}

}  // namespace
}  // namespace kvb::testing
