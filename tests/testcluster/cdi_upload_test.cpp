// The test cluster's CDI upload (testcluster/cdi_upload.h) driven by real
// clients: kubectl for the DataVolume and the UploadTokenRequest, curl for
// the bytes (and the export of the uploaded claim back); and kvbackup's own
// streaming transport for the concurrency case.
#include "common/subprocess.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "net/http_transport.h"
#include "testcluster/cdi_upload.h"
#include "testcluster/csi.h"
#include "testcluster/storage/volume_store.h"
#include "tests/support/test_cluster.h"
#include "tests/support/volume_bytes.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include <sys/stat.h>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;

const char* kScenario = R"(
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: dr
)";

const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
constexpr size_t kSize = 4 << 20;

class CdiUpload : public ::testing::Test {
 protected:
  CdiUpload() : tc(kScenario) {}

  void SetUp() override {
    ASSERT_TRUE(kubectl_available()) << "kubectl is needed (a real client)";
    tc.dir().write("ca.pem", tc.cluster().ca().cert_pem);
  }

  // A DataVolume with source.upload made with kubectl; waits for UploadReady.
  void make_upload_dv(const std::string& name) {
    std::string yaml = "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: " + name +
                       "\n  namespace: dr\nspec:\n  source:\n    upload: {}\n  pvc:\n    accessModes: [ReadWriteOnce]\n"
                       "    storageClassName: fast\n    resources:\n      requests:\n        storage: \"" +
                       std::to_string(kSize) + "\"\n";
    auto r = run_kubectl(tc.kubeconfig(), {"apply", "-f", "-"}, yaml);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->exit_code, 0) << r->err;
    auto ready = kube::wait_for_object(
        tc.client(), kDataVolumes, "dr", name,
        [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "UploadReady"; }, std::chrono::seconds(10));
    ASSERT_TRUE(ready) << ready.error().describe();
    auto pvc = tc.client()->get(kube::resources::kPersistentVolumeClaims, "dr", name);
    ASSERT_TRUE(pvc);
    EXPECT_EQ(kube::annotation_of(*pvc, "cdi.kubevirt.io/storage.pod.ready"), "true");
  }

  std::string token_for(const std::string& claim) {
    std::string yaml = "apiVersion: upload.cdi.kubevirt.io/v1beta1\nkind: UploadTokenRequest\nmetadata:\n  name: " + claim +
                       "\n  namespace: dr\nspec:\n  pvcName: " + claim + "\n";
    auto r = run_kubectl(tc.kubeconfig(), {"create", "-f", "-", "-o", "json"}, yaml);
    if (!r || r->exit_code != 0) {
      ADD_FAILURE() << (r ? r->err : "kubectl did not run");
      return {};
    }
    return std::string(kube::str_at(json::parse(r->out), {"status", "token"}));
  }

  std::string proxy() {
    auto cfg = tc.client()->get(kube::ResourceRef{"cdi.kubevirt.io", "v1beta1", "cdiconfigs", "CDIConfig", false}, "", "config");
    EXPECT_TRUE(cfg);
    return cfg ? "https://" + std::string(kube::str_at(*cfg, {"status", "uploadProxyURL"})) : std::string();
  }

  // curl POST of a file; returns the HTTP status, 0 when the transfer failed
  // (a dropped connection: curl may have seen only "100 Continue").
  int curl_upload(const std::string& token, const std::filesystem::path& file, const std::string& path = "/v1beta1/upload-async") {
    ProcessSpec spec;
    spec.argv = {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", (tc.dir() / "ca.pem").string(),
                 "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + file.string(), proxy() + path};
    if (!token.empty()) spec.argv.insert(spec.argv.begin() + 1, {"-H", "Authorization: Bearer " + token});
    auto r = run_process(spec);
    EXPECT_TRUE(r);
    if (!r) return -1;
    return r->exit_code == 0 ? std::atoi(r->out.c_str()) : 0;
  }

  std::string dv_phase(const std::string& name) {
    auto dv = tc.client()->get(kDataVolumes, "dr", name);
    return dv ? std::string(kube::str_at(*dv, {"status", "phase"})) : "(gone)";
  }

  TestCluster tc;
};

TEST_F(CdiUpload, KubectlAndCurlUploadTheBytesThenTheDataVolumeSucceeds) {
  make_upload_dv("disk");
  std::string image = disk_image(kSize, 7);
  tc.dir().write("disk.img", image);
  std::string token = token_for("disk");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(curl_upload(token, tc.dir() / "disk.img"), 200);
  EXPECT_EQ(dv_phase("disk"), "Succeeded");
  auto dv = tc.client()->get(kDataVolumes, "dr", "disk");
  EXPECT_EQ(kube::str_at(*dv, {"status", "progress"}), "100.0%");
  auto pvc = tc.client()->get(kube::resources::kPersistentVolumeClaims, "dr", "disk");
  EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound");
  EXPECT_EQ(tc.claim_sha256("dr", "disk"), sha256_hex(image));
  // Once done: 409, whatever the token.
  EXPECT_EQ(curl_upload(token_for("disk"), tc.dir() / "disk.img"), 409);

  // Exported back (kubectl for the export and its token, curl for the bytes): what was uploaded.
  auto vme = run_kubectl(tc.kubeconfig(), {"apply", "-f", "-"},
                         "apiVersion: export.kubevirt.io/v1beta1\nkind: VirtualMachineExport\nmetadata: {name: back, namespace: dr}\n"
                         "spec: {source: {apiGroup: \"\", kind: PersistentVolumeClaim, name: disk}}\n");
  ASSERT_TRUE(vme && vme->exit_code == 0) << (vme ? vme->err : "");
  auto ready = run_kubectl(tc.kubeconfig(), {"wait", "-n", "dr", "vmexport/back", "--for=jsonpath={.status.phase}=Ready", "--timeout=30s"});
  ASSERT_TRUE(ready && ready->exit_code == 0) << (ready ? ready->err : "");
  auto got = run_kubectl(tc.kubeconfig(), {"get", "-n", "dr", "vmexport/back", "-o", "json"});
  ASSERT_TRUE(got && got->exit_code == 0);
  auto obj = json::parse(got->out);
  std::string url;
  for (const auto& f : *kube::array_at(kube::array_at(obj, {"status", "links", "external", "volumes"})->at(0), {"formats"})) {
    if (kube::str_at(f, {"format"}) == "raw") url = std::string(kube::str_at(f, {"url"}));
  }
  ASSERT_FALSE(url.empty());
  tc.dir().write("export-ca.pem", std::string(kube::str_at(obj, {"status", "links", "external", "cert"})));
  auto secret = run_kubectl(tc.kubeconfig(), {"get", "-n", "dr", "secret/export-token-back", "-o", "jsonpath={.data.token}"});
  ASSERT_TRUE(secret && secret->exit_code == 0);
  ProcessSpec b64;
  b64.argv = {"base64", "-d"};
  b64.stdin_data = secret->out;
  auto export_token = run_process(b64);
  ASSERT_TRUE(export_token && export_token->exit_code == 0);
  ProcessSpec dl;
  dl.argv = {"curl", "-sS", "--fail", "--cacert", (tc.dir() / "export-ca.pem").string(), "-H",
             "x-kubevirt-export-token: " + export_token->out, "-o", (tc.dir() / "back.img").string(), url};
  auto d = run_process(dl);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->exit_code, 0) << d->err;
  EXPECT_EQ(sha256_hex(read_whole(tc.dir() / "back.img")), sha256_hex(image)) << "the export gives back the uploaded bytes";
}

// The proxy writes data runs between holes in one pwrite each and leaves
// all-zero 64 KiB blocks as holes: the claim holds the image's bytes either
// way, for a body with a Content-Length (read straight into place) and a
// chunked one (through the parser).
TEST_F(CdiUpload, ZerosBecomeHolesAndTheClaimHoldsTheImageChunkedOrNot) {
  std::string image(kSize, '\0');
  auto fill = [&](size_t from, size_t len, char c) {
    for (size_t i = 0; i < len; ++i) image[from + i] = static_cast<char>(c + (i * 7919) % 13);
  };
  fill(0, 3 * 65536 + 100, 'a');          // a run of data blocks, ending inside a block
  fill(5 * 65536 + 1, 10, 'q');           // a block that is zeros but for 10 bytes
  fill(kSize - 65536 - 512, 512, 'z');    // the end of the last-but-one block
  tc.dir().write("sparse.img", image);
  for (bool chunked : {false, true}) {
    const std::string name = chunked ? "chunked" : "sized";
    make_upload_dv(name);
    std::string token = token_for(name);
    ProcessSpec spec;
    spec.argv = {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", (tc.dir() / "ca.pem").string(), "-H",
                 "Authorization: Bearer " + token, "-H", "Content-Type: application/octet-stream", "--data-binary",
                 "@" + (tc.dir() / "sparse.img").string(), proxy() + "/v1beta1/upload-async"};
    if (chunked) spec.argv.insert(spec.argv.begin() + 1, {"-H", "Transfer-Encoding: chunked"});
    auto r = run_process(spec);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->out, "200") << name << ": " << r->err;
    EXPECT_EQ(dv_phase(name), "Succeeded") << name;
    EXPECT_EQ(tc.claim_sha256("dr", name), sha256_hex(image)) << name;
    std::filesystem::path file;
    tc.cluster().loop().run_sync([&] { file = tc.cluster().csi().volume_store().claim_path("dr", name); });
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    // Data in 5 of the 64 blocks (0-3, 5, 62): at most those are allocated (the file system may round up).
    EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{8} * 65536) << name << ": zeros were written, not left as holes";
  }
}

// kvbackup's streamed POST (its TLS body written around Asio's engine:
// net/tls_bulk_writer.h) of an image larger than the claim: the proxy answers
// 400 mid-body and closes; the client's write fails, and the answer it reads
// says why (not only "broken pipe").
TEST_F(CdiUpload, AnEarlyRefusalMidBodyIsTheAnswerTheStreamingClientReports) {
  make_upload_dv("small");
  std::string image = disk_image(kSize, 5) + std::string(16 << 20, 'x');  // 16 MiB more than the claim holds
  auto t = net::HttpTransport::create(proxy(), [&] { net::TransportOptions o; o.ca_pem = tc.cluster().ca().cert_pem; return o; }());
  ASSERT_TRUE(t);
  net::HttpRequest req{"POST", "/v1beta1/upload-async", {{"Authorization", "Bearer " + token_for("small")}}, {}, false};
  auto res = (*t)->exchange_streamed(req, image.size(), [&](const net::BodyWriter& write) -> Status {
    for (size_t at = 0; at < image.size(); at += 1 << 20) KVB_CHECK(write(std::string_view(image).substr(at, 1 << 20)));
    return ok();
  });
  ASSERT_TRUE(res) << res.error().describe();
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("larger than the claim"));
  EXPECT_EQ(dv_phase("small"), "UploadReady");  // and it can be sent again
}

TEST_F(CdiUpload, RefusalsBadTokenNoTokenTooLargeAndAGzipBody) {
  make_upload_dv("disk");
  tc.dir().write("big.img", std::string(kSize + 1, 'x'));
  EXPECT_EQ(curl_upload("not-a-token", tc.dir() / "big.img"), 401);
  EXPECT_EQ(curl_upload("", tc.dir() / "big.img"), 400);
  EXPECT_EQ(curl_upload(token_for("disk"), tc.dir() / "big.img"), 400);  // larger than the claim
  EXPECT_EQ(dv_phase("disk"), "UploadReady");                            // a refused upload can be sent again
  // gzip: decompressed on the way in.
  std::string image = disk_image(kSize, 11);
  tc.dir().write("disk.img", image);
  ProcessSpec gz;
  gz.argv = {"gzip", "-k", "-1", (tc.dir() / "disk.img").string()};
  auto g = run_process(gz);
  ASSERT_TRUE(g && g->exit_code == 0);
  EXPECT_EQ(curl_upload(token_for("disk"), tc.dir() / "disk.img.gz", "/v1beta1/upload"), 200);
  EXPECT_EQ(dv_phase("disk"), "Succeeded");
  EXPECT_EQ(tc.claim_sha256("dr", "disk"), sha256_hex(image));
}

TEST_F(CdiUpload, ASecondUploadWhileOneRunsGets503AndABrokenOneCanBeSentAgain) {
  make_upload_dv("disk");
  std::string image = disk_image(kSize, 3);
  tc.dir().write("disk.img", image);
  auto t = net::HttpTransport::create(proxy(), [&] { net::TransportOptions o; o.ca_pem = tc.cluster().ca().cert_pem; return o; }());
  ASSERT_TRUE(t);
  net::HttpRequest req{"POST", "/v1beta1/upload-async", {{"Authorization", "Bearer " + token_for("disk")}}, {}, false};
  int second = 0;
  auto res = (*t)->exchange_streamed(req, image.size(), [&](const net::BodyWriter& write) -> Status {
    KVB_CHECK(write(std::string_view(image).substr(0, 1 << 20)));
    // The first upload has begun once the proxy counted it: then a second one is refused.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (testcluster::cdi_upload(tc.cluster()).uploads_started() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    second = curl_upload(token_for("disk"), tc.dir() / "disk.img");
    return write(std::string_view(image).substr(1 << 20));
  });
  ASSERT_TRUE(res) << res.error().describe();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(second, 503);
  EXPECT_EQ(tc.claim_sha256("dr", "disk"), sha256_hex(image));

  // An upload pod that restarts mid-body: the client sees the connection drop; the next upload starts from byte 0.
  make_upload_dv("disk2");
  testcluster::cdi_upload(tc.cluster()).break_uploads(1, 2 << 20);
  EXPECT_EQ(curl_upload(token_for("disk2"), tc.dir() / "disk.img"), 0);
  EXPECT_EQ(dv_phase("disk2"), "UploadReady");
  EXPECT_EQ(curl_upload(token_for("disk2"), tc.dir() / "disk.img"), 200);
  EXPECT_EQ(tc.claim_sha256("dr", "disk2"), sha256_hex(image));
}

}  // namespace
}  // namespace kvb::testing
